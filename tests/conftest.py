"""Shared fixtures: a real PostgreSQL for every test run, pytest's no-tests guard, and the
order in which xdist hands test files to its workers."""

import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    from snowflake_emulator import SnowflakeEmulator

LOCAL_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FORCE_EMBEDDED_ENV = "CONNECTIONS_TEST_EMBEDDED_POSTGRES"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A run that collected nothing proved nothing; make it fail like a failing test.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a `slow` test first, each file's own order kept.

    xdist's `--dist loadfile` hands whole files to workers in collection order
    (`--no-loadscope-reorder`); a 2-3 minute end-to-end file dealt last keeps one worker busy
    while the other idles. Dealing the long files first leaves the many short ones to even
    out the end (longest-first scheduling). Every worker computes the same order, as xdist
    requires.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def _local_postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
        engine = sa.create_engine(LOCAL_POSTGRES_URL)
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
    except (OSError, sa.exc.OperationalError):
        return False
    return True


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A SQLAlchemy URL to a real PostgreSQL server with rights to create databases.

    The server at 127.0.0.1:5432 (trust auth, user postgres, database test) when it answers;
    otherwise an embedded PostgreSQL from the `pgserver` wheel, started for this run.
    """
    if os.environ.get(FORCE_EMBEDDED_ENV) != "1" and _local_postgres_answers():
        yield LOCAL_POSTGRES_URL
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="cp-pg-") as workdir:
        server = pgserver.get_server(Path(workdir) / "pgdata", cleanup_mode="delete")
        try:
            yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database of this test run's own, dropped at the end."""
    name = f"cp_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(postgres_admin_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def snowflake_emulator() -> Iterator["SnowflakeEmulator"]:
    """fakesnow's Snowflake server on loopback, for this worker's Snowflake tests."""
    from snowflake_emulator import serve_snowflake_emulator

    with serve_snowflake_emulator() as emulator:
        yield emulator
