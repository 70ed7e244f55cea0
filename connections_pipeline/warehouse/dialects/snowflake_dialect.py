"""Snowflake: frames staged as Parquet files and loaded by COPY INTO, MERGE for writes by key.

A frame is written by Polars to a local Parquet file, PUT to a temporary internal stage and
loaded with one `COPY INTO ... FROM (SELECT $1:col::TYPE ...)`: three statements whatever
the number of rows. Timestamps travel as ISO text with their UTC offset, so no Parquet
logical-type setting of the account plays a part.

Snowflake commits the open transaction before any DDL. So the session's objects (the stage,
and one temporary table per warehouse table for `staged`) are created by
`before_transaction`, when a connection is first used after its tables exist; inside the
load's transaction only DML runs: readers see the previous snapshot or the new one.

Snowflake does not enforce primary keys: writes by key are an UPDATE of the stored keys
and an INSERT of the others, and the callers already filter out the keys that are stored.
"""

import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from snowflake.connector.errors import Error as SnowflakeError
from sqlalchemy.engine import URL

from connections_pipeline.warehouse.dialects import SetValues
from connections_pipeline.warehouse.dialects.common import driver_errors, raw, typed

_STAGE = "_wh_load"
_STAGE_TABLE = "_wh_stage_{}"
_READY = "connections_pipeline.snowflake_session"
_ISO = "%Y-%m-%dT%H:%M:%S%.6f+00:00"
# The connector retries a login it could not send until this many seconds have passed; a
# wrong account or host should fail a run in seconds, not after the default two minutes.
DEFAULT_LOGIN_TIMEOUT_SECONDS = 10

# What a refused connection means, by the server's code (the connector puts it in the
# message) or the connector's own errno: (which part of the setting, what to check).
_REFUSALS = {
    "390100": "the user name or password",
    "390144": "the key pair (private_key_file in CONNECTIONS_WAREHOUSE_CONNECT_ARGS)",
    "394304": "the key pair (the public key registered for the user)",
    "390189": "the role (?role=)",
    "390201": "the database, schema or warehouse (not found or not authorised)",
    "000606": "the warehouse (?warehouse=): no active warehouse for the session",
    "002043": "the database or schema (not found or not authorised)",
    "002003": "the database or schema (not found or not authorised)",
}
_UNREACHABLE_ERRNOS = frozenset({250001, 250003, 251011, 251012})


def engine_options(url: URL) -> dict[str, Any]:
    # Every connection sends its session parameters at login; keep them alive in a pool.
    return {"pool_pre_ping": True}


def default_connect_args() -> dict[str, Any]:
    # validate_default_parameters: Snowflake refuses the login when the URL's database,
    # schema, warehouse or role does not exist (else a missing warehouse surfaces only at
    # the first query needing one), and the connector refuses unknown argument names.
    return {"login_timeout": DEFAULT_LOGIN_TIMEOUT_SECONDS, "validate_default_parameters": True}


def check_url(url: URL) -> URL:
    if not url.host:
        raise ValueError("names no Snowflake account (snowflake://USER@ACCOUNT/DATABASE)")
    if not url.username:
        raise ValueError("names no Snowflake user (snowflake://USER@ACCOUNT/DATABASE)")
    if not url.database:
        raise ValueError("names no database (snowflake://USER@ACCOUNT/DATABASE/SCHEMA)")
    return url


def connection_error_message(url: URL, exc: Exception) -> str | None:
    """One line naming what in the settings Snowflake refused; None when `exc` is not a
    refusal this module knows."""
    original = getattr(exc, "orig", None) or exc
    if not isinstance(original, SnowflakeError):
        return None
    text = str(original)
    for code, what in _REFUSALS.items():
        if code in text:
            return f"Snowflake refused {what} ({code})"
    if getattr(original, "sqlstate", None) == "28000":
        return "Snowflake refused the credentials"
    if getattr(original, "errno", None) in _UNREACHABLE_ERRNOS:
        return f"Snowflake account {url.host!r} is unreachable (errno {original.errno})"
    return None


def lock_for_ddl(connection: sa.Connection) -> None:
    # Snowflake runs each DDL statement in its own transaction; IF NOT EXISTS makes
    # concurrent creators harmless.
    return None


def lock_for_load(connection: sa.Connection, table: sa.Table) -> None:
    # Snowflake has no LOCK TABLE: its DML takes the table's lock until commit, so a second
    # loader's first write waits for the first loader. Loads are serialised upstream too
    # (the warehouse pool, one `connections-pipeline run` per instance folder).
    return None


def _stage_table(table: sa.Table) -> sa.Table:
    """A session's temporary copy of `table`'s columns, every one nullable. Unqualified: the
    session's schema is the warehouse schema (`before_transaction`)."""
    return sa.Table(
        _STAGE_TABLE.format(table.name),
        sa.MetaData(),
        *(sa.Column(column.name, column.type, nullable=True) for column in table.columns),
        prefixes=["TEMPORARY"],
    )


def _schema_exists(connection: sa.Connection, schema: str) -> bool:
    found = connection.execute(
        sa.text("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = :name"),
        {"name": schema.upper()},
    ).scalar_one()
    return bool(found)


def before_transaction(connection: sa.Connection, metadata: sa.MetaData) -> None:
    """Create this session's stage and stage tables, once per connection, once the schema
    exists (its first `ensure_tables` runs without them)."""
    info = connection.connection.info
    key = (_READY, metadata.schema, tuple(sorted(metadata.tables)))
    if info.get(key):
        return
    try:
        if metadata.schema and not _schema_exists(connection, metadata.schema):
            return
        with raw(connection).cursor() as cursor:
            if metadata.schema:
                cursor.execute(f"USE SCHEMA {metadata.schema}")
            cursor.execute(f"CREATE TEMPORARY STAGE IF NOT EXISTS {_STAGE}")
            for table in metadata.tables.values():
                ddl = str(
                    sa.schema.CreateTable(_stage_table(table)).compile(dialect=connection.dialect)
                )
                cursor.execute(ddl.replace("CREATE TEMPORARY", "CREATE OR REPLACE TEMPORARY", 1))
        info[key] = True
    finally:
        # End what the catalog query began, so the caller's transaction starts clean.
        connection.commit()


def _parquet_ready(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC").dt.strftime(_ISO)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime)
    )


def _copy_into(connection: sa.Connection, target: sa.Table, frame: pl.DataFrame) -> None:
    """PUT `frame` as one Parquet file and COPY it into `target` (same column names)."""
    dialect = connection.dialect
    preparer = dialect.identifier_preparer
    stage = _STAGE
    prefix = uuid.uuid4().hex
    columns = ", ".join(preparer.quote(name) for name in frame.columns)
    values = ", ".join(
        f'$1:"{name}"::{target.c[name].type.compile(dialect=dialect)}' for name in frame.columns
    )
    with tempfile.TemporaryDirectory(prefix="wh_snowflake_") as folder:
        path = Path(folder) / f"{prefix}.parquet"
        _parquet_ready(frame).write_parquet(path, compression="zstd")
        put = f"PUT 'file://{path.as_posix()}' @{stage}/{prefix} AUTO_COMPRESS=FALSE"
        copy = (
            f"COPY INTO {preparer.format_table(target)} ({columns}) "
            f"FROM (SELECT {values} FROM @{stage}/{prefix}/) "
            "FILE_FORMAT = (TYPE = PARQUET) PURGE = TRUE"
        )
        with driver_errors(copy, SnowflakeError), raw(connection).cursor() as cursor:
            cursor.execute(put)
            cursor.execute(copy)


def write_frame(connection: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> int:
    _copy_into(connection, table, frame)
    return frame.height


@contextmanager
def staged(connection: sa.Connection, frame: pl.DataFrame, like: sa.Table) -> Iterator[sa.Table]:
    """The session's temporary table for `like`, emptied and filled with `frame` (DML only:
    part of the caller's transaction)."""
    stage_table = _stage_table(like)
    connection.execute(stage_table.delete())
    if frame.height:
        _copy_into(connection, stage_table, frame)
    yield sa.Table(
        stage_table.name,
        sa.MetaData(),
        *(sa.Column(name, like.c[name].type) for name in frame.columns),
    )


def _transport_column(column: sa.ColumnElement, dtype: pl.DataType) -> sa.ColumnElement:
    if isinstance(dtype, pl.Datetime):
        # Microseconds since the epoch: exact, independent of the session's TIMEZONE and
        # output formats, and a null stays null (the connector's timestamp decoding is not
        # relied on).
        return sa.func.date_part(sa.literal_column("epoch_microsecond"), column)
    return column


def read_select(connection: sa.Connection, query: sa.Select, schema: pl.Schema) -> pl.DataFrame:
    subquery = query.subquery("q")
    wrapped = sa.select(
        *(_transport_column(subquery.c[name], dtype).label(name) for name, dtype in schema.items())
    )
    # Rows, not the connector's Arrow fetch: that one needs pandas, and pandas installed
    # makes every process importing pandera (the code location, each run) seconds slower.
    rows = connection.execute(wrapped).all()
    if not rows:
        return pl.DataFrame(schema=schema)
    transport = {
        name: pl.Int64 if isinstance(dtype, pl.Datetime) else None for name, dtype in schema.items()
    }
    frame = pl.DataFrame(
        [tuple(row) for row in rows],
        schema=list(schema.names()),
        schema_overrides={name: dtype for name, dtype in transport.items() if dtype},
        orient="row",
        infer_schema_length=None,
    )
    return typed(
        frame.with_columns(
            pl.from_epoch(pl.col(name), time_unit="us").dt.replace_time_zone("UTC")
            for name, dtype in schema.items()
            if isinstance(dtype, pl.Datetime)
        ),
        schema,
    )


def read_narrow(connection: sa.Connection, table: sa.Table, schema: pl.Schema) -> pl.DataFrame:
    return read_select(connection, sa.select(*(table.c[name] for name in schema)), schema)


def insert_new(connection: sa.Connection, table: sa.Table, rows: sa.Select, key: str) -> None:
    columns = [column.name for column in rows.selected_columns]
    connection.execute(table.insert().from_select(columns, rows))


def upsert(
    connection: sa.Connection,
    table: sa.Table,
    source: sa.TableClause,
    key: str,
    set_values: SetValues,
) -> None:
    """UPDATE the stored keys, then INSERT the others: two DML statements of the caller's
    transaction (a MERGE would do both; these two say the same in the SQL every engine that
    emulates Snowflake runs faithfully)."""
    connection.execute(
        table.update().where(table.c[key] == source.c[key]).values(dict(set_values(source.c)))
    )
    columns = list(source.c.keys())
    new_rows = sa.select(*source.c).where(source.c[key].not_in(sa.select(table.c[key])))
    connection.execute(table.insert().from_select(columns, new_rows))


def insert_if_absent(
    connection: sa.Connection, table: sa.Table, values: Mapping[str, Any], key: str
) -> bool:
    row = sa.select(
        *(sa.literal(value, table.c[name].type).label(name) for name, value in values.items())
    ).where(~sa.exists().where(table.c[key] == values[key]))
    return connection.execute(table.insert().from_select(list(values), row)).rowcount == 1
