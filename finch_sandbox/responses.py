"""Rendering answers: JSON bodies, Finch's response headers, the simulated dropped connection."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .faults import SimulatedConnectionDrop

JSON_MEDIA_TYPE = "application/json"


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON (Finch answers UTF-8; `ensure_ascii` would hide encoding bugs)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def finch_headers(date_header: str) -> dict[str, str]:
    """Every Finch answer carries a request id (to quote in support tickets) and the
    emulator's virtual `Date`, which is how a client learns the emulator's "now"."""
    return {"finch-request-id": str(uuid.uuid4()), "date": date_header}


class DroppedResponse(Response):
    """Sends the status line, headers and half the body, then aborts the connection.

    Under uvicorn the raised exception makes the server close the socket mid-body, so the
    client sees a truncated message; `sandbox_transport` turns it into
    `httpx.RemoteProtocolError`, as httpcore would.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise SimulatedConnectionDrop("sandbox fault: connection dropped mid-response")
