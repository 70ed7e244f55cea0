"""A sync through a faulty Finch loads what Finch answered, reports the rest, invents nothing.

Every Finch endpoint answers 10% 5xx, hangs past the client timeout 2% of the time, sends a
malformed body 1% and drops the connection 1%, over real HTTP on loopback. Two attempts
per call leave a few calls failing for good, so both halves of the claim are exercised.
"""

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sync.sync_helpers import (
    disconnected_keys,
    make_warehouse,
    normalized,
    served_sandbox,
    truth_differences,
)

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.sync.run import SyncHeld
from finch_sandbox import EndpointFaults

pytestmark = pytest.mark.slow

CONNECTIONS = 300
TIMEOUT_SECONDS = 0.5
FAULTS = EndpointFaults(
    error_rate=0.10,
    hang_rate=0.02,
    hang_seconds=TIMEOUT_SECONDS * 2,
    malformed_rate=0.01,
    drop_rate=0.01,
)
FAULT_KINDS = ("error", "hang", "malformed", "drop")


def _invented_cells(
    truth: list[dict[str, Any]], current: pl.DataFrame, keys: set[str]
) -> list[tuple[str, str, Any, Any]]:
    """Cells of the given connections that hold a value, and not the true one."""
    stored = {row["connection_key"]: row for row in current.iter_rows(named=True)}
    return [
        (row["connection_key"], column, expected, stored[row["connection_key"]][column])
        for row in truth
        if row["connection_key"] in keys and row["connection_key"] in stored
        for column, expected in row.items()
        if stored[row["connection_key"]].get(column) is not None
        and normalized(column, stored[row["connection_key"]][column])
        != normalized(column, expected)
    ]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_sync_through_faults_loads_answers_and_reports_failures(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    with served_sandbox(seed=71, connections=CONNECTIONS, faults={"*": FAULTS}) as served:
        sandbox, finch, source = served
        faulty = finch.model_copy(update={"timeout_seconds": TIMEOUT_SECONDS, "max_attempts": 2})
        result = sync_with_resources("run-1", faulty, source, warehouse)
        after_faults = warehouse.read_current()
        tokens_after_faults = warehouse.read_tokens()
        truth = sandbox.truth()
        met = sandbox.stats()["faults"]
        # Finch recovers: the next run fills in what the faults kept out.
        sandbox.set_faults({})
        sync_with_resources("run-2", finch, source, warehouse)
        recovered = warehouse.read_current()
        truth_after_recovery = sandbox.truth()
        # Faults again, now with every connection known: nothing may be lost or invented.
        sandbox.set_faults({"*": FAULTS})
        third = sync_with_resources("run-3", faulty, source, warehouse)
        after_known_faults = warehouse.read_current()

    assert all(met.get(fault, 0) > 0 for fault in FAULT_KINDS), met
    # Calls still failing after retries make the run partial, not a success...
    assert result.sync_run["status"] == "partial"
    assert "failed after retries" in result.sync_run["status_reason"]
    assert result.sync_run["retries"] > 0  # calls that failed, then succeeded
    raw = warehouse.read_raw_responses("run-1")
    failed = raw.filter(pl.col("outcome") == "failed")
    assert failed.height > 0, "two attempts per call should leave some calls failing"

    # Reported with their reason: every failed call, token and follow-up.
    assert failed["failure_reason"].null_count() == 0
    assert all(reason.startswith("failed after retries: ") for reason in failed["failure_reason"])
    failed_tokens = tokens_after_faults.filter(
        pl.col("token_fingerprint").is_in(
            failed.filter(pl.col("endpoint") == "introspect")["token_fingerprint"].implode()
        )
    )
    assert failed_tokens.height == result.sync_run["failed_tokens"] > 0
    assert set(failed_tokens["last_outcome"]) == {"failed"}
    assert failed_tokens["last_error"].null_count() == 0
    followups = failed.filter(pl.col("endpoint").is_in(["jobs", "company"]))
    rows = after_faults.filter(pl.col("connection_id").is_in(followups["connection_id"].implode()))
    assert rows.height > 0
    # A connection first seen in this run whose freshest token failed has no row yet.
    failed_introspections = set(failed.filter(pl.col("endpoint") == "introspect")["connection_id"])
    rowless = set(followups["connection_id"]) - set(rows["connection_id"])
    assert rowless <= failed_introspections
    assert all(" not read: failed after retries: " in error for error in rows["last_error"])

    # Loaded correctly: every connection no failed call touched equals the ground truth.
    touched = set(failed["connection_id"].drop_nulls().to_list())
    never_seen = disconnected_keys(truth)
    untouched_differences = [
        difference
        for difference in truth_differences(truth, after_faults, never_seen)
        if difference[0] not in touched
    ]
    assert untouched_differences == []
    # Nothing invented: the touched ones may lack values or rows, never hold wrong values.
    assert _invented_cells(truth, after_faults, touched) == []
    assert set(after_faults["connection_key"]) <= {row["connection_key"] for row in truth}
    missing = {row["connection_key"] for row in truth} - set(after_faults["connection_key"])
    assert missing <= touched

    assert truth_differences(truth_after_recovery, recovered, never_seen) == []

    # A faulty run after a good one keeps every connection as Finch last showed it: none
    # dropped, none marked disconnected, the unread ones flagged with the reason.
    assert third.sync_run["failed_tokens"] > 0
    assert truth_differences(truth_after_recovery, after_known_faults, never_seen) == []
    third_failed = warehouse.read_raw_responses("run-3").filter(
        (pl.col("outcome") == "failed") & (pl.col("endpoint") == "introspect")
    )
    unread = after_known_faults.filter(
        pl.col("connection_id").is_in(third_failed["connection_id"].implode())
        & (pl.col("token_count") == 1)
    )
    assert unread.height > 0
    assert all(error.startswith("not refreshed: ") for error in unread["last_error"])
    warehouse.dispose()


def test_as_of_stays_finchs_clock_when_calls_time_out(tmp_path: Path, postgres_url: str) -> None:
    # Regression: a call that timed out had no Date header, so its raw row took this
    # machine's clock and, being the latest time seen, became the snapshot's "now"; every
    # sync then looked overdue against a Finch clock hours behind.
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    hang = EndpointFaults(hang_rate=1.0, hang_seconds=TIMEOUT_SECONDS * 2)
    with served_sandbox(seed=73, connections=20, faults={"introspect": hang}) as served:
        sandbox, finch, source = served
        quick = finch.model_copy(update={"timeout_seconds": TIMEOUT_SECONDS, "max_attempts": 1})
        # Every token timing out holds the run; its run row and raw responses are kept.
        with pytest.raises(SyncHeld) as held:
            sync_with_resources("run-1", quick, source, warehouse)
        result = held.value.result
        finch_now = sandbox.now
    assert result.request_stats["requests"] > 0
    raw = warehouse.read_raw_responses("run-1")
    timed_out = raw.filter(pl.col("endpoint") == "introspect")
    assert timed_out.height > 0 and set(timed_out["outcome"]) == {"failed"}
    assert raw.filter(pl.col("endpoint") == "providers")["outcome"].to_list() == ["ok"]
    assert result.as_of == finch_now
    assert warehouse.read_table("finch_sync_runs")["as_of"].to_list() == [finch_now]
    warehouse.dispose()
