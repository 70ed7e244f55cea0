"""Real receivers on loopback for the notification tests: an SMTP server (aiosmtpd) that
keeps every email it is sent, and an HTTP server that keeps every JSON body posted to it,
and that can be told to answer 500, to hang, or to be down (its port closed)."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

OK, FAIL, HANG = "ok", "fail", "hang"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Email:
    subject: str
    body: str
    attachments: dict[str, bytes]


@dataclass
class SmtpReceiver:
    port: int
    emails: list[Email] = field(default_factory=list)

    def url(self, to: str = "cs@example.com") -> str:
        """An Apprise URL for this server: plain SMTP, no login."""
        return f"mailto://127.0.0.1:{self.port}?from=pipeline@example.com&to={to}&mode=insecure"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        attachments = {
            part.get_filename(): part.get_payload(decode=True)
            for part in message.iter_attachments()
        }
        self.emails.append(
            Email(str(message["subject"]), body.get_content() if body else "", attachments)
        )
        return "250 OK"


@contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(free_port())
    controller = Controller(receiver, hostname="127.0.0.1", port=receiver.port)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


@dataclass
class HttpReceiver:
    """Keeps each posted JSON body (`posts`) while `mode` is OK; counts every request."""

    port: int
    mode: str = OK
    posts: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                receiver.requests += 1
                if receiver.mode == HANG:
                    receiver.released.wait(60)
                    return
                if receiver.mode == FAIL:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.posts.append(json.loads(body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the port: the receiver is down."""
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def messages(self) -> list[str]:
        return [post["message"] for post in self.posts]


@contextmanager
def http_receiver(mode: str = OK, up: bool = True) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(free_port(), mode)
    if up:
        receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
