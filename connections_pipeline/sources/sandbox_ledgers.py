"""Reading the ledgers of an emulator served elsewhere (another process, `serve` CLI).

A served emulator is the only "Finch" whose token and Connect-session ledgers can be read
over HTTP; the token source uses this to run the pipeline against `python -m finch_sandbox
serve` exactly as it runs against the in-process one. Plain HTTP: the pipeline reads the
served emulator as it reads Finch, without importing it.
"""

from __future__ import annotations

from typing import Any

import httpx


class ServedSandboxError(RuntimeError):
    """The served emulator did not answer its `/_sandbox/` routes as expected."""


def read_served_sandbox(
    base_url: str,
    *,
    timeout: float = 30.0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Tokens (`GET /_sandbox/tokens`) and Connect sessions (`GET /_sandbox/sessions`) of the
    emulator at `base_url`, in the same shapes as `FinchSandbox.tokens()` / `.sessions()`.

    Raises:
        ServedSandboxError: Unreachable, an error status, or an unexpected body.
    """
    root = base_url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout) as client:
            tokens = client.get(f"{root}/_sandbox/tokens").raise_for_status().json()["tokens"]
            sessions = client.get(f"{root}/_sandbox/sessions").raise_for_status().json()["sessions"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise ServedSandboxError(
            f"could not read the sandbox ledgers at {root}/_sandbox/: {type(exc).__name__}"
        ) from exc
    if not isinstance(tokens, list) or not isinstance(sessions, list):
        raise ServedSandboxError(f"unexpected /_sandbox/ answer shapes from {root}")
    return tokens, sessions
