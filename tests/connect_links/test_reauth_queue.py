"""The opt-in re-auth asset: one open link per connection in reauth, and the queue."""

from pathlib import Path

import polars as pl
import pytest
from link_helpers import embedded

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.connect_links import create_reauth_links
from connections_pipeline.connect_links.reauth import open_reauth_links, reauth_queue

pytestmark = pytest.mark.slow


def _reauth_ids(sandbox) -> set[str]:
    return {
        row["connection_id"]
        for row in sandbox.truth()
        if row["state"] == "live" and row["connection_status"] == "reauth"
    }


def test_one_link_per_connection_across_runs_and_a_queue(tmp_path: Path) -> None:
    finch, source, warehouse = embedded(tmp_path, seed=511)
    sandbox = finch.sandbox()
    expected = _reauth_ids(sandbox)
    assert expected
    sync_with_resources("run-1", finch, source, warehouse)

    # Links the application created itself arrive from the session source and count.
    imported = set(open_reauth_links(warehouse.read_sessions(), sandbox.now)["connection_id"])
    first = create_reauth_links(finch, warehouse, created_by="test")
    assert {row["reauth_connection_id"] for row in first.created} == expected - imported
    assert first.failed == []
    second = create_reauth_links(finch, warehouse, created_by="test")
    assert second.created == []
    open_links = open_reauth_links(warehouse.read_sessions(), sandbox.now)
    assert sorted(open_links["connection_id"]) == sorted(expected)
    ledger = warehouse.read_sessions().filter(pl.col("kind") == "reauthenticate")
    ours = ledger.filter(pl.col("created_by") == "test")
    assert sorted(ours["reauth_connection_id"]) == sorted(expected - imported)

    queue = warehouse.read_reauth_queue()
    assert set(queue["connection_id"]) == expected
    links = dict(zip(open_links["connection_id"], open_links["connect_url"], strict=True))
    assert dict(zip(queue["connection_id"], queue["connect_url"], strict=True)) == links
    assert queue["provider_name"].null_count() == 0
    assert queue["days_in_reauth"].min() >= 0

    # A sync (even after days pass) adds no second link; days in reauth grow.
    sandbox.advance(2)
    sync_with_resources("run-2", finch, source, warehouse)
    still = _reauth_ids(sandbox) & expected
    third = create_reauth_links(finch, warehouse, created_by="test")
    assert not ({row["reauth_connection_id"] for row in third.created} & still)
    queue = warehouse.read_reauth_queue()
    grown = queue.filter(pl.col("connection_id").is_in(list(still)))
    assert grown.height == len(still)
    assert set(grown["days_in_reauth"]) <= {2}
    warehouse.dispose()


def test_completed_reauth_link_leaves_the_queue(tmp_path: Path) -> None:
    finch, source, warehouse = embedded(tmp_path, seed=512)
    sandbox = finch.sandbox()
    sync_with_resources("run-1", finch, source, warehouse)
    outcome = create_reauth_links(finch, warehouse, created_by="test")
    done = outcome.created[0]
    sandbox.complete_session(done["session_id"])
    sync_with_resources("run-2", finch, source, warehouse)
    session = warehouse.read_sessions().filter(pl.col("session_id") == done["session_id"])
    assert session.select("status", "connection_id").rows() == [
        ("completed", done["reauth_connection_id"])
    ]
    again = create_reauth_links(finch, warehouse, created_by="test")
    assert done["reauth_connection_id"] not in set(again.queue["connection_id"])
    assert done["reauth_connection_id"] not in {r["reauth_connection_id"] for r in again.created}
    warehouse.dispose()


def test_queue_from_frames_counts_days_from_the_current_history_version() -> None:
    from datetime import UTC, datetime

    since = datetime(2026, 11, 1, tzinfo=UTC)
    current = pl.DataFrame(
        {
            "connection_key": ["c1", "c2"],
            "connection_id": ["c1", "c2"],
            "state": ["live", "live"],
            "connection_status": ["reauth", "connected"],
            "company_name": ["A", "B"],
            "customer_id": ["cust-a", "cust-b"],
            "customer_name": ["Alpha", "Beta"],
            "customer_email": [None, None],
            "provider_name": ["Gusto", "ADP"],
        }
    )
    history = pl.DataFrame(
        {
            "connection_key": ["c1", "c1"],
            "valid_from": [datetime(2026, 1, 1, tzinfo=UTC), since],
            "is_current": [False, True],
        }
    )
    ledger = pl.DataFrame(
        schema={
            "kind": pl.String,
            "status": pl.String,
            "expires_at": pl.Datetime("us", "UTC"),
            "reauth_connection_id": pl.String,
            "created_at": pl.Datetime("us", "UTC"),
            "session_id": pl.String,
            "connect_url": pl.String,
        }
    )
    queue = reauth_queue(current, history, ledger, datetime(2026, 11, 11, 12, tzinfo=UTC))
    assert queue.select(
        "connection_id", "customer_name", "provider_name", "days_in_reauth"
    ).rows() == [("c1", "Alpha", "Gusto", 10)]
    assert queue["connect_url"].to_list() == [None]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_queue_table_is_replaced_whole_on_each_publish(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    from datetime import UTC, datetime

    from connections_pipeline.connect_links.reauth import REAUTH_QUEUE_SCHEMA
    from connections_pipeline.warehouse import Warehouse

    url = f"duckdb:///{tmp_path / 'queue.duckdb'}" if kind == "duckdb" else postgres_url
    moment = datetime(2026, 11, 29, 8, 30, tzinfo=UTC)
    row = dict.fromkeys(REAUTH_QUEUE_SCHEMA)
    row.update(connection_id="c1", customer_name="=cmd()", days_in_reauth=3, as_of=moment)
    frame = pl.DataFrame(
        [row, {**row, "connection_id": "c2", "days_in_reauth": 9}], schema=REAUTH_QUEUE_SCHEMA
    )
    with Warehouse(url, schema="finch") as warehouse:
        warehouse.ensure_tables()
        assert warehouse.replace_reauth_queue(frame) == 2
        assert warehouse.read_reauth_queue()["connection_id"].to_list() == ["c2", "c1"]
        assert warehouse.replace_reauth_queue(frame.head(1)) == 1
        stored = warehouse.read_reauth_queue()
    assert stored.rows(named=True) == frame.head(1).rows(named=True)
