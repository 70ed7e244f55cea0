"""Shared pieces of the SQL-model tests: a synced warehouse and reads of model relations."""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from sync.sync_helpers import NAMES_AT_ONCE

from connections_pipeline.assets.sql_models import sql_model_assets
from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.resources import FinchResource, TokenSourceResource, WarehouseResource
from connections_pipeline.sql_models.statements import relation
from finch_sandbox import FinchSandbox, SandboxConfig, serve_in_thread

TIME_SCALE = 0.01
MODEL_NAMES = {
    "connections",
    "connection_states_daily",
    "sync_freshness",
    "provider_health",
    "needs_action_queue",
    "connect_session_funnel",
}


def warehouse_resource(
    kind: str, tmp_path: Path, postgres_url: str = "", snowflake: Any = None
) -> WarehouseResource:
    """A warehouse of `kind`: a DuckDB file, a fresh PostgreSQL schema, or a fresh database
    of the Snowflake emulator `snowflake` (a `SnowflakeEmulator`)."""
    if kind == "duckdb":
        return WarehouseResource(url=f"duckdb:///{tmp_path / 'bi.duckdb'}", schema_name="finch")
    if kind == "snowflake":
        return WarehouseResource(
            url=snowflake.url(snowflake.new_database()),
            schema_name="finch",
            connect_args=snowflake.connect_args,
        )
    return WarehouseResource(url=postgres_url, schema_name=f"bi_{secrets.token_hex(4)}")


def kind_resource(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> WarehouseResource:
    """`warehouse_resource(kind, ...)`, starting only the database `kind` needs."""
    if kind == "snowflake":
        return warehouse_resource(
            kind, tmp_path, snowflake=request.getfixturevalue("snowflake_emulator")
        )
    if kind == "postgres":
        return warehouse_resource(kind, tmp_path, request.getfixturevalue("postgres_url"))
    return warehouse_resource(kind, tmp_path)


@dataclass
class SyncedWarehouse:
    """A warehouse after two syncs `days_between` days apart, and the emulator's truth."""

    sandbox: FinchSandbox
    truth_first: list[dict[str, Any]]
    truth_second: list[dict[str, Any]]
    first_day: date
    second_day: date
    days_between: int


@contextmanager
def two_syncs(
    resource: WarehouseResource, seed: int = 21, connections: int = 60, days_between: int = 4
) -> Iterator[SyncedWarehouse]:
    sandbox = FinchSandbox(SandboxConfig(seed=seed, connections=connections, time_scale=TIME_SCALE))
    with serve_in_thread(sandbox) as base_url:
        finch = FinchResource(
            base_url=base_url, time_scale=TIME_SCALE, timeout_seconds=5.0, max_attempts=4
        )
        source = TokenSourceResource(kind="sandbox")
        with resource.open() as warehouse:
            first_day = sandbox.now.date()
            sync_with_resources("run-1", finch, source, warehouse, NAMES_AT_ONCE)
            truth_first = sandbox.truth()
            sandbox.advance(days_between)
            second_day = sandbox.now.date()
            sync_with_resources("run-2", finch, source, warehouse, NAMES_AT_ONCE)
        yield SyncedWarehouse(
            sandbox, truth_first, sandbox.truth(), first_day, second_day, days_between
        )


def materialize_models(
    resource: WarehouseResource, models_dir: Path | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        sql_model_assets(models_dir), resources={"warehouse": resource}, raise_on_error=False
    )


def read_relation(resource: WarehouseResource, name: str) -> list[dict[str, Any]]:
    """Every row of a model's relation, as dicts, straight from the database (on Snowflake,
    the columns it keeps in upper case come back in lower case)."""
    with resource.open() as warehouse, warehouse._connect(transaction=False) as connection:
        target = relation(name, resource.schema_name, warehouse.dialect)
        result = connection.execute(sa.text(f"SELECT * FROM {target}"))
        return [dict(row._mapping) for row in result]


def materialized_keys(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def failure_messages(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """Step key -> the failure's message with its causes."""
    messages = {}
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.step_failure_data.error
        parts = []
        while error is not None:
            parts.append(error.message)
            error = error.cause
        messages[event.step_key] = "\n".join(parts)
    return messages
