"""Pieces more than one dialect module uses."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

if TYPE_CHECKING:
    from connections_pipeline.warehouse.dialects import SetValues


@contextmanager
def driver_errors(statement: str, base: type[Exception]) -> Iterator[None]:
    """Errors raised on the raw driver connection surface as SQLAlchemy's DBAPIError
    subclasses (IntegrityError, ...), like those of statements run through SQLAlchemy."""
    try:
        yield
    except base as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, base) from exc


def raw(connection: sa.Connection) -> Any:
    """The driver's own connection under a SQLAlchemy connection."""
    return connection.connection.driver_connection


def quoted_columns(connection: sa.Connection, names: list[str]) -> str:
    preparer = connection.dialect.identifier_preparer
    return ", ".join(preparer.quote(name) for name in names)


def typed(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """A frame read back from a driver, cast to `schema` by position (drivers may change the
    names' case), timestamps as UTC."""
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    frame = frame.rename(dict(zip(frame.columns, schema.names(), strict=True)))
    return frame.select(
        (
            pl.col(name).dt.convert_time_zone("UTC")
            if isinstance(dtype, pl.Datetime)
            else pl.col(name)
        ).cast(dtype)
        for name, dtype in schema.items()
    )


# PostgreSQL and DuckDB share INSERT ... ON CONFLICT (SQLAlchemy's PostgreSQL construct
# renders what DuckDB accepts).


def insert_new_on_conflict(
    connection: sa.Connection, table: sa.Table, rows: sa.Select, key: str
) -> None:
    columns = [column.name for column in rows.selected_columns]
    statement = pg_insert(table).from_select(columns, rows)
    connection.execute(statement.on_conflict_do_nothing(index_elements=[key]))


def upsert_on_conflict(
    connection: sa.Connection,
    table: sa.Table,
    source: sa.TableClause,
    key: str,
    set_values: "SetValues",
) -> None:
    columns = list(source.columns.keys())
    statement = pg_insert(table).from_select(columns, sa.select(*source.columns))
    statement = statement.on_conflict_do_update(
        index_elements=[key], set_=dict(set_values(statement.excluded))
    )
    connection.execute(statement)


def insert_if_absent_on_conflict(
    connection: sa.Connection, table: sa.Table, values: Mapping[str, Any], key: str
) -> bool:
    statement = (
        pg_insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c[key])
    )
    # RETURNING yields the row only when it was inserted; rowcount is not reliable for
    # ON CONFLICT on every driver.
    return connection.execute(statement).first() is not None
