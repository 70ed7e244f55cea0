"""The code location loads, with the assets, job and schedule other work relies on."""

import dagster as dg
import pytest

from connections_pipeline.assets.connect_links import CONNECT_LINK_JOB_NAME
from connections_pipeline.assets.sql_models import SQL_MODELS_GROUP
from connections_pipeline.automation import AFTER_UPSTREAM, AUTOMATION_SENSOR_NAME
from connections_pipeline.definitions import EXPORT_JOB_NAME, SYNC_JOB_NAME, defs
from connections_pipeline.finch.config import FINCH_IP_WINDOW_SECONDS
from connections_pipeline.pools import FINCH_POOL
from connections_pipeline.settings import SettingError

PROMISED_ASSETS = {
    "finch_raw_responses",
    "finch_connections",
    "finch_connections_history",
    "finch_connection_entities",
    "finch_sync_runs",
}


def test_definitions_expose_the_sync_assets_job_and_schedule() -> None:
    definitions = defs()
    keys = {key.to_user_string() for key in definitions.resolve_asset_graph().get_all_asset_keys()}
    assert keys >= PROMISED_ASSETS
    job = definitions.resolve_job_def(SYNC_JOB_NAME)
    assert job.name == "sync_connections"
    [schedule] = [s for s in definitions.schedules if s.job_name == SYNC_JOB_NAME]
    assert schedule.cron_schedule == "0 6 * * *"
    checks = {key.name for key in definitions.resolve_asset_graph().asset_check_keys}
    assert {"connections_pass_schema", "entities_pass_schema", "every_token_answered"} <= checks


def test_definitions_expose_the_csv_export_job_and_its_automation() -> None:
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    export = graph.get(dg.AssetKey("finch_connections_csv"))
    assert export.partitions_def.get_partition_keys() == ["live", "staged", "disconnected"]
    assert dg.AssetKey("finch_connections") in export.parent_keys
    job = definitions.resolve_job_def(EXPORT_JOB_NAME)
    assert job.partitions_def.get_partition_keys() == ["live", "staged", "disconnected"]
    # The exports and every SQL model follow materializations, not a run-status sensor.
    followers = [export] + [
        graph.get(key)
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name == SQL_MODELS_GROUP
    ]
    assert len(followers) > 1
    assert all(node.automation_condition == AFTER_UPSTREAM for node in followers)
    sensor = definitions.resolve_sensor_def(AUTOMATION_SENSOR_NAME)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert not [s for s in definitions.sensors if isinstance(s, dg.RunStatusSensorDefinition)]


def test_every_step_that_calls_finch_runs_in_the_finch_pool() -> None:
    # Whatever needs the `finch` resource calls Finch: an asset or op added later included.
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    finch_assets = {
        node.assets_def
        for node in graph.asset_nodes
        if "finch" in node.assets_def.required_resource_keys
    }
    assert {a.op.name for a in finch_assets} >= {"sync_finch_connections", "finch_reauth_queue"}
    assert {a.op.pool for a in finch_assets} == {FINCH_POOL}
    finch_ops = [
        node.definition
        for job in definitions.resolve_all_job_defs()
        for node in job.graph.nodes
        if "finch" in node.definition.required_resource_keys
    ]
    link_op = definitions.resolve_job_def(CONNECT_LINK_JOB_NAME).graph.node_named(
        "create_connect_session"
    )
    assert link_op.definition in finch_ops
    assert {op.pool for op in finch_ops} == {FINCH_POOL}
    # Nothing else waits for Finch's budget.
    assert not [
        node.key
        for node in graph.asset_nodes
        if node.is_materializable
        and node.assets_def.op.pool == FINCH_POOL
        and node.assets_def not in finch_assets
    ]


def test_the_sync_job_runs_in_its_run_workers_process() -> None:
    # A killed sync is then a dead run worker, failed by Dagster, not a step retried inside
    # the Finch IP window of the requests it already sent.
    job = defs().resolve_job_def(SYNC_JOB_NAME)
    assert job.executor_def.name == dg.in_process_executor.name


def test_export_destination_is_bound_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONNECTIONS_EXPORT_URL", "s3://drops/connections")
    monkeypatch.setenv("CONNECTIONS_EXPORT_STORAGE_OPTIONS", '{"secret": "never-shown-secret"}')
    resources = defs().resources
    assert isinstance(resources["export_destination"].url, dg.EnvVar)
    assert "never-shown-secret" not in repr(resources)


def test_schedule_cron_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTIONS_SYNC_CRON", "15 */4 * * *")
    [schedule] = defs().schedules
    assert schedule.cron_schedule == "15 */4 * * *"


def test_unusable_number_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTIONS_FINCH_CONCURRENCY", "many")
    with pytest.raises(SettingError, match="CONNECTIONS_FINCH_CONCURRENCY"):
        defs()


def test_secrets_are_bound_as_env_vars_not_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINCH_CLIENT_SECRET", "never-shown-secret")
    monkeypatch.setenv("FINCH_BASE_URL", "https://api.tryfinch.com")
    resources = defs().resources
    assert "never-shown-secret" not in repr(resources)
    assert isinstance(resources["finch"].client_secret, dg.EnvVar)


def test_a_retried_sync_waits_out_finchs_ip_window() -> None:
    # Regression: retries came after 30 s +/- jitter; a new attempt paces from an empty
    # window, so together with what the failed attempt sent it could cross 1,000 requests
    # per 5 minutes and have Finch block the IP for an hour.
    sync = defs().resolve_assets_def("finch_connections")
    policy = sync.op.retry_policy
    assert policy is not None and policy.max_retries >= 1
    delays = [policy.calculate_delay(attempt) for attempt in range(1, policy.max_retries + 1)]
    assert min(delays) > FINCH_IP_WINDOW_SECONDS
