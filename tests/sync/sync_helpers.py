"""Shared pieces of the end-to-end sync tests: warehouses, emulator, truth comparison."""

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from connections_pipeline.resources import FinchResource, TokenSourceResource
from connections_pipeline.sync.run import SyncSettings
from connections_pipeline.transform.polling import RunBudget
from connections_pipeline.warehouse import TABLE_COLUMNS, Warehouse
from finch_sandbox import FinchSandbox, SandboxConfig, serve_in_thread

TIME_SCALE = 0.01
# Every company name in a run's first sync, for tests about something else than names
# spread over runs (tests/scale covers those).
NAMES_AT_ONCE = SyncSettings(budget=RunBudget(company_share=0.9))
# A connection revoked before the pipeline ever saw it working is known only by the id the
# token source gives: Finch answers nothing else for a revoked token.
KNOWABLE_WHEN_NEVER_SEEN = ("state", "connection_id", "connection_status", "needs_action")
# Between two syncs Finch may sync a connection once more and then lose it; the pipeline
# shows the last sync it saw.
UNKNOWABLE_AFTER_DISCONNECT = ("last_synced_at",)
RUN_LOG_TABLES = ("finch_sync_runs", "finch_raw_responses")
# The labels of Finch's Dashboard, written out here rather than read from the code.
DASHBOARD_LABELS = {
    "connected": "Connected",
    "reauth": "Re-auth",
    "pending": "Pending",
    "processing": "Processing",
    "error_no_account_setup": "Error: no account setup",
    "error_permissions": "Error: permissions",
    "disconnected": "Disconnected",
}


def make_warehouse(kind: str, tmp_path: Path, postgres_url: str) -> Warehouse:
    if kind == "duckdb":
        return Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}", schema="finch")
    return Warehouse(postgres_url, schema=f"finch_{secrets.token_hex(4)}")


@contextmanager
def served_sandbox(
    seed: int, connections: int = 150, **config: Any
) -> Iterator[tuple[FinchSandbox, FinchResource, TokenSourceResource]]:
    """The emulator over real HTTP on loopback, and resources pointed at it."""
    sandbox = FinchSandbox(
        SandboxConfig(seed=seed, connections=connections, time_scale=TIME_SCALE, **config)
    )
    with serve_in_thread(sandbox) as base_url:
        finch = FinchResource(
            base_url=base_url, time_scale=TIME_SCALE, timeout_seconds=5.0, max_attempts=4
        )
        yield sandbox, finch, TokenSourceResource(kind="sandbox")


def normalized(column: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if column == "products" and isinstance(value, list):
        return ",".join(value)
    return value


def truth_differences(
    truth: list[dict[str, Any]],
    current: pl.DataFrame,
    never_seen: Iterable[str] = (),
    knowable_when_never_seen: Iterable[str] = KNOWABLE_WHEN_NEVER_SEEN,
) -> list[tuple[str, str, Any, Any]]:
    """(key, column, truth value, warehouse value) for every cell that differs; of the
    `never_seen` connections (revoked before any sync saw them working) only the
    `knowable_when_never_seen` columns are compared."""
    never_seen = set(never_seen)
    knowable = set(knowable_when_never_seen)
    stored = {row["connection_key"]: row for row in current.iter_rows(named=True)}
    differences = [
        (key, "<row>", "present", "missing")
        for key in {row["connection_key"] for row in truth} - set(stored)
    ]
    differences += [
        (key, "<row>", "absent", "present")
        for key in set(stored) - {row["connection_key"] for row in truth}
    ]
    for row in truth:
        key = row["connection_key"]
        if key not in stored:
            continue
        for column, expected in row.items():
            if key in never_seen and column not in knowable:
                continue
            if row["state"] == "disconnected" and column in UNKNOWABLE_AFTER_DISCONNECT:
                continue
            # A name whose company lookup waits for a later run (the company share) is the
            # entity name, marked pending; tests/scale checks the names fill in over runs.
            if column == "company_name" and stored[key].get("company_name_pending"):
                continue
            actual = normalized(column, stored[key].get(column))
            if normalized(column, expected) != actual:
                differences.append((key, column, expected, actual))
    return differences


def table_contents(warehouse: Warehouse) -> dict[str, list[tuple]]:
    """Every row of every warehouse table, sorted, for before/after comparisons."""
    contents = {}
    for name in TABLE_COLUMNS:
        frame = warehouse.read_table(name)
        contents[name] = sorted(frame.rows(), key=repr)
    return contents


def all_text(warehouse: Warehouse) -> str:
    """Every cell of every table as text, to search for secrets."""
    parts = []
    for name in TABLE_COLUMNS:
        frame = warehouse.read_table(name)
        parts.append(frame.write_csv())
    return "\n".join(parts)


def disconnected_keys(truth: list[dict[str, Any]]) -> set[str]:
    return {row["connection_key"] for row in truth if row["state"] == "disconnected"}
