"""Bulk movement of Polars frames in and out of the warehouse, inside the caller's transaction.

Each database does it its own way (`dialects/`): PostgreSQL with COPY, DuckDB with Arrow,
Snowflake with staged Parquet files and COPY INTO. Data rows never go through row-by-row
INSERT or executemany.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import sqlalchemy as sa

from connections_pipeline.warehouse.dialects import dialect_of


def write_frame(connection: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> int:
    """Append every row of `frame` to `table` through the dialect's bulk path.

    The frame's columns must be a subset of the table's, with matching dtypes.

    Returns:
        The number of rows written.
    """
    if frame.height == 0:
        return 0
    return dialect_of(connection).write_frame(connection, table, frame)


@contextmanager
def staged(
    connection: sa.Connection, frame: pl.DataFrame, like: sa.Table
) -> Iterator[sa.TableClause]:
    """Make `frame` queryable as a table for the rest of a `with` block.

    Args:
        connection: the transaction's connection.
        frame: rows to stage; its columns must exist in `like`.
        like: the warehouse table whose column types the stage copies.

    Yields:
        A selectable with one column per frame column.
    """
    with dialect_of(connection).staged(connection, frame, like) as stage:
        yield stage


def read_select(connection: sa.Connection, query: sa.Select, schema: pl.Schema) -> pl.DataFrame:
    """Run `query` (its output columns named as in `schema`) and return a typed frame."""
    return dialect_of(connection).read_select(connection, query, schema)


def read_narrow(connection: sa.Connection, table: sa.Table, schema: pl.Schema) -> pl.DataFrame:
    """Every row of a few text or integer columns of `table` (named as in `schema`)."""
    return dialect_of(connection).read_narrow(connection, table, schema)
