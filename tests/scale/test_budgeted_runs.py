"""Runs that cannot ask Finch about everything: a request budget, the company share, a
targeted run. Against the emulator over HTTP; each run's coverage is in finch_sync_runs."""

import math
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from guards.guard_helpers import run_row
from sync.sync_helpers import disconnected_keys, make_warehouse, served_sandbox, truth_differences

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.sync.run import SyncSettings
from connections_pipeline.transform.polling import RunBudget

pytestmark = pytest.mark.slow

# Every company name in one run, where a test is about the request budget only.
NAMES_AT_ONCE_SHARE = 0.9


def _budgeted(max_requests: int | None, company_share: float = NAMES_AT_ONCE_SHARE) -> SyncSettings:
    return SyncSettings(budget=RunBudget(max_requests=max_requests, company_share=company_share))


def _introspections(stats: dict) -> int:
    return sum(stats["by_endpoint"].get("introspect", {}).values())


def test_a_fleet_three_times_the_budget_is_covered_in_three_runs(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("postgres", tmp_path, postgres_url)
    with served_sandbox(seed=1701, connections=90) as (sandbox, finch, source):
        tokens = len(sandbox.tokens())
        connections = len({t["connection_id"] for t in sandbox.tokens()})
        # A third of the fleet per run: its tokens, and a job listing per new connection.
        budget = math.ceil((tokens + connections) / 3) + 1
        settings = _budgeted(budget)
        runs = []
        for number in range(1, 6):
            sandbox.reset_stats()
            result = sync_with_resources(f"run-{number}", finch, source, warehouse, settings)
            runs.append(run_row(warehouse, result.run_id))
            assert sandbox.stats()["requests"] <= budget
            if runs[-1]["tokens_never_observed"] == 0:
                break
        never_seen = disconnected_keys(sandbox.truth())
        differences = truth_differences(sandbox.truth(), warehouse.read_current(), never_seen)
        sandbox.advance(1)
        steady = sync_with_resources("run-steady", finch, source, warehouse, settings)
    steady_row = run_row(warehouse, steady.run_id)
    warehouse.dispose()

    unobserved = [run["tokens_never_observed"] for run in runs]
    assert unobserved[0] > tokens / 2, "the first run polls about a third"
    assert unobserved == sorted(unobserved, reverse=True) and unobserved[-1] == 0
    assert len(runs) <= 4  # three thirds, and one run to spare for rounding
    assert all(run["tokens_deferred"] > 0 for run in runs[:-1])
    assert differences == []
    # Once covered, a run polls the longest-unobserved third: none waits more than 3 runs.
    assert steady_row["tokens_never_observed"] == 0
    assert steady_row["oldest_observation_age_hours"] > 0


def test_deferred_connections_keep_their_rows_and_are_not_stale(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=1702, connections=60) as (sandbox, finch, source):
        sync_with_resources("run-1", finch, source, warehouse, _budgeted(None))
        before = warehouse.read_current().filter(pl.col("state") != "staged")
        sandbox.advance(1)
        sandbox.reset_stats()
        result = sync_with_resources("run-2", finch, source, warehouse, _budgeted(12))
        polled = _introspections(sandbox.stats())
    after = warehouse.read_current()
    tokens = warehouse.read_tokens()
    row = run_row(warehouse, "run-2")
    warehouse.dispose()

    assert polled == result.sync_run["tokens"] < len(before)
    assert row["tokens_deferred"] > 0 and row["status"] == "success"
    assert row["oldest_observation_age_hours"] > 0
    asked = set(tokens.filter(pl.col("last_seen_at") == result.as_of)["connection_id"])
    deferred = set(before["connection_key"]) - asked
    assert len(deferred) >= len(before) - 12
    kept = after.filter(pl.col("connection_key").is_in(list(deferred)))
    assert not kept["stale"].any()
    same_before = before.filter(pl.col("connection_key").is_in(list(deferred)))
    assert _frame_rows(kept) == _frame_rows(same_before)


def _frame_rows(frame: pl.DataFrame) -> list[dict]:
    # sync_overdue is derived from the snapshot's clock (and a row whose flag moved is
    # stamped with the run); everything Finch said is kept as it was.
    return frame.drop("sync_overdue", "run_id").sort("connection_key").to_dicts()


def test_company_names_fill_over_runs_within_the_share(tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    share = 0.3
    with served_sandbox(seed=1703, connections=80) as (sandbox, finch, source):
        pending, company_calls, requests = [], [], []
        for number in range(1, 8):
            sandbox.reset_stats()
            result = sync_with_resources(
                f"run-{number}", finch, source, warehouse, _budgeted(None, share)
            )
            stats = sandbox.stats()
            pending.append(run_row(warehouse, result.run_id)["company_names_pending"])
            company_calls.append(sum(stats["by_endpoint"].get("company", {}).values()))
            requests.append(stats["requests"] - company_calls[-1])
            if pending[-1] == 0:
                break
        current = warehouse.read_current()
        never_seen = disconnected_keys(sandbox.truth())
        differences = truth_differences(sandbox.truth(), current, never_seen)
    warehouse.dispose()

    assert pending[0] > 0, "80 connections' names do not fit one run at share 0.3"
    assert pending == sorted(pending, reverse=True) and pending[-1] == 0
    assert not current["company_name_pending"].any()
    for calls, other in zip(company_calls, requests, strict=True):
        company_time = calls * 60 / 19  # the client's pace
        assert calls <= 20 or company_time <= share * (company_time + other * 0.3) + 1e-9
    assert differences == []  # every name now Finch's legal name


def test_a_targeted_run_asks_only_about_its_connections(tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse("postgres", tmp_path, postgres_url)
    with served_sandbox(seed=1704, connections=40) as (sandbox, finch, source):
        sync_with_resources("run-1", finch, source, warehouse, _budgeted(None))
        before = warehouse.read_current()
        live = before.filter(pl.col("state") == "live")["connection_id"].to_list()
        target = frozenset(live[:2])
        tokens_of_target = sum(1 for t in sandbox.tokens() if t["connection_id"] in target)
        sandbox.reset_stats()
        settings = SyncSettings(only_connection_ids=target)
        sync_with_resources("run-2", finch, source, warehouse, settings)
        stats = sandbox.stats()
    after = warehouse.read_current()
    warehouse.dispose()

    assert _introspections(stats) == tokens_of_target
    others = set(before["connection_key"]) - target
    assert _rows_of(after, others) == _rows_of(before, others)


def _rows_of(frame: pl.DataFrame, keys: set[str]) -> list[dict]:
    return _frame_rows(frame.filter(pl.col("connection_key").is_in(list(keys))))


def test_a_deadline_that_has_passed_defers_the_rest(tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=1705, connections=40) as (sandbox, finch, source):
        sync_with_resources("run-1", finch, source, warehouse, _budgeted(None))
        before = warehouse.read_current()
        sandbox.reset_stats()
        late = SyncSettings(budget=RunBudget(deadline=timedelta(0)))
        result = sync_with_resources("run-2", finch, source, warehouse, late)
        stats = sandbox.stats()
    after = warehouse.read_current()
    row = run_row(warehouse, "run-2")
    warehouse.dispose()

    assert _introspections(stats) == 0
    assert row["tokens"] == 0 and row["tokens_deferred"] == len(sandbox.tokens())
    assert result.status == "success"
    assert _frame_rows(after) == _frame_rows(before)
    assert not after["stale"].any()


def test_company_names_fill_even_when_the_budget_binds_every_run(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=1706, connections=80) as (sandbox, finch, source):
        budget = len(sandbox.tokens()) // 2
        settings = _budgeted(budget, company_share=0.5)
        pending, requests = [], []
        for number in range(1, 13):
            sandbox.reset_stats()
            result = sync_with_resources(f"run-{number}", finch, source, warehouse, settings)
            requests.append(sandbox.stats()["requests"])
            run = run_row(warehouse, result.run_id)
            pending.append(run["company_names_pending"])
            if run["tokens_never_observed"] == 0 and pending[-1] == 0:
                break
    warehouse.dispose()

    assert max(requests) <= budget
    assert max(pending) > 0 and pending[-1] == 0, pending
