"""Shared pieces of the CSV export tests: a synced warehouse, expected rows, read-backs.

The expected rows are computed here in plain Python from `Warehouse.read_current()`, not
with the export code, so the tests compare two independent answers.
"""

import csv
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from sync.sync_helpers import NAMES_AT_ONCE

from connections_pipeline.assets.exports import finch_connections_csv
from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.partitions import all_states_tags
from connections_pipeline.resources import (
    ExportDestinationResource,
    FinchResource,
    NotifierResource,
    TokenSourceResource,
    WarehouseResource,
)
from connections_pipeline.warehouse import Warehouse

STATES = ("live", "staged", "disconnected")
HEADER = [
    "Company Name",
    "Company ID",
    "Connection ID",
    "Customer Name",
    "Customer ID",
    "# Entities",
    "Connection Status",
    "Last Synced",
    "Connection Type",
    "Connected",
    "Provider",
    "Left Token Source",
]
SOURCE_COLUMNS = [
    "company_name",
    "company_id",
    "connection_id",
    "customer_name",
    "customer_id",
    "entity_count",
    "connection_status_label",
    "last_synced_at",
    "connection_type",
    "connected_at",
    "provider_name",
    "left_source_at",
]
# With seed 11 and 170 connections, the emulator plants every hostile company and customer
# name on a connection whose names reach the warehouse.
HOSTILE_SEED = 11
HOSTILE_CONNECTIONS = 170
ISO = "%Y-%m-%dT%H:%M:%SZ"


def sync_into(warehouse: Warehouse, seed: int, connections: int) -> None:
    """One sync of the embedded emulator into `warehouse`."""
    finch = FinchResource(sandbox_seed=seed, sandbox_connections=connections)
    sync_with_resources(
        f"export-test-{seed}-{connections}", finch, TokenSourceResource(), warehouse, NAMES_AT_ONCE
    )


def resources(warehouse_url: str, export_url: str, schema: str = "finch", **export: Any) -> dict:
    return {
        "warehouse": WarehouseResource(url=warehouse_url, schema_name=schema),
        "export_destination": ExportDestinationResource(url=export_url, **export),
        "notifier": NotifierResource(),
    }


def export_config(**config: Any) -> dict:
    return {"ops": {"finch_connections_csv": {"config": config}}}


def materialize_states(
    resources: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    partition: str | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """One run of the export: `partition` alone, or all three states as a partition range."""
    tags = None if partition else all_states_tags()
    return dg.materialize(
        [finch_connections_csv],
        resources=resources,
        run_config=export_config(**(config or {})),
        partition_key=partition,
        tags=tags,
        instance=instance,
        raise_on_error=False,
    )


def formula_safe(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_text(value: Any, timestamp_format: str = ISO) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime(timestamp_format)
    return str(value)


def expected_rows(
    current: pl.DataFrame,
    state: str,
    *,
    keep: Callable[[dict[str, Any]], bool] = lambda row: True,
    sort_by: str = "company_name",
    descending: bool = False,
    extra_columns: Iterable[str] = (),
    timestamp_format: str = ISO,
) -> list[list[str]]:
    """The file's rows as the README describes them, from the warehouse rows."""
    rows = [row for row in current.iter_rows(named=True) if row["state"] == state and keep(row)]
    valued = [row for row in rows if row[sort_by] is not None]
    blank = [row for row in rows if row[sort_by] is None]
    valued.sort(
        key=lambda row: (row[sort_by].lower(), row[sort_by], row["connection_key"]),
        reverse=descending,
    )
    blank.sort(key=lambda row: row["connection_key"], reverse=descending)
    columns = [*SOURCE_COLUMNS, *extra_columns]
    return [
        [formula_safe(as_text(row[column], timestamp_format)) for column in columns]
        for row in valued + blank
    ]


def read_with_csv(path: Path | str) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def read_with_polars(source: Path | str | bytes) -> list[list[str]]:
    """Header and rows as text; Polars reads an empty unquoted field as null."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    frame = pl.read_csv(data, infer_schema=False)
    return [frame.columns] + [
        ["" if value is None else value for value in row] for row in frame.iter_rows()
    ]


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [event for event in result.all_events if event.is_step_failure]
    assert failures, "the step should have failed"
    error = failures[0].step_failure_data.error
    parts = []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


def partition_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        event.partition: {key: value.value for key, value in event.metadata.items()}
        for event in result.asset_materializations_for_node("finch_connections_csv")
    }
