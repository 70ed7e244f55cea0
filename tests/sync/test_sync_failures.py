"""Tokens Finch cannot answer for are reflected, never fatal, never invented or leaked."""

from pathlib import Path

import polars as pl
import pytest
from sync_helpers import all_text, make_warehouse, served_sandbox

from connections_pipeline.sandbox import EndpointFaults
from connections_pipeline.sync.run import run_sync

pytestmark = pytest.mark.slow


def test_failed_tokens_keep_their_rows_and_are_counted(tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=41, connections=60) as (sandbox, finch, source):
        run_sync("run-1", finch, source, warehouse)
        before = warehouse.read_current()

        sandbox.set_faults({"introspect": EndpointFaults(error_rate=1.0)})
        failing = finch.model_copy(update={"max_attempts": 2})
        result = run_sync("run-2", failing, source, warehouse)
        after = warehouse.read_current()
        tokens = [token["access_token"] for token in sandbox.tokens()]
        secret = sandbox.credentials[1]

    assert result.sync_run["failed_tokens"] == result.sync_run["tokens"] > 0
    runs = warehouse.read_table("finch_sync_runs").filter(pl.col("run_id") == "run-2")
    assert runs["failed_tokens"].to_list() == [result.sync_run["tokens"]]
    # Nothing dropped, nothing invented: every known connection keeps its last known values.
    known = before.filter(pl.col("state") != "staged")
    kept = after.join(known.select("connection_key"), on="connection_key", how="semi")
    assert kept.height == known.height
    compared = ["state", "company_name", "connection_status", "connection_type", "entity_count"]
    assert (
        kept.sort("connection_key")
        .select(compared)
        .equals(known.sort("connection_key").select(compared))
    )
    live = kept.filter(pl.col("state") == "live")
    assert set(live["last_error"].to_list()) == {"not refreshed: token answered failed"}
    assert set(live["last_seen_at"].to_list()) <= set(known["last_seen_at"].to_list())

    stored = all_text(warehouse)
    assert [token for token in tokens if token in stored] == []
    assert secret not in stored
    warehouse.dispose()


def test_unknown_revoked_token_is_reported_not_invented(tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=43, connections=40) as (sandbox, finch, source):
        result = run_sync("run-1", finch, source, warehouse)
        revoked_live = {
            token["connection_id"] for token in sandbox.tokens() if token["revoked"]
        } - {row["connection_id"] for row in sandbox.truth() if row["state"] == "disconnected"}
    tokens = warehouse.read_table("finch_tokens")
    invalid = tokens.filter(pl.col("last_outcome") == "invalid_token")
    assert invalid.height == result.sync_run["invalid_tokens"] > 0
    current = warehouse.read_current()
    # Old revoked tokens of live connections change nothing: those connections stay live.
    live_ids = set(current.filter(pl.col("state") == "live")["connection_id"].to_list())
    assert revoked_live <= live_ids
    warehouse.dispose()
