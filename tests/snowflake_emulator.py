"""A local Snowflake for the tests: fakesnow's server over real HTTP on loopback, reached by
the real Snowflake connector (account `fakesnow`, any user and password).

The server runs in a thread of the test process so a test can count the statements it
receives (`SnowflakeEmulator.statements`), one query request per statement the connector
sends.
"""

import gzip
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import duckdb
import snowflake.connector.errors
import sqlalchemy as sa
import uvicorn
from fakesnow.cursor import FakeSnowflakeCursor
from fakesnow.server import app as fakesnow_app

QUERY_PATH = "/queries/v1/query-request"
LOGIN_PATH = "/session/v1/login-request"
ACCOUNT = "fakesnow"


@dataclass
class SnowflakeEmulator:
    """`users` (name -> password) and `warehouses`, when set, are checked at login as
    Snowflake checks them (fakesnow itself accepts any): a wrong password is refused with
    390100, and with CLIENT_VALIDATE_DEFAULT_PARAMETERS an unknown warehouse with 390201."""

    host: str
    port: int
    statements: list[str] = field(default_factory=list)
    users: dict[str, str] | None = None
    warehouses: set[str] | None = None

    def login_refusal(self, body: dict, query: dict[str, str]) -> tuple[str, str] | None:
        data = body.get("data", {})
        if self.users is not None and self.users.get(data.get("LOGIN_NAME")) != data.get(
            "PASSWORD"
        ):
            return "390100", "Incorrect username or password was specified."
        validate = data.get("SESSION_PARAMETERS", {}).get("CLIENT_VALIDATE_DEFAULT_PARAMETERS")
        warehouse = query.get("warehouse")
        if validate and self.warehouses is not None and warehouse not in self.warehouses:
            return "390201", "The requested warehouse does not exist or not authorized."
        return None

    @property
    def connect_args(self) -> str:
        """CONNECTIONS_WAREHOUSE_CONNECT_ARGS for this server."""
        return json.dumps({"host": self.host, "port": self.port, "protocol": "http"})

    def url(self, database: str, user: str = "loader", password: str = "pw") -> str:
        return f"snowflake://{user}:{password}@fakesnow/{database}"

    def new_database(self) -> str:
        """A database of the caller's own (the emulator shares one across sessions)."""
        name = f"cp_{secrets.token_hex(5)}"
        user, password = next(iter((self.users or {"admin": "pw"}).items()))
        engine = sa.create_engine(
            f"snowflake://{user}:{password}@fakesnow",
            connect_args={"host": self.host, "port": self.port, "protocol": "http"},
        )
        with engine.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        engine.dispose()
        return name


class _CountingApp:
    """Records the SQL text of every query request before fakesnow answers it."""

    def __init__(self, app, emulator: SnowflakeEmulator) -> None:
        self._app = app
        self._emulator = emulator

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in (QUERY_PATH, LOGIN_PATH):
            await self._app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            parsed = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
        except (OSError, ValueError):
            parsed = {}
        if scope["path"] == QUERY_PATH:
            self._emulator.statements.append(parsed.get("sqlText", ""))
        else:
            query = dict(parse_qsl(scope["query_string"].decode()))
            refusal = self._emulator.login_refusal(parsed, query)
            if refusal is not None:
                await _refuse(send, *refusal)
                return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self._app(scope, replay, send)


async def _refuse(send, code: str, message: str) -> None:
    """A login refusal as Snowflake sends it: HTTP 200, success false, the code and text."""
    payload = json.dumps(
        {
            "data": {"authnMethod": "USERNAME_PASSWORD"},
            "code": code,
            "message": message,
            "success": False,
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _answer_constraint_violations_as_snowflake_does() -> None:
    """fakesnow answers a NOT NULL or key violation with HTTP 500 (an unhandled DuckDB
    error), which the connector retries for minutes; Snowflake answers it as a statement
    error (100072, "NULL result in a non-nullable column"). Raise what Snowflake would."""
    execute = FakeSnowflakeCursor._execute
    if getattr(execute, "answers_constraints", False):
        return

    def _execute(self, *args, **kwargs):
        try:
            return execute(self, *args, **kwargs)
        except duckdb.ConstraintException as exc:
            raise snowflake.connector.errors.ProgrammingError(
                msg=str(exc).split("\n")[0], errno=100072, sqlstate="22000"
            ) from exc

    _execute.answers_constraints = True  # type: ignore[attr-defined]
    FakeSnowflakeCursor._execute = _execute  # type: ignore[method-assign]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_snowflake_emulator(
    users: dict[str, str] | None = None, warehouses: set[str] | None = None
) -> Iterator[SnowflakeEmulator]:
    # fakesnow logs every refused statement and upload at INFO; a test's own output is enough.
    logging.getLogger("fakesnow").setLevel(logging.WARNING)
    _answer_constraint_violations_as_snowflake_does()
    port = _free_port()
    emulator = SnowflakeEmulator("127.0.0.1", port, users=users, warehouses=warehouses)
    config = uvicorn.Config(
        _CountingApp(fakesnow_app, emulator),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="fakesnow")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Snowflake emulator did not start")
        time.sleep(0.05)
    try:
        yield emulator
    finally:
        server.should_exit = True
        thread.join(timeout=10)
