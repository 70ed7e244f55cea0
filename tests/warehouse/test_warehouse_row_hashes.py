"""Row hashes choose which stored rows a load reads back; the outcome is a full comparison's."""

from collections.abc import Callable

import polars as pl
import pytest
from frames import all_tables, assert_same_tables, at, connection_row, run

from connections_pipeline.warehouse import CONNECTIONS, Warehouse
from connections_pipeline.warehouse.columns import CONNECTION_ROW_HASHES

FIRST = [connection_row(key) for key in ("a", "b", "c", "d", "e", "f")]
SECOND = [
    connection_row("a"),  # unchanged
    connection_row("b", connection_status="reauth"),  # tracked: a new history version
    connection_row("c", last_seen_at=at(24)),  # volatile: current row only
    connection_row("d", company_name="Renamed"),  # tracked
    connection_row("f"),  # unchanged; "e" vanished
    connection_row("g"),  # new
]


# Hand edits go through the warehouse's own connection: a second DuckDB engine on the same
# file would conflict with it.
def _forget_hashes(warehouse: Warehouse, keys: list[str] | None = None) -> None:
    table = warehouse.tables[CONNECTION_ROW_HASHES]
    statement = table.delete()
    if keys is not None:
        statement = statement.where(table.c.connection_key.in_(keys))
    with warehouse._connect(transaction=True) as connection:
        connection.execute(statement)


def _hashed_keys(warehouse: Warehouse) -> list[str]:
    return sorted(warehouse.read_table(CONNECTION_ROW_HASHES)["connection_key"].to_list())


def test_a_load_by_hashes_ends_as_a_full_comparison_does(
    warehouse_factory: Callable[[], Warehouse],
) -> None:
    by_hash, full = warehouse_factory(), warehouse_factory()
    for warehouse in (by_hash, full):
        warehouse.load_run(run("r1", at(0), FIRST))
    assert _hashed_keys(by_hash) == ["a", "b", "c", "d", "e", "f"]
    # A warehouse without hashes (written before they were kept) compares every row.
    _forget_hashes(full)

    summaries = [warehouse.load_run(run("r2", at(24), SECOND)) for warehouse in (by_hash, full)]

    assert summaries[0] == summaries[1]
    assert (summaries[0].inserted, summaries[0].updated, summaries[0].deleted) == (1, 3, 1)
    assert (summaries[0].unchanged, summaries[0].history_opened) == (2, 3)
    assert_same_tables(all_tables(full), all_tables(by_hash))
    # The full comparison wrote every row's hash, so its next run goes by hashes too.
    assert _hashed_keys(full) == ["a", "b", "c", "d", "f", "g"]


@pytest.mark.snowflake
def test_rows_whose_hash_is_unchanged_are_not_read_back(warehouse: Warehouse) -> None:
    warehouse.load_run(run("r1", at(0), FIRST))
    current = warehouse.tables[CONNECTIONS]
    with warehouse._connect(transaction=True) as connection:
        connection.execute(
            current.update().where(current.c.connection_key == "a").values(company_name="Edited")
        )

    warehouse.load_run(run("r2", at(24), FIRST))
    names = dict(warehouse.read_current().select("connection_key", "company_name").iter_rows())
    assert names["a"] == "Edited"  # its stored hash matched: neither read nor rewritten

    # Hashes that no longer cover the table make the next load compare every row.
    _forget_hashes(warehouse, ["b"])
    warehouse.load_run(run("r3", at(48), FIRST))
    current_rows = warehouse.read_current()
    assert current_rows.filter(pl.col("connection_key") == "a")["company_name"][0] == "Company a"
    assert _hashed_keys(warehouse) == ["a", "b", "c", "d", "e", "f"]


def test_a_hash_that_differs_for_unchanged_content_is_replaced_not_reread_forever(
    warehouse: Warehouse,
) -> None:
    # As after a Polars upgrade that hashes differently: the row compares equal, keeps the
    # run that last changed it, and its stored hash becomes the run's.
    warehouse.load_run(run("r1", at(0), FIRST))
    before = dict(warehouse.read_table(CONNECTION_ROW_HASHES).iter_rows())
    hashes = warehouse.tables[CONNECTION_ROW_HASHES]
    with warehouse._connect(transaction=True) as connection:
        connection.execute(
            hashes.update().where(hashes.c.connection_key == "c").values(row_hash=12345)
        )

    summary = warehouse.load_run(run("r2", at(24), FIRST))

    assert (summary.updated, summary.unchanged) == (0, 6)
    current = dict(warehouse.read_current().select("connection_key", "run_id").iter_rows())
    assert current["c"] == "r1"
    assert dict(warehouse.read_table(CONNECTION_ROW_HASHES).iter_rows()) == before
