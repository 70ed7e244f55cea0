"""Model discovery, YAML settings, sqlglot dependencies and the assets in `defs`."""

from pathlib import Path

import dagster as dg
import pytest
from sql_model_helpers import MODEL_NAMES

from connections_pipeline.assets.sql_models import SQL_MODELS_GROUP
from connections_pipeline.definitions import defs
from connections_pipeline.sql_models import (
    SqlModelError,
    build_statement,
    check_statement,
    load_models,
)


def test_definitions_hold_one_asset_per_model_with_parsed_dependencies() -> None:
    graph = defs().resolve_asset_graph()
    group = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name == SQL_MODELS_GROUP
    }
    assert group == MODEL_NAMES

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("connections") == {"finch_connections"}
    assert parents("provider_health") == {"sync_freshness"}
    assert parents("connection_states_daily") == {
        "finch_connections_history",
        "finch_sync_runs",
    }
    assert parents("connect_session_funnel") == {"finch_connect_sessions"}
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert ("connections", "unique_connection_key") in checks
    assert ("provider_health", "share_between_zero_and_one") in checks


def test_ctes_are_not_dependencies_and_tables_get_the_schema(tmp_path: Path) -> None:
    (tmp_path / "model_a.sql").write_text(
        "with recent as (select * from finch_sync_runs) "
        "select r.run_id from recent as r join model_b as b on b.run_id = r.run_id"
    )
    (tmp_path / "model_b.sql").write_text("select run_id from finch_sync_runs")
    model_a, model_b = load_models(tmp_path)
    assert model_b.reads == ("finch_sync_runs",)
    assert model_a.reads == ("finch_sync_runs", "model_b")
    assert model_a.materialized == "view" and model_a.tests == ()
    statement = build_statement(model_a, "wh", "duckdb")
    assert statement.startswith('CREATE OR REPLACE VIEW "wh"."model_a" AS ')
    assert '"wh".finch_sync_runs' in statement and '"wh".model_b' in statement
    assert "FROM recent" in statement


def test_models_transpile_from_postgres_to_duckdb() -> None:
    [funnel] = [m for m in load_models() if m.name == "connect_session_funnel"]
    assert "PERCENTILE_CONT" in build_statement(funnel, "finch", "postgresql")
    assert "QUANTILE_CONT" in build_statement(funnel, "finch", "duckdb")


def test_declared_tests_become_count_queries(tmp_path: Path) -> None:
    (tmp_path / "m.sql").write_text("select 1 as x")
    (tmp_path / "models.yml").write_text(
        "models:\n  m:\n    materialized: table\n    columns:\n"
        "      x: [not_null, {accepted_values: {values: [1, 'it''s']}}]\n"
    )
    [model] = load_models(tmp_path)
    assert [t.name for t in model.tests] == ["not_null_x", "accepted_values_x"]
    statement = check_statement(model, model.tests[1], "s", "postgresql")
    assert statement.startswith('SELECT COUNT(*) FROM (SELECT * FROM "s".m WHERE')
    assert "'it''s'" in statement


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"two.sql": "select 1; select 2"}, "two.sql: must hold exactly one SELECT"),
        ({"bad.sql": "selec 1 frm"}, "bad.sql"),
        ({"Bad-Name.sql": "select 1"}, "Bad-Name.sql"),
        ({"m.sql": "select 1", "s.yml": "models:\n  m: {materialized: index}"}, "m.sql"),
        ({"m.sql": "select 1", "s.yml": "models:\n  ghost: {}"}, "ghost"),
        ({"m.sql": "select 1", "s.yml": "models:\n  m: {columns: {x: [positive]}}"}, "positive"),
    ],
)
def test_unusable_models_are_refused_naming_the_file(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(SqlModelError, match=message.replace(".", r"\.")):
        load_models(tmp_path)


def test_models_transpile_to_snowflake_names_and_epochs(tmp_path: Path) -> None:
    # Snowflake keeps unquoted names in upper case: what Postgres folds to lower case is
    # written unquoted (a reserved word quoted in upper case), other quoted names stay.
    (tmp_path / "m.sql").write_text(
        'select c.connection_id as "Connection ID", c."state", c.stale as "order",\n'
        "    extract(epoch from (r.as_of - c.last_synced_at)) / 3600.0 as hours\n"
        "from finch_connections as c cross join finch_sync_runs as r"
    )
    (tmp_path / "models.yml").write_text(
        "models:\n  m:\n    materialized: table\n    columns:\n      state: [not_null]\n"
    )
    [model] = load_models(tmp_path)
    statement = build_statement(model, "finch", "snowflake")
    assert statement.startswith(
        'CREATE OR REPLACE TABLE finch.m AS SELECT c.connection_id AS "Connection ID", '
        'c.state, c.stale AS "ORDER", ((DATE_PART(EPOCH_MICROSECOND, r.as_of) - '
        "DATE_PART(EPOCH_MICROSECOND, c.last_synced_at)) / 1000000) / 3600.0 AS hours "
    )
    assert "FROM finch.finch_connections AS c CROSS JOIN finch.finch_sync_runs AS r" in statement
    assert check_statement(model, model.tests[0], "finch", "snowflake") == (
        "SELECT COUNT(*) FROM (SELECT * FROM finch.m WHERE state IS NULL) AS failing"
    )
    # The other warehouses keep Postgres' quoting and epoch arithmetic.
    duckdb = build_statement(model, "finch", "duckdb")
    assert duckdb.startswith('CREATE TABLE "finch"."m" AS ') and '"order"' in duckdb
