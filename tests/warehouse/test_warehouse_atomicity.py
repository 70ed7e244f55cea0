"""A failed load leaves every table as it was; readers never see half a load."""

import threading

import polars as pl
import pytest
import sqlalchemy as sa
from frames import Target, all_tables, assert_same_tables, at, connection_row, run, token_row

from connections_pipeline.warehouse import RunLoad, Warehouse, load


def _first_run() -> RunLoad:
    return run(
        "r1",
        at(0),
        [connection_row(key) for key in "abcd"],
        entity_rows=(("a", "e1", "One"), ("b", "e2", "Two")),
        token_rows=(token_row("fp-a", "a", at(0)),),
        quarantine_reasons=("bad row",),
    )


def _second_run(**changes) -> RunLoad:
    # Changes a tracked attribute, drops d, adds e: touches every table.
    defaults = {
        "rows": [
            connection_row("a", company_name="Renamed"),
            connection_row("b", last_seen_at=at(1)),
            connection_row("c"),
            connection_row("e"),
        ],
        "entity_rows": (("a", "e9", "Nine"),),
        "token_rows": (token_row("fp-a", "a", at(1)), token_row("fp-e", "e", at(1))),
        "quarantine_reasons": ("other",),
    }
    defaults.update(changes)
    return run("r2", at(1), **defaults)


FAILURES = {
    # The database rejects the connections COPY/INSERT (NOT NULL on state).
    "connections_not_null": lambda: _second_run(
        rows=[connection_row("a", state=None), connection_row("e")]
    ),
    # Connections and history are written, then entities hit their primary key.
    "entities_duplicate_key": lambda: _second_run(
        entity_rows=(("a", "e9", "Nine"), ("a", "e9", "Nine again"))
    ),
    # The token upsert (a statement reading a staged table) hits NOT NULL first_seen_at.
    "tokens_not_null": lambda: _second_run(
        token_rows=(token_row("fp-new", "e", at(1), first_seen_at=None),)
    ),
    # Everything but the run log is written, then quarantine's NOT NULL reason fails.
    "quarantine_not_null": lambda: _second_run(quarantine_reasons=("ok", None)),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failed_load_leaves_every_table_as_before(warehouse: Warehouse, failure: str) -> None:
    warehouse.load_run(_first_run())
    before = all_tables(warehouse)
    with pytest.raises(sa.exc.DBAPIError):
        warehouse.load_run(FAILURES[failure]())
    assert_same_tables(before, all_tables(warehouse))
    # The warehouse is usable afterwards and the good run loads in full.
    summary = warehouse.load_run(_second_run())
    assert (summary.inserted, summary.updated, summary.deleted) == (1, 2, 1)


@pytest.mark.snowflake
def test_failure_after_the_last_write_rolls_back_everything(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse.load_run(_first_run())
    before = all_tables(warehouse)
    original = load._write_sync_run

    def write_then_fail(connection, table, prepared):
        original(connection, table, prepared)
        # Inside the transaction the new snapshot is there...
        assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 2
        raise RuntimeError("worker lost")

    monkeypatch.setattr(load, "_write_sync_run", write_then_fail)
    with pytest.raises(RuntimeError, match="worker lost"):
        warehouse.load_run(_second_run())
    # ...and outside, after the failure, none of it is.
    assert_same_tables(before, all_tables(warehouse))


@pytest.mark.snowflake
def test_concurrent_reader_sees_old_snapshot_until_commit(
    warehouse_target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    if warehouse_target.url.startswith("duckdb"):
        # DuckDB allows one writing process per file; the reader-isolation claim is
        # about the server deployments, so this test has its DuckDB half below.
        return _duckdb_reader_isolation(warehouse_target, monkeypatch)
    writer = warehouse_target.open()
    reader = warehouse_target.open()
    writer.ensure_tables()
    writer.load_run(_first_run())
    old = all_tables(reader)
    paused = threading.Event()
    resume = threading.Event()
    original = load._write_sync_run

    def pause_before_commit(connection, table, prepared):
        original(connection, table, prepared)
        paused.set()
        assert resume.wait(60)

    monkeypatch.setattr(load, "_write_sync_run", pause_before_commit)
    outcome: dict = {}
    thread = threading.Thread(
        target=lambda: outcome.setdefault("summary", writer.load_run(_second_run()))
    )
    thread.start()
    try:
        assert paused.wait(60)
        # Every write of the run is done but not committed: the reader is not blocked
        # and sees exactly the previous run's tables.
        during = all_tables(reader)
    finally:
        resume.set()
        thread.join(60)
    assert_same_tables(old, during)
    after = all_tables(reader)
    assert outcome["summary"].inserted == 1
    assert after["finch_connections"]["connection_key"].to_list() == ["a", "b", "c", "e"]
    assert after["finch_sync_runs"]["run_id"].to_list() == ["r1", "r2"]
    writer.dispose()
    reader.dispose()
    return None


def _duckdb_reader_isolation(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    # Same process, second connection to the same DuckDB database: MVCC gives it the
    # committed snapshot while the load transaction is open.
    warehouse = target.open()
    warehouse.ensure_tables()
    warehouse.load_run(_first_run())
    old = all_tables(warehouse)
    seen: dict = {}
    original = load._write_sync_run

    def read_during(connection, table, prepared):
        original(connection, table, prepared)
        seen["during"] = all_tables(warehouse)

    monkeypatch.setattr(load, "_write_sync_run", read_during)
    warehouse.load_run(_second_run())
    assert_same_tables(old, seen["during"])
    current = warehouse.read_current()
    assert current["connection_key"].to_list() == ["a", "b", "c", "e"]
    assert current.filter(pl.col("connection_key") == "a")["company_name"][0] == "Renamed"
    warehouse.dispose()
