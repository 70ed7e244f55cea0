"""What the Dagster UI shows of the data: every table asset's columns, every written table
declared with its upstreams, descriptions that render as written."""

import re

import dagster as dg
import pytest

from connections_pipeline.assets.table_schemas import COLUMN_SCHEMA
from connections_pipeline.definitions import defs
from connections_pipeline.export import DASHBOARD_COLUMNS
from connections_pipeline.warehouse.columns import (
    NEEDS_ACTION_NOTIFIED,
    NOTIFICATIONS,
    REAUTH_QUEUE,
    REAUTH_QUEUE_TABLE_COLUMNS,
    TABLE_COLUMNS,
)

# Assets that are pages, not tables: the HTML report (a CSV export is a table).
FILE_KINDS = {"html"}
WRITTEN_TABLES = {**TABLE_COLUMNS, REAUTH_QUEUE: REAUTH_QUEUE_TABLE_COLUMNS}
# Written by several steps and a sensor: in the catalog as specs no one asset materializes.
SHARED_TABLES = {NOTIFICATIONS, NEEDS_ACTION_NOTIFIED}


@pytest.fixture(scope="module")
def graph():
    return defs().resolve_asset_graph()


def _table_assets(graph) -> list:
    return [
        node
        for node in graph.asset_nodes
        if node.is_materializable and not (set(node.kinds) & FILE_KINDS)
    ]


def test_every_table_asset_has_a_column_schema(graph) -> None:
    tables = _table_assets(graph)
    assert {node.key.to_user_string() for node in tables} >= set(WRITTEN_TABLES) - SHARED_TABLES
    missing = [
        node.key.to_user_string()
        for node in tables
        if not isinstance(node.metadata.get(COLUMN_SCHEMA), dg.TableSchema)
        or not node.metadata[COLUMN_SCHEMA].columns
    ]
    assert missing == []


@pytest.mark.parametrize("table", sorted(WRITTEN_TABLES))
def test_a_warehouse_tables_schema_is_the_registrys(graph, table: str) -> None:
    schema = graph.get(dg.AssetKey(table)).metadata[COLUMN_SCHEMA]
    registry = WRITTEN_TABLES[table]
    assert [column.name for column in schema.columns] == [column.name for column in registry]
    assert [column.description for column in schema.columns] == [c.description for c in registry]
    assert all(column.description for column in schema.columns)
    assert [column.constraints.nullable for column in schema.columns] == [
        column.nullable for column in registry
    ]


def test_the_csv_export_shows_its_columns_as_the_file_heads_them(graph) -> None:
    schema = graph.get(dg.AssetKey("finch_connections_csv")).metadata[COLUMN_SCHEMA]
    assert [column.name for column in schema.columns] == [h for h, _ in DASHBOARD_COLUMNS]
    assert schema.columns[0].description.startswith("company_name: ")


def test_a_sql_model_shows_the_registrys_description_of_a_column_it_passes_on(graph) -> None:
    schema = graph.get(dg.AssetKey("connections")).metadata[COLUMN_SCHEMA]
    columns = {c.name: c for c in schema.columns}
    company = next(c for c in TABLE_COLUMNS["finch_connections"] if c.name == "company_name")
    assert columns["Company Name"].description == company.description
    assert columns["Company Name"].type == "text"
    assert columns["needs_action"].type == "boolean"


def test_every_written_table_is_declared_with_its_upstreams(graph) -> None:
    for table in set(WRITTEN_TABLES) - SHARED_TABLES:
        node = graph.get(dg.AssetKey(table))
        assert node.is_materializable, f"{table} is an external stub"
        assert node.parent_keys, f"{table} has no upstream"

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(name)).parent_keys}

    # The step that writes the ledger, the tokens and the quarantine declares them, with
    # what each is built from.
    sync = graph.get(dg.AssetKey("finch_connections")).assets_def
    assert {key.to_user_string() for key in sync.keys} >= {
        "finch_connect_sessions",
        "finch_tokens",
        "finch_quarantine",
    }
    assert parents("finch_connect_sessions") == {"finch_session_source", "finch_raw_responses"}
    assert parents("finch_tokens") == {"finch_token_source", "finch_raw_responses"}
    assert parents("finch_quarantine") == {
        "finch_token_source",
        "finch_session_source",
        "finch_raw_responses",
    }
    assert "finch_connect_sessions" in parents("finch_connections")
    assert parents("finch_raw_responses") == {"finch_token_source"}
    for source in ("finch_token_source", "finch_session_source"):
        node = graph.get(dg.AssetKey(source))
        assert not node.is_materializable and node.description


def _outside_code_spans(text: str) -> str:
    return re.sub(r"`[^`]*`", "", text)


def test_descriptions_render_as_written(graph) -> None:
    # Markdown takes <state> outside a code span for an HTML tag and drops it; the UI then
    # showed `connections_<state>_<date>.csv` as an italic "connections_.csv".
    definitions = defs()
    texts = {node.key.to_user_string(): node.description or "" for node in graph.asset_nodes}
    texts.update({job.name: job.description or "" for job in definitions.resolve_all_job_defs()})
    for node in graph.asset_nodes:
        schema = node.metadata.get(COLUMN_SCHEMA)
        for column in schema.columns if schema else ():
            texts[f"{node.key.to_user_string()}.{column.name}"] = column.description or ""
    bad = {
        name: text for name, text in texts.items() if re.search(r"[<>]", _outside_code_spans(text))
    }
    assert bad == {}
    csv = texts["finch_connections_csv"]
    assert "`connections_<state>_<date>.csv`" in csv
