"""load_run: snapshot replacement, SCD2 history, entities, tokens, quarantine, run log."""

import datetime as dt

import polars as pl
import pytest
from frames import (
    all_tables,
    assert_same_tables,
    at,
    connection_row,
    run,
    token_row,
)

from connections_pipeline.warehouse import CONNECTIONS_HISTORY, RunLoad, Warehouse


def history(warehouse: Warehouse) -> pl.DataFrame:
    return warehouse.read_table(CONNECTIONS_HISTORY).sort("connection_key", "valid_from")


def versions(warehouse: Warehouse, key: str) -> list[tuple]:
    rows = history(warehouse).filter(pl.col("connection_key") == key)
    return rows.select("valid_from", "valid_to", "is_current", "run_id").rows()


@pytest.mark.snowflake
def test_first_load_fills_every_table(warehouse: Warehouse) -> None:
    summary = warehouse.load_run(
        run(
            "r1",
            at(0),
            [connection_row("a"), connection_row("b"), connection_row("s", state="staged")],
            entity_rows=(("a", "e1", "One"), ("a", "e2", "Two"), ("b", "e3", "Three")),
            token_rows=(token_row("fp-a", "a", at(0)), token_row("fp-b", "b", at(0))),
            quarantine_reasons=("schema: entity_count < 0",),
        )
    )
    assert (summary.inserted, summary.updated, summary.deleted, summary.unchanged) == (3, 0, 0, 0)
    assert (summary.history_opened, summary.history_closed) == (3, 0)
    current = warehouse.read_current()
    assert current["connection_key"].to_list() == ["a", "b", "s"]
    assert set(current["run_id"]) == {"r1"}
    assert history(warehouse).select("connection_key", "valid_from", "valid_to", "is_current",
                                     "run_id", "state").rows() == [
        ("a", at(0), None, True, "r1", "live"),
        ("b", at(0), None, True, "r1", "live"),
        ("s", at(0), None, True, "r1", "staged"),
    ]  # fmt: skip
    assert warehouse.read_table("finch_connection_entities").height == 3
    assert warehouse.read_tokens()["token_fingerprint"].to_list() == ["fp-a", "fp-b"]
    quarantine = warehouse.read_table("finch_quarantine")
    assert quarantine.select("run_id", "reason").rows() == [("r1", "schema: entity_count < 0")]
    runs = warehouse.read_table("finch_sync_runs")
    assert runs.select("run_id", "as_of", "live", "staged", "duration_seconds").rows() == [
        ("r1", at(0), 2, 1, 300.25)
    ]


@pytest.mark.snowflake
def test_rerunning_the_same_run_changes_nothing(warehouse: Warehouse) -> None:
    load = run(
        "r1",
        at(0),
        [connection_row("a"), connection_row("b", company_name=None)],
        entity_rows=(("a", "e1", "One"),),
        token_rows=(token_row("fp-a", "a", at(0)),),
        quarantine_reasons=("bad",),
    )
    warehouse.load_run(load)
    before = all_tables(warehouse)
    again = warehouse.load_run(load)
    assert not again.changed
    assert (again.unchanged, again.history_opened) == (2, 0)
    assert_same_tables(before, all_tables(warehouse))
    assert warehouse.read_table(CONNECTIONS_HISTORY).height == 2


def test_unchanged_rows_keep_the_run_that_last_changed_them(warehouse: Warehouse) -> None:
    warehouse.load_run(run("r1", at(0), [connection_row("a"), connection_row("b")]))
    summary = warehouse.load_run(
        run("r2", at(1), [connection_row("a"), connection_row("b", last_seen_at=at(1))])
    )
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 1)
    current = warehouse.read_current()
    assert dict(current.select("connection_key", "run_id").iter_rows()) == {"a": "r1", "b": "r2"}
    assert current.filter(pl.col("connection_key") == "b")["last_seen_at"][0] == at(1)
    # last_seen_at is volatile: no new history version for b.
    assert summary.history_opened == 0
    assert versions(warehouse, "b") == [(at(0), None, True, "r1")]


@pytest.mark.snowflake
def test_snapshot_is_replaced_and_vanished_keys_are_closed(warehouse: Warehouse) -> None:
    warehouse.load_run(run("r1", at(0), [connection_row("a"), connection_row("b")]))
    summary = warehouse.load_run(run("r2", at(1), [connection_row("b"), connection_row("c")]))
    assert (summary.inserted, summary.deleted, summary.unchanged) == (1, 1, 1)
    assert (summary.history_opened, summary.history_closed) == (1, 1)
    assert warehouse.read_current()["connection_key"].to_list() == ["b", "c"]
    assert versions(warehouse, "a") == [(at(0), at(1), False, "r1")]
    assert versions(warehouse, "c") == [(at(1), None, True, "r2")]
    # A key that comes back opens a fresh version; the closed one stays closed.
    warehouse.load_run(run("r3", at(2), [connection_row("a"), connection_row("b")]))
    assert versions(warehouse, "a") == [(at(0), at(1), False, "r1"), (at(2), None, True, "r3")]
    assert versions(warehouse, "c") == [(at(1), at(2), False, "r2")]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"company_name": "Acme"}, {"company_name": "Acme Corp"}),
        ({"company_name": None}, {"company_name": "Acme"}),
        ({"company_name": "Acme"}, {"company_name": None}),
        ({"state": "staged", "connection_id": None}, {"state": "live"}),
        ({"needs_action": False}, {"needs_action": True}),
        ({"entity_count": 1}, {"entity_count": 2}),
        ({"products": "company"}, {"products": "company,directory"}),
        ({"connection_status": "connected"}, {"connection_status": "reauth"}),
    ],
)
def test_tracked_change_closes_and_opens_a_version(
    warehouse: Warehouse, before: dict, after: dict
) -> None:
    warehouse.load_run(run("r1", at(0), [connection_row("a", **before), connection_row("z")]))
    summary = warehouse.load_run(
        run("r2", at(1), [connection_row("a", **after), connection_row("z")])
    )
    assert (summary.updated, summary.history_opened, summary.history_closed) == (1, 1, 1)
    assert versions(warehouse, "a") == [(at(0), at(1), False, "r1"), (at(1), None, True, "r2")]
    latest = history(warehouse).filter(pl.col("is_current") & (pl.col("connection_key") == "a"))
    for name, value in after.items():
        assert latest[name][0] == value
    assert versions(warehouse, "z") == [(at(0), None, True, "r1")]


@pytest.mark.parametrize(
    "volatile",
    [
        {"last_synced_at": None},
        {"sync_overdue": True},
        {"last_seen_at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},
        {"last_error": "timeout"},
        {"token_count": 3, "working_token_fingerprint": "fp-new"},
        {"expected_refresh_hours": 168},
    ],
)
def test_volatile_change_updates_current_without_a_version(
    warehouse: Warehouse, volatile: dict
) -> None:
    warehouse.load_run(run("r1", at(0), [connection_row("a", company_name=None)]))
    summary = warehouse.load_run(
        run("r2", at(1), [connection_row("a", company_name=None, **volatile)])
    )
    assert (summary.updated, summary.history_opened, summary.history_closed) == (1, 0, 0)
    assert versions(warehouse, "a") == [(at(0), None, True, "r1")]
    assert warehouse.read_current()["run_id"].to_list() == ["r2"]


def test_rerun_of_a_run_with_corrected_content_replaces_its_version(
    warehouse: Warehouse,
) -> None:
    warehouse.load_run(run("r1", at(0), [connection_row("a"), connection_row("b")]))
    warehouse.load_run(run("r2", at(1), [connection_row("a", company_name="Wrong")]))
    summary = warehouse.load_run(
        run("r2", at(1), [connection_row("a", company_name="Right"), connection_row("b")])
    )
    assert summary.history_replaced == 1
    assert versions(warehouse, "a") == [(at(0), at(1), False, "r1"), (at(1), None, True, "r2")]
    current_a = history(warehouse).filter(pl.col("connection_key") == "a")["company_name"]
    assert current_a.to_list() == ["Company a", "Right"]
    # b was closed by the first r2 and reopened by the corrected r2.
    assert versions(warehouse, "b") == [(at(0), at(1), False, "r1"), (at(1), None, True, "r2")]
    assert history(warehouse).filter(pl.col("is_current")).height == 2
    # Same run a third time: nothing moves.
    before = all_tables(warehouse)
    assert not warehouse.load_run(
        run("r2", at(1), [connection_row("a", company_name="Right"), connection_row("b")])
    ).changed
    assert_same_tables(before, all_tables(warehouse))


def test_a_run_older_than_the_open_versions_is_refused(warehouse: Warehouse) -> None:
    warehouse.load_run(run("r2", at(5), [connection_row("a")]))
    before = all_tables(warehouse)
    with pytest.raises(ValueError, match="load runs in order"):
        warehouse.load_run(run("r1", at(1), [connection_row("a", company_name="Old")]))
    assert_same_tables(before, all_tables(warehouse))


def test_duplicate_connection_keys_are_refused(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="duplicate connection_key"):
        warehouse.load_run(run("r1", at(0), [connection_row("a"), connection_row("a")]))
    assert warehouse.read_current().height == 0


def test_empty_snapshot_closes_everything(warehouse: Warehouse) -> None:
    warehouse.load_run(run("r1", at(0), [connection_row("a"), connection_row("b")]))
    summary = warehouse.load_run(run("r2", at(1), []))
    assert (summary.deleted, summary.history_closed) == (2, 2)
    assert warehouse.read_current().height == 0
    assert history(warehouse).filter(pl.col("is_current")).height == 0
    summary = warehouse.load_run(run("r3", at(2), [connection_row("a")]))
    assert versions(warehouse, "a") == [(at(0), at(1), False, "r1"), (at(2), None, True, "r3")]


@pytest.mark.snowflake
def test_entities_are_replaced_per_connection_present(warehouse: Warehouse) -> None:
    warehouse.load_run(
        run(
            "r1",
            at(0),
            [connection_row("a"), connection_row("b")],
            entity_rows=(("a", "e1", "One"), ("a", "e2", "Two"), ("b", "e3", "Three")),
        )
    )
    warehouse.load_run(
        run(
            "r2",
            at(1),
            [connection_row("a"), connection_row("b")],
            entity_rows=(("a", "e2", "Two renamed"), ("a", "e4", "Four")),
        )
    )
    entities = warehouse.read_table("finch_connection_entities")
    assert entities.select("connection_id", "entity_id", "entity_name", "run_id").rows() == [
        ("a", "e2", "Two renamed", "r2"),
        ("a", "e4", "Four", "r2"),
        ("b", "e3", "Three", "r1"),
    ]


def test_entities_of_a_connection_that_left_live_are_removed(warehouse: Warehouse) -> None:
    warehouse.load_run(
        run(
            "r1",
            at(0),
            [connection_row("a"), connection_row("b", entity_count=2)],
            entity_rows=(("a", "e1", "One"), ("b", "e2", "Two"), ("b", "e3", "Three")),
        )
    )
    gone = connection_row(
        "b",
        state="disconnected",
        connection_status="disconnected",
        disconnected_at=at(1),
        entity_count=2,
    )
    warehouse.load_run(run("r2", at(1), [connection_row("a"), gone]))
    entities = warehouse.read_table("finch_connection_entities")
    assert entities.select("connection_id", "entity_id").rows() == [("a", "e1")]
    # The count of b's entities stays in its history; b's rows went with its Live state.
    versions_of_b = history(warehouse).filter(pl.col("connection_key") == "b")
    assert versions_of_b.select("state", "entity_count").rows() == [
        ("live", 2),
        ("disconnected", 2),
    ]


@pytest.mark.snowflake
def test_tokens_are_upserted_keeping_the_earliest_first_seen(warehouse: Warehouse) -> None:
    warehouse.load_run(
        run("r1", at(0), [connection_row("a")], token_rows=(token_row("fp-1", "a", at(0)),))
    )
    warehouse.load_run(
        run(
            "r2",
            at(1),
            [connection_row("a")],
            token_rows=(
                token_row(
                    "fp-1",
                    "a",
                    at(1),
                    first_seen_at=at(1),
                    last_outcome="invalid_token",
                    last_ok_at=None,
                    last_error="HTTP 401 invalid_token_error",
                ),
                token_row("fp-2", "a", at(1)),
            ),
        )
    )
    tokens = warehouse.read_tokens()
    assert tokens.rows() == [
        ("fp-1", "a", at(0), at(1), "invalid_token", at(0), "HTTP 401 invalid_token_error"),
        ("fp-2", "a", at(1), at(1), "ok", at(1), None),
    ]
    with pytest.raises(ValueError, match="duplicate token_fingerprint"):
        warehouse.load_run(
            run(
                "r3",
                at(2),
                [connection_row("a")],
                token_rows=(token_row("fp-3", "a", at(2)), token_row("fp-3", "a", at(2))),
            )
        )


def test_quarantine_and_sync_run_are_replaced_per_run(warehouse: Warehouse) -> None:
    warehouse.load_run(run("r1", at(0), [connection_row("a")], quarantine_reasons=("x", "y")))
    warehouse.load_run(run("r2", at(1), [connection_row("a")], quarantine_reasons=("z",)))
    warehouse.load_run(run("r2", at(1), [connection_row("a")], quarantine_reasons=("w", "v")))
    quarantine = warehouse.read_table("finch_quarantine").sort("run_id", "record_key")
    assert quarantine.select("run_id", "reason").rows() == [
        ("r1", "x"),
        ("r1", "y"),
        ("r2", "w"),
        ("r2", "v"),
    ]
    runs = warehouse.read_table("finch_sync_runs")
    assert runs["run_id"].to_list() == ["r1", "r2"]


def test_frames_may_omit_run_id_and_extra_columns_are_refused(warehouse: Warehouse) -> None:
    load = run("r1", at(0), [connection_row("a")])
    assert "run_id" not in load.connections.columns
    warehouse.load_run(load)
    with pytest.raises(ValueError, match="unexpected columns"):
        warehouse.load_run(
            RunLoad(
                run_id="r2",
                as_of=at(1),
                connections=load.connections.with_columns(pl.lit(1).alias("typo_column")),
            )
        )
    with pytest.raises(ValueError, match="unexpected fields"):
        warehouse.load_run(
            RunLoad(run_id="r2", as_of=at(1), connections=load.connections, sync_run={"x": 1})
        )
    assert warehouse.read_table("finch_sync_runs")["run_id"].to_list() == ["r1"]
