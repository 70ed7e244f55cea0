"""SQLAlchemy tables built from the column lists, and the create-and-migrate step."""

import re

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from connections_pipeline.warehouse.columns import (
    PRIMARY_KEYS,
    TABLE_COLUMNS,
    Column,
)
from connections_pipeline.warehouse.dialects import dialect_of

SCHEMA_SETTING = "CONNECTIONS_WAREHOUSE_SCHEMA"
DEFAULT_SCHEMA = "finch"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# Key columns compare byte-wise on PostgreSQL: btree comparisons skip the locale, and the
# order equals Polars' string sort, so a frame sorted in Polars appends to the index.
_KEY_TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


# Schemas the databases keep for themselves: PostgreSQL refuses to create `pg_*` and owns
# information_schema; DuckDB owns information_schema and pg_catalog and reads `temp` and
# `system` as its catalogs, so `temp.finch_connections` would be ambiguous.
_RESERVED_PREFIX = "pg_"
_RESERVED_SCHEMAS = frozenset({"information_schema", "temp", "system"})


def validate_schema_name(schema: str) -> str:
    """Return `schema` if it is a plain SQL identifier, else raise ValueError.

    The name is interpolated into DDL and COPY statements, so nothing that would need
    quoting is accepted, nor a name the databases reserve (`pg_*`, `information_schema`,
    `temp`, `system`; compared without case, as DuckDB does).
    """
    if not isinstance(schema, str) or not _IDENTIFIER.fullmatch(schema):
        raise ValueError(
            f"{SCHEMA_SETTING} must be a plain identifier matching "
            f"{_IDENTIFIER.pattern}, got {schema!r}"
        )
    folded = schema.lower()
    if folded.startswith(_RESERVED_PREFIX) or folded in _RESERVED_SCHEMAS:
        raise ValueError(
            f"{SCHEMA_SETTING} {schema!r} is reserved by the database; "
            f"names starting with {_RESERVED_PREFIX!r} and "
            f"{', '.join(sorted(_RESERVED_SCHEMAS))} cannot be used"
        )
    return schema


def _sql_type(column: Column, is_key: bool) -> sa.types.TypeEngine:
    dtype = column.dtype
    if dtype == pl.Utf8:
        return _KEY_TEXT if is_key else sa.Text()
    if dtype == pl.Int32:
        return sa.Integer()
    if dtype == pl.Int64:
        return sa.BigInteger()
    if dtype == pl.Float64:
        return sa.Double()
    if dtype == pl.Boolean:
        return sa.Boolean()
    if isinstance(dtype, pl.Datetime):
        return sa.DateTime(timezone=True)
    raise TypeError(f"no SQL type for {column.name}: {dtype}")


def build_metadata(schema: str = DEFAULT_SCHEMA) -> sa.MetaData:
    """All warehouse tables in a MetaData bound to `schema` (validated)."""
    metadata = sa.MetaData(schema=validate_schema_name(schema))
    for table_name, columns in TABLE_COLUMNS.items():
        keys = PRIMARY_KEYS[table_name]
        sa.Table(
            table_name,
            metadata,
            *(
                sa.Column(
                    column.name,
                    _sql_type(column, column.name in keys),
                    nullable=column.nullable,
                    primary_key=column.name in keys,
                    autoincrement=False,
                )
                for column in columns
            ),
        )
    return metadata


def ensure_tables(connection: sa.Connection, metadata: sa.MetaData) -> list[str]:
    """Create the schema and tables if missing and add columns missing from old tables.

    Runs in the caller's transaction. Idempotent. Added columns are nullable even when the
    column is NOT NULL for new tables: existing rows have no value for them.

    Returns:
        The "table.column" names that were added.
    """
    dialect_of(connection).lock_for_ddl(connection)
    connection.execute(sa.schema.CreateSchema(metadata.schema, if_not_exists=True))
    metadata.create_all(connection)
    # information_schema, not SQLAlchemy's inspector: it answers the same on both databases.
    catalog = sa.table(
        "columns",
        sa.column("table_schema"),
        sa.column("table_name"),
        sa.column("column_name"),
        schema="information_schema",
    ).alias("catalog")
    # Snowflake keeps unquoted names in upper case.
    query = sa.select(catalog.c.table_name, catalog.c.column_name).where(
        sa.func.lower(catalog.c.table_schema) == metadata.schema.lower()
    )
    present = {
        (table_name.lower(), column_name.lower())
        for table_name, column_name in connection.execute(query)
    }
    added = []
    for table in metadata.tables.values():
        for column in table.columns:
            if (table.name, column.name) in present:
                continue
            column_type = column.type.compile(dialect=connection.dialect)
            preparer = connection.dialect.identifier_preparer
            connection.execute(
                sa.text(
                    f"ALTER TABLE {preparer.format_table(table)} "
                    f"ADD COLUMN {preparer.quote(column.name)} {column_type}"
                )
            )
            added.append(f"{table.name}.{column.name}")
    return added
