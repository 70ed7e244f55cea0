"""Warehouse URL validation, engine creation and the connection error."""

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

URL_SETTING = "CONNECTIONS_WAREHOUSE_URL"

# The bulk paths need these drivers: psycopg 3 for COPY, duckdb for Arrow registration.
_DRIVERS = {
    "duckdb": "duckdb",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


class WarehouseConnectionError(RuntimeError):
    """The warehouse did not answer; the message names the setting, never the password."""


def parse_warehouse_url(url: str | URL) -> URL:
    """Parse and normalise a warehouse URL, or raise ValueError naming the setting.

    Accepted: `duckdb:///path/to/file.duckdb` (or `duckdb:///:memory:`) and
    `postgresql[+psycopg]://user:password@host:port/database`.
    """
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{URL_SETTING} is not a SQLAlchemy URL ({exc.__class__.__name__}); expected e.g. "
            "duckdb:///warehouse.duckdb or postgresql+psycopg://user@host:5432/db"
        ) from None
    drivername = _DRIVERS.get(parsed.drivername)
    if drivername is None:
        raise ValueError(
            f"{URL_SETTING} uses {parsed.drivername!r}; supported: duckdb, postgresql+psycopg"
        )
    parsed = parsed.set(drivername=drivername)
    if drivername == "postgresql+psycopg" and not parsed.database:
        raise ValueError(f"{URL_SETTING} names no database")
    return parsed


def duckdb_file(url: URL) -> Path | None:
    """The database file of a DuckDB URL, or None for an in-memory database."""
    if url.get_backend_name() != "duckdb" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def create_warehouse_engine(url: URL) -> sa.Engine:
    """An engine for a URL from `parse_warehouse_url`; creates a DuckDB file's folder."""
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True)
    path = duckdb_file(url)
    if path is None:
        # Every new connection to :memory: would be a different, empty database.
        return sa.create_engine(url, poolclass=sa.pool.StaticPool)
    path.parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url)


def connection_error(url: URL, exc: Exception) -> WarehouseConnectionError:
    """A WarehouseConnectionError for `exc`, scrubbed of the URL's password."""
    original = getattr(exc, "orig", None) or exc
    message = str(original).strip()
    if url.password:
        message = message.replace(str(url.password), "***")
    safe_url = url.render_as_string(hide_password=True)
    return WarehouseConnectionError(f"{URL_SETTING} ({safe_url}) is unreachable: {message}")
