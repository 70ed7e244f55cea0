"""Data rows travel by the bulk paths: the statement count does not grow with the rows."""

import re
from collections.abc import Callable

import polars as pl
import sqlalchemy as sa
from frames import at, connection_row, run
from snowflake_emulator import SnowflakeEmulator

from connections_pipeline.warehouse import Warehouse, diff_snapshot, empty_frame
from connections_pipeline.warehouse.history import plan_history


def _load_twice(warehouse: Warehouse, size: int) -> None:
    """A first load of `size` connections, then a second in which every one changed."""
    for run_id, hours in (("r1", 0), ("r2", 1)):
        rows = [
            connection_row(f"k{index:05d}", company_name=run_id, last_seen_at=at(hours))
            for index in range(size)
        ]
        summary = warehouse.load_run(run(run_id, at(hours), rows))
        assert summary.inserted + summary.updated == size
        assert summary.history_opened == size


def _statements_for(warehouse: Warehouse, size: int) -> list:
    """Statements sent through SQLAlchemy by a first load and a second, all-changed load."""
    seen: list = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append((statement, executemany))

    engine = warehouse._engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        _load_twice(warehouse, size)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert warehouse.read_current().height == size
    return seen


def test_statement_count_is_independent_of_row_count(
    warehouse_factory: Callable[[], Warehouse],
) -> None:
    first, second = warehouse_factory(), warehouse_factory()
    small = _statements_for(first, 5)
    large = _statements_for(second, 3000)
    same_schema = [statement.replace(second.schema, first.schema) for statement, _ in large]
    assert same_schema == [statement for statement, _ in small]
    assert not any(executemany for _, executemany in small + large)
    inserts = [
        statement for statement, _ in large if statement.lstrip().upper().startswith("INSERT")
    ]
    # No INSERT ... VALUES carrying data: every insert reads a staged or registered source.
    assert all("SELECT" in statement.upper() for statement in inserts)
    assert not any("VALUES" in statement.upper() for statement in inserts)


def test_diff_ignores_run_id_and_compares_nulls_safely() -> None:
    base = pl.DataFrame(
        [connection_row("a", company_name=None), connection_row("b")],
        schema=empty_frame("finch_connections").drop("run_id").schema,
        orient="row",
    )
    previous = base.with_columns(pl.lit("r1").alias("run_id"))
    new = base.with_columns(pl.lit("r2").alias("run_id"))
    diff = diff_snapshot(previous, new)
    assert (diff.unchanged, diff.updated, diff.upserts.height) == (2, 0, 0)
    changed = new.with_columns(
        pl.when(pl.col("connection_key") == "a").then(pl.lit("X")).alias("company_name")
    )
    diff = diff_snapshot(previous, changed)
    assert (diff.updated, diff.unchanged) == (2, 0)
    assert diff.removed_keys["connection_key"].sort().to_list() == ["a", "b"]
    plan = plan_history(
        pl.DataFrame(
            {"connection_key": ["a"], "valid_from": [at(0)]},
            schema={"connection_key": pl.Utf8, "valid_from": pl.Datetime("us", "UTC")},
        ).join(previous.drop("run_id"), on="connection_key"),
        changed,
        at(1),
        "r2",
    )
    assert plan.opened["connection_key"].sort().to_list() == ["a", "b"]
    assert plan.closed == 1


_PER_LOAD_NAMES = re.compile(r"[0-9a-f]{32}|wh_snowflake_[A-Za-z0-9_]+")


def _statements_received(emulator: SnowflakeEmulator, size: int) -> list[str]:
    """What the Snowflake server received for a first load and a second, all-changed load
    of `size` connections, with the per-load file names blanked."""
    warehouse = Warehouse(emulator.url(emulator.new_database()), connect_args=emulator.connect_args)
    warehouse.ensure_tables()
    emulator.statements.clear()
    _load_twice(warehouse, size)
    received = [_PER_LOAD_NAMES.sub("…", statement) for statement in emulator.statements]
    assert warehouse.read_current().height == size
    warehouse.dispose()
    return received


def test_snowflake_receives_as_many_statements_for_50000_rows_as_for_1000(
    snowflake_emulator: SnowflakeEmulator,
) -> None:
    # Counted where it matters, at the server: the connector's own PUT and COPY included.
    small = _statements_received(snowflake_emulator, 1_000)
    large = _statements_received(snowflake_emulator, 50_000)
    assert large == small
    assert any(statement.startswith("COPY INTO finch.finch_connections ") for statement in large)
    inserts = [statement for statement in large if statement.upper().startswith("INSERT")]
    assert not any("VALUES" in statement.upper() for statement in inserts)
