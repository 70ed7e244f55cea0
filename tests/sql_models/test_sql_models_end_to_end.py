"""Every SQL model builds on DuckDB, Postgres and Snowflake (the fakesnow emulator) after
emulator syncs, passes its declared tests, and shows the figures the emulator's ground truth
implies."""

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sql_model_helpers import (
    MODEL_NAMES,
    kind_resource,
    materialize_models,
    materialized_keys,
    read_relation,
    two_syncs,
)
from sync.sync_helpers import DASHBOARD_LABELS

from connections_pipeline.sql_models import load_models
from connections_pipeline.warehouse import TRACKED_ATTRIBUTES

pytestmark = pytest.mark.slow


def _by_key(rows: list[dict], key: str) -> dict:
    return {row[key]: row for row in rows}


def _emulator_statements(kind: str, request: pytest.FixtureRequest) -> list[str]:
    return request.getfixturevalue("snowflake_emulator").statements if kind == "snowflake" else []


def _assert_snowflake_statements(received: list[str]) -> None:
    """The emulator answers names without regard to case, as Snowflake does not: what it
    received must name the tables as they were created (unquoted, so upper case) and keep
    the Dashboard's column names quoted."""
    builds = [s for s in received if s.startswith("CREATE OR REPLACE")]
    assert len(builds) == len(MODEL_NAMES)
    assert any(s.startswith("CREATE OR REPLACE TABLE finch.provider_health AS") for s in builds)
    assert any('c.company_name AS "Company Name"' in s for s in builds)
    counted = [s for s in received if s.startswith("SELECT COUNT(*) FROM (")]
    assert len(counted) == sum(len(model.tests) for model in load_models())
    assert [s for s in builds + counted if re.search(r'"[a-z_][a-z0-9_]*"', s)] == []


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "snowflake"])
def test_models_build_pass_their_tests_and_match_the_truth(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    resource = kind_resource(kind, tmp_path, request)
    with two_syncs(resource) as synced:
        sent = len(_emulator_statements(kind, request))
        result = materialize_models(resource)
        received = _emulator_statements(kind, request)[sent:]
        truth = synced.truth_second
        sessions = synced.sandbox.sessions()

    assert result.success
    assert materialized_keys(result) == MODEL_NAMES
    checks = result.get_asset_check_evaluations()
    declared = sum(len(model.tests) for model in load_models())
    assert len(checks) == declared > 0
    assert [c.check_name for c in checks if not c.passed] == []
    if kind == "snowflake":
        _assert_snowflake_statements(received)

    live = [row for row in truth if row["state"] == "live"]

    # connections: one row per Dashboard row, Dashboard column names and labels.
    connections = _by_key(read_relation(resource, "connections"), "connection_key")
    assert set(connections) == {row["connection_key"] for row in truth}
    for row in live:
        shown = connections[row["connection_key"]]
        assert shown["state"] == "live"
        assert shown["Company Name"] == row["company_name"]
        assert shown["# Entities"] == row["entity_count"]
        assert shown["Connection Status"] == DASHBOARD_LABELS[row["connection_status"]]
        assert shown["Provider"] == row["provider_name"]
        assert shown["Connection Type"] == row["connection_type"]

    # connection_states_daily: the state counts the Dashboard showed on each sync's day.
    daily = {
        (row["day"], row["state"]): row["connections"]
        for row in read_relation(resource, "connection_states_daily")
    }
    expected = {
        (synced.first_day, state): count
        for state, count in Counter(r["state"] for r in synced.truth_first).items()
    } | {
        (synced.second_day, state): count
        for state, count in Counter(r["state"] for r in truth).items()
    }
    assert daily == expected

    # sync_freshness: overdue exactly where Finch's clock says the cadence was missed.
    freshness = _by_key(read_relation(resource, "sync_freshness"), "connection_id")
    assert set(freshness) == {row["connection_id"] for row in live}
    for row in live:
        measured = freshness[row["connection_id"]]
        assert measured["is_overdue"] == row["sync_overdue"], row["connection_id"]
        assert measured["expected_refresh_hours"] == row["expected_refresh_hours"]

    # provider_health: per provider, from the truth's live rows.
    by_provider = defaultdict(list)
    for row in live:
        by_provider[row["provider_id"]].append(row)
    health = _by_key(read_relation(resource, "provider_health"), "provider_id")
    assert set(health) == set(by_provider)
    for provider_id, rows in by_provider.items():
        needing = sum(row["needs_action"] for row in rows)
        assert health[provider_id]["live_connections"] == len(rows)
        assert health[provider_id]["needs_action_connections"] == needing
        assert float(health[provider_id]["needs_action_share"]) == pytest.approx(
            needing / len(rows)
        )
        assert health[provider_id]["reauth_connections"] == sum(
            row["connection_status"] == "reauth" for row in rows
        )
        assert health[provider_id]["overdue_syncs"] == sum(row["sync_overdue"] for row in rows)

    # needs_action_queue: days since the tracked attributes last changed, which is the
    # time between the syncs when nothing changed and 0 when something did.
    queue = _by_key(read_relation(resource, "needs_action_queue"), "connection_id")
    needing = [row for row in live if row["needs_action"]]
    assert needing and set(queue) == {row["connection_id"] for row in needing}
    before = {row["connection_key"]: row for row in synced.truth_first}
    for row in needing:
        previous = before.get(row["connection_key"])
        unchanged = previous is not None and all(
            previous[name] == row[name] for name in TRACKED_ATTRIBUTES
        )
        assert queue[row["connection_id"]]["connection_status"] == row["connection_status"]
        assert queue[row["connection_id"]]["days_in_status"] == (
            synced.days_between if unchanged else 0
        )

    # connect_session_funnel: per kind, the emulator's sessions by status.
    funnel = _by_key(read_relation(resource, "connect_session_funnel"), "kind")
    by_kind = defaultdict(Counter)
    for session in sessions:
        by_kind[session["kind"]][session["status"]] += 1
    assert set(funnel) == set(by_kind)
    for session_kind, statuses in by_kind.items():
        row = funnel[session_kind]
        assert row["sessions_created"] == sum(statuses.values())
        assert row["sessions_completed"] == statuses["completed"]
        assert row["sessions_expired"] == statuses["expired"]
        assert row["sessions_pending"] == statuses["pending"]
        assert float(row["completion_rate"]) == pytest.approx(
            statuses["completed"] / sum(statuses.values())
        )
