"""A sync that cannot be trusted is held: the warehouse keeps the previous snapshot, the run
says why, and the good run after it converges to what Finch shows.

Every scenario runs against the emulator over real HTTP; the held run must leave every table
byte-identical (checksums) but for its own finch_sync_runs row and raw responses.
"""

from pathlib import Path

import polars as pl
import pytest
from guard_helpers import data_checksums, run_row, write_token_file
from sync.sync_helpers import (
    disconnected_keys,
    make_warehouse,
    served_sandbox,
    truth_differences,
)

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.resources import TokenSourceResource
from connections_pipeline.sync.run import SyncHeld, SyncSettings
from finch_sandbox import EndpointFaults, FinchSandbox, SandboxConfig

pytestmark = pytest.mark.slow
ACCEPT = SyncSettings(accept_mass_change=True)


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_finch_down_holds_the_run_and_the_next_run_converges(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    with served_sandbox(seed=41, connections=60) as (sandbox, finch, source):
        never_seen = disconnected_keys(sandbox.truth())
        sync_with_resources("run-1", finch, source, warehouse)
        before = data_checksums(warehouse)

        sandbox.set_faults({"*": EndpointFaults(error_rate=1.0)})
        failing = finch.model_copy(update={"max_attempts": 2})
        with pytest.raises(SyncHeld, match="failed after retries") as held:
            sync_with_resources("run-2", failing, source, warehouse)

        assert data_checksums(warehouse) == before
        row = run_row(warehouse, "run-2")
        assert row["status"] == "held"
        assert row["failed_tokens"] == row["tokens"] == held.value.result.sync_run["tokens"] > 0
        assert "got no usable answer" in row["status_reason"]
        assert "Finch may be down" in row["status_reason"]
        raw = warehouse.read_raw_responses("run-2")
        assert raw.height > 0 and set(raw["outcome"]) == {"failed"}

        sandbox.set_faults({})
        after = sync_with_resources("run-3", finch, source, warehouse)
        assert after.status == "success"
        assert truth_differences(sandbox.truth(), warehouse.read_current(), never_seen) == []
    warehouse.dispose()


def test_tokens_of_another_emulator_hold_the_run(tmp_path: Path, postgres_url: str) -> None:
    # Seed 52's tokens sent to seed 51's emulator: every one answers 401, exactly as if
    # every connection had been revoked. Nothing tells the two apart but their number.
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    foreign = FinchSandbox(SandboxConfig(seed=52, connections=60)).tokens()
    token_file = write_token_file(tmp_path / "tokens.jsonl", foreign, "connection_id")
    with served_sandbox(seed=51, connections=60) as (sandbox, finch, source):
        sync_with_resources("run-1", finch, source, warehouse)
        before = data_checksums(warehouse)
        wrong = TokenSourceResource(tokens_file=str(token_file))
        with pytest.raises(SyncHeld, match="401 invalid_token") as held:
            sync_with_resources("run-2", finch, wrong, warehouse)
        assert "another Finch application or environment" in str(held.value)
        assert data_checksums(warehouse) == before
        assert run_row(warehouse, "run-2")["newly_invalid_tokens"] == len(foreign)

        sync_with_resources("run-3", finch, source, warehouse)
        never_seen = disconnected_keys(sandbox.truth())
        assert truth_differences(sandbox.truth(), warehouse.read_current(), never_seen) == []
    warehouse.dispose()


def test_tokens_of_another_application_are_held_and_never_become_connections(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("postgres", tmp_path, postgres_url)
    with served_sandbox(seed=53, connections=40) as (sandbox, finch, source):
        sync_with_resources("run-1", finch, source, warehouse)
        before = data_checksums(warehouse)
        known = warehouse.read_current()
        client_secret = sandbox.credentials[1]
        other = finch.model_copy(
            update={"client_id": "another-app", "client_secret": client_secret}
        )
        with pytest.raises(SyncHeld, match="belong to another Finch application") as held:
            sync_with_resources("run-2", other, source, warehouse)
        figures = held.value.result.verdict.figures
        answered = held.value.result.token_outcomes["other_application"]
        assert figures.other_application_tokens == answered > 0
        assert figures.other_application_fingerprints[0] in str(held.value)
        assert data_checksums(warehouse) == before
        assert run_row(warehouse, "run-2")["other_application_tokens"] == answered

        # Accepted, the run loads, but another application's tokens make no connection.
        accepted = sync_with_resources("run-3", other, source, warehouse, ACCEPT)
        assert accepted.sync_run["accepted_mass_change"] is True
        tokens = warehouse.read_tokens().filter(pl.col("last_outcome") == "other_application")
        assert tokens.height == answered
        # Their connections were not refreshed from another application's answers, nor
        # taken for disconnected because only their old, revoked tokens still count.
        current = warehouse.read_current()
        compared = ["connection_key", "state", "company_name", "connection_status"]
        assert current.select(compared).equals(known.select(compared))
        live = current.filter(pl.col("state") == "live")
        assert live["stale"].all()
        assert all("other_application" in error for error in live["last_error"])
    warehouse.dispose()


def test_an_unexpected_client_type_holds_the_run(tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=54, connections=30) as (_, finch, source):
        production = finch.model_copy(update={"client_type": "production"})
        with pytest.raises(SyncHeld, match="client_type sandbox"):
            sync_with_resources("run-1", production, source, warehouse)
        assert warehouse.read_current().is_empty()
        sandboxed = finch.model_copy(update={"client_type": "sandbox"})
        assert sync_with_resources("run-2", sandboxed, source, warehouse).status == "success"
    warehouse.dispose()


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_real_mass_revocation_is_held_until_accepted(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    with served_sandbox(seed=55, connections=60) as (sandbox, finch, source):
        never_seen = disconnected_keys(sandbox.truth())
        sync_with_resources("run-1", finch, source, warehouse)
        before = data_checksums(warehouse)
        live = set(warehouse.read_current().filter(pl.col("state") == "live")["connection_key"])
        sandbox.advance(365)
        truth = sandbox.truth()
        gone = (disconnected_keys(truth) - never_seen) & live
        assert len(gone) > 0.2 * len(live), "a year should disconnect more than the threshold"

        with pytest.raises(SyncHeld, match="would leave Live in one run"):
            sync_with_resources("run-2", finch, source, warehouse)
        assert data_checksums(warehouse) == before
        assert run_row(warehouse, "run-2")["leaving_live"] == len(gone)

        accepted = sync_with_resources("run-3", finch, source, warehouse, ACCEPT)
        assert accepted.sync_run["accepted_mass_change"] is True
        assert accepted.sync_run["status_reason"].startswith("accepted with accept_mass_change")
        current = warehouse.read_current()
        # Connections made and lost within the year were never seen working: ids only.
        never_seen_working = disconnected_keys(truth) - live
        assert truth_differences(truth, current, never_seen_working) == []
        assert gone <= set(current.filter(pl.col("state") == "disconnected")["connection_key"])
    warehouse.dispose()


def test_an_accepted_outage_keeps_every_row_marked_stale(tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=41, connections=60) as (sandbox, finch, source):
        sync_with_resources("run-1", finch, source, warehouse)
        before = warehouse.read_current()
        sandbox.set_faults({"introspect": EndpointFaults(error_rate=1.0)})
        failing = finch.model_copy(update={"max_attempts": 2})
        result = sync_with_resources("run-2", failing, source, warehouse, ACCEPT)
        after = warehouse.read_current()

    assert result.status == "partial"
    assert result.sync_run["failed_tokens"] == result.sync_run["tokens"] > 0
    # Nothing dropped, nothing invented: every known connection keeps its last known values.
    known = before.filter(pl.col("state") != "staged")
    kept = after.join(known.select("connection_key"), on="connection_key", how="semi")
    compared = ["state", "company_name", "connection_status", "connection_type", "entity_count"]
    assert (
        kept.sort("connection_key")
        .select(compared)
        .equals(known.sort("connection_key").select(compared))
    )
    live = kept.filter(pl.col("state") == "live")
    assert live["stale"].all()
    assert all(
        error.startswith("not refreshed: token answered failed (failed after retries: HTTP 5")
        for error in live["last_error"]
    )
    assert set(live["last_seen_at"].to_list()) <= set(known["last_seen_at"].to_list())
    history = warehouse.read_table("finch_connections_history")
    assert history.filter(pl.col("run_id") == "run-2").is_empty()
    warehouse.dispose()
