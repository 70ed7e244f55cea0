"""What Dagster's UI shows of a warehouse table: its column schema, from the one registry.

Dagster reads a table asset's columns from the `dagster/column_schema` metadata key (a
`TableSchema`); the names, types, nullability and descriptions all come from
`warehouse/columns.py`, so the UI cannot drift from the tables the code creates.
"""

from collections.abc import Iterable

import dagster as dg
import polars as pl

from connections_pipeline.warehouse.columns import Column, columns_of

COLUMN_SCHEMA = "dagster/column_schema"
ROW_COUNT = "dagster/row_count"
TABLE_NAME = "dagster/table_name"
# Beside the table's row count: how many rows this run inserted, updated or deleted.
ROWS_CHANGED = "rows_changed_this_run"


def type_name(dtype: pl.DataType) -> str:
    """The column type as the UI shows it (the warehouse's SQL type family)."""
    if isinstance(dtype, pl.Datetime):
        return "timestamp (UTC)"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "double"
    return "text"


def column_schema(columns: Iterable[Column]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column.name,
                type_name(column.dtype),
                description=column.description or None,
                constraints=dg.TableColumnConstraints(nullable=column.nullable),
            )
            for column in columns
        ]
    )


def table_schema_metadata(table: str) -> dict[str, dg.TableSchema]:
    """Definition metadata of the asset of warehouse table `table`."""
    return {COLUMN_SCHEMA: column_schema(columns_of(table))}


def export_schema(headers: Iterable[tuple[str, str]], table: str) -> dict[str, dg.TableSchema]:
    """Definition metadata of a file export: its (header, column of `table`) pairs, typed
    and described as the table's columns."""
    registry = {column.name: column for column in columns_of(table)}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(
                header,
                type_name(registry[column].dtype),
                description=f"{column}: {registry[column].description}",
            )
            for header, column in headers
        ]
    )
    return {COLUMN_SCHEMA: schema}
