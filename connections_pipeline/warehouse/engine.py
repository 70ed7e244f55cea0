"""Warehouse URL validation, engine creation and the connection errors."""

import importlib.util
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa
from sqlalchemy.engine import URL

from connections_pipeline.redaction import safe_database_url, scrub, url_secrets
from connections_pipeline.warehouse.dialects import dialect_named
from connections_pipeline.warehouse.tables import SCHEMA_SETTING

URL_SETTING = "CONNECTIONS_WAREHOUSE_URL"
CONNECT_ARGS_SETTING = "CONNECTIONS_WAREHOUSE_CONNECT_ARGS"

# The bulk paths need these drivers: psycopg 3 for COPY, duckdb for Arrow registration,
# the Snowflake connector for PUT and COPY INTO.
_DRIVERS = {
    "duckdb": "duckdb",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "snowflake": "snowflake",
}
# Drivers outside the default install: the package that brings each, and the extra.
_OPTIONAL_DRIVERS = {"snowflake": ("snowflake.sqlalchemy", "connections_pipeline[snowflake]")}


# A DuckDB database file starts with a checksum (8 bytes), then these magic bytes
# (DuckDB's storage format, `MainHeader::MAGIC_BYTES`).
DUCKDB_MAGIC = b"DUCK"
_DUCKDB_MAGIC_AT = 8
# DuckDB's only sign of another process holding the file: "Could not set lock on file
# "<path>": Conflicting lock is held in <program> (PID <n>)", raised as an IOException.
_DUCKDB_LOCK = "Could not set lock on file"
_DUCKDB_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


class WarehouseConnectionError(RuntimeError):
    """The warehouse did not answer; the message names the setting, never the password."""


class WarehouseBusyError(WarehouseConnectionError):
    """Another process (another run, `dagster dev`, a SQL client) holds the DuckDB file.

    Not a setting to fix: the same URL works once that process lets go. A connection error
    still, so whatever waits and tries again on one (webhook receiver, sensor, retries) does
    so on this one too.
    """


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
            f"{URL_SETTING} uses {parsed.drivername!r}; supported: duckdb, "
            "postgresql+psycopg, snowflake"
        )
    optional = _OPTIONAL_DRIVERS.get(drivername)
    if optional and importlib.util.find_spec(optional[0].split(".")[0]) is None:
        raise ValueError(
            f"{URL_SETTING} uses {drivername}, which needs pip install '{optional[1]}'"
        )
    parsed = parsed.set(drivername=drivername)
    try:
        return dialect_named(parsed.get_backend_name()).check_url(parsed)
    except ValueError as exc:
        raise ValueError(f"{URL_SETTING} {exc}") from None


def parse_connect_args(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The driver's own connection arguments, a JSON object (setting
    CONNECTIONS_WAREHOUSE_CONNECT_ARGS), e.g. `{"host": "...", "port": 443}` for Snowflake
    behind a private link. ValueError naming the setting, never echoing its values (they
    may hold a key's passphrase)."""
    if text is None or text == "":
        return {}
    if isinstance(text, Mapping):
        return dict(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{CONNECT_ARGS_SETTING} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{CONNECT_ARGS_SETTING} must be a JSON object of connection arguments, "
            f"got a JSON {type(value).__name__}"
        )
    return value


def duckdb_file(url: URL) -> Path | None:
    """The database file of a DuckDB URL, or None for an in-memory database."""
    if url.get_backend_name() != "duckdb" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def duckdb_catalog(url: URL) -> str | None:
    """The catalog name DuckDB gives a DuckDB URL's database: its file name up to the first
    dot, or `memory`. None for other databases."""
    if url.get_backend_name() != "duckdb":
        return None
    path = duckdb_file(url)
    return "memory" if path is None else path.name.split(".", 1)[0]


def check_schema_for_url(url: URL, schema: str) -> None:
    """Raise ValueError naming the schema setting when `schema` cannot work at `url`.

    DuckDB reads `x.table` as catalog `x` or schema `x`, without case, and refuses the
    ambiguity on every statement; so the schema must not be named like the database file.
    """
    catalog = duckdb_catalog(url)
    if catalog is not None and catalog.lower() == schema.lower():
        raise ValueError(
            f"{SCHEMA_SETTING} {schema!r} is also the name DuckDB gives the database of "
            f"{URL_SETTING} ({catalog!r}), which makes every table name ambiguous; "
            "choose another schema or database file name"
        )


def check_duckdb_folder(url: URL) -> None:
    """Raise ValueError naming the URL setting when a DuckDB file could not be created where
    the URL puts it: a folder on its path is a file, or the file is a folder. Creates
    nothing."""
    path = duckdb_file(url)
    if path is None:
        return
    if path.is_dir():
        raise ValueError(f"{URL_SETTING}: the DuckDB file {path} is a folder")
    for folder in path.absolute().parents:
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(
                    f"{URL_SETTING}: the DuckDB file {path} cannot be created: {folder} "
                    "is a file, not a folder"
                )
            return


def check_duckdb_file(url: URL) -> None:
    """Raise ValueError naming the URL setting when the DuckDB file exists but is not a
    DuckDB database (e.g. the tokens CSV by mistake). DuckDB would open such a file as a
    read-only view inside an in-memory database: every load would "succeed" and vanish.
    An empty file is refused too, since DuckDB will not open it. Reads the first bytes only."""
    path = duckdb_file(url)
    if path is None or not path.is_file():
        return
    try:
        with path.open("rb") as file:
            header = file.read(_DUCKDB_MAGIC_AT + len(DUCKDB_MAGIC))
    except OSError as exc:
        raise ValueError(
            f"{URL_SETTING}: the DuckDB file {path} cannot be read: {exc.strerror or exc}"
        ) from None
    if not header:
        raise ValueError(
            f"{URL_SETTING}: {path} is an empty file, which DuckDB does not open as a "
            "database; remove it (DuckDB creates the file) or name another"
        )
    if header[_DUCKDB_MAGIC_AT:] != DUCKDB_MAGIC:
        raise ValueError(
            f"{URL_SETTING}: {path} is not a valid DuckDB database file (it lacks DuckDB's "
            "header); name a DuckDB database or a new path"
        )


def create_warehouse_engine(
    url: URL,
    hold_connections: bool = True,
    connect_args: Mapping[str, Any] | None = None,
    duckdb_memory_mb: int | None = None,
) -> sa.Engine:
    """An engine for a URL from `parse_warehouse_url`; creates a DuckDB file's folder.

    Args:
        connect_args: the driver's own connection arguments (`parse_connect_args`).
        duckdb_memory_mb: DuckDB's memory limit (its default is 80% of the machine's memory,
            whatever the container allows); past it DuckDB spills to `<file>.tmp`.
        hold_connections: keep connections open between uses (a pool). Off, a DuckDB file
            is opened per use and closed after it: DuckDB lets one process at a time open a
            file, so a long-lived process that writes now and then (the webhook receiver)
            must not keep it from the sync runs.

    Raises:
        ValueError: naming the URL setting, when the DuckDB file is a folder, sits below a
            file, or exists and is not a DuckDB database.
        WarehouseConnectionError: the folder cannot be created (a file in its way, no
            permission); no retry would help.
    """
    backend = url.get_backend_name()
    if backend != "duckdb":
        dialect = dialect_named(backend)
        arguments = {**dialect.default_connect_args(), **(connect_args or {})}
        return sa.create_engine(url, connect_args=arguments, **dialect.engine_options(url))
    path = duckdb_file(url)
    if path is None:
        # Every new connection to :memory: would be a different, empty database.
        return sa.create_engine(url, poolclass=sa.pool.StaticPool)
    check_duckdb_folder(url)
    check_duckdb_file(url)
    pooling = {} if hold_connections else {"poolclass": sa.pool.NullPool}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WarehouseConnectionError(
            f"{URL_SETTING}: cannot create the folder {path.parent} of the DuckDB file: "
            f"{exc.strerror or exc}"
        ) from None
    engine = sa.create_engine(url, **pooling)
    if duckdb_memory_mb is not None:
        _limit_duckdb_memory(engine, duckdb_memory_mb)
    return engine


def _limit_duckdb_memory(engine: sa.Engine, megabytes: int) -> None:
    """SET on each connection rather than a config at open: DuckDB refuses a second
    connection to a file already open in this process with another configuration (a SQL
    client, a test, another engine), while a SET applies to the open database as it is."""

    @sa.event.listens_for(engine, "connect")
    def limit(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute(f"SET memory_limit = '{int(megabytes)}MB'")
        finally:
            cursor.close()


def connect_args_secrets(connect_args: Mapping[str, Any] | None) -> list[str]:
    """Every text value of the connection arguments: any of them may be a secret (a
    password, a key's passphrase, a token), so messages never carry one."""
    return [value for value in (connect_args or {}).values() if isinstance(value, str) and value]


def connection_error(
    url: URL, exc: Exception, secrets: list[str] | None = None
) -> WarehouseConnectionError:
    """A WarehouseConnectionError for `exc`, scrubbed of the URL's credentials and of
    `secrets`; a WarehouseBusyError when another process holds the DuckDB file."""
    original = getattr(exc, "orig", None) or exc
    text = str(original)
    if isinstance(original, duckdb.IOException) and _DUCKDB_LOCK in text:
        pid = _DUCKDB_LOCK_HOLDER.search(text)
        holder = f" (PID {pid[1]})" if pid else ""
        return WarehouseBusyError(
            f"the warehouse is busy: another process{holder} holds the DuckDB file "
            f"{duckdb_file(url)} ({URL_SETTING}); try again once it has finished"
        )
    known = dialect_named(url.get_backend_name()).connection_error_message(url, original)
    if known is not None:
        return WarehouseConnectionError(f"{URL_SETTING} ({safe_database_url(url)}): {known}")
    message = scrub(str(original).strip(), [*url_secrets(url), *(secrets or [])])
    return WarehouseConnectionError(
        f"{URL_SETTING} ({safe_database_url(url)}) is unreachable: {message}"
    )
