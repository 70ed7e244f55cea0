"""After a sync materializes `finch_connections`, declarative automation asks for every
state's export (and the SQL models), however the sync was started; after a failed sync or a
failed blocking check on `finch_connections`, it asks for nothing."""

from pathlib import Path

import dagster as dg
import pytest
from export_helpers import STATES, partition_metadata, resources

from connections_pipeline.assets.exports import EXPORT_ASSET, finch_connections_csv
from connections_pipeline.definitions import EXPORT_JOB_NAME, SYNC_JOB_NAME, defs
from connections_pipeline.partitions import all_states_tags
from connections_pipeline.warehouse import CONNECTIONS

pytestmark = pytest.mark.slow

EXPORT = dg.AssetKey(EXPORT_ASSET)
# Models that read only assets this code location materializes (connect_session_funnel reads
# the session ledger, an external asset that no run materializes).
MODELS_AFTER_SYNC = {
    "connections",
    "connection_states_daily",
    "needs_action_queue",
    "provider_health",
    "sync_freshness",
}


def _requested(result: dg.EvaluateAutomationConditionsResult) -> dict[str, set]:
    return {
        key.to_user_string(): partitions
        for key, partitions in (
            (key, result.get_requested_partitions(key))
            for key in {*[EXPORT], *(dg.AssetKey(m) for m in MODELS_AFTER_SYNC)}
        )
        if partitions
    }


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "40")
    monkeypatch.setenv("CONNECTIONS_EXPORT_URL", str(tmp_path / "exports"))
    return tmp_path / "exports"


def test_a_sync_is_followed_by_one_export_of_every_state_and_the_models(settings: Path) -> None:
    definitions = defs()
    instance = dg.DagsterInstance.ephemeral()
    before = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    assert before.total_requested == 0  # nothing to export before any sync

    # A run of the sync job in this process, as `dagster job execute` starts one: no sensor
    # watches how it was started, only what it materialized.
    sync = definitions.resolve_job_def(SYNC_JOB_NAME).execute_in_process(instance=instance)
    assert sync.success
    after = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=before.cursor
    )
    assert _requested(after) == {
        EXPORT_ASSET: set(STATES),
        **{model: {None} for model in MODELS_AFTER_SYNC},
    }

    # Asked for together, the three partitions run as one run over the range.
    export = definitions.resolve_job_def(EXPORT_JOB_NAME).execute_in_process(
        instance=instance, tags=all_states_tags()
    )
    assert export.success
    assert set(partition_metadata(export)) == set(STATES)
    assert {path.name for path in settings.glob("*_latest.csv")} == {
        f"connections_{state}_latest.csv" for state in STATES
    }

    # Handled: nothing more until the next sync; the next sync asks again.
    quiet = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=after.cursor
    )
    assert quiet.total_requested == 0
    assert definitions.resolve_job_def(SYNC_JOB_NAME).execute_in_process(instance=instance).success
    again = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=quiet.cursor
    )
    assert again.get_requested_partitions(EXPORT) == set(STATES)


def test_a_failed_sync_is_followed_by_nothing(
    settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 1: the sync fails once (dg.Failure) and materializes nothing.
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", "postgresql+psycopg://app@127.0.0.1:1/db")
    definitions = defs()
    instance = dg.DagsterInstance.ephemeral()
    before = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    sync = definitions.resolve_job_def(SYNC_JOB_NAME).execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not sync.success
    after = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=before.cursor
    )
    assert after.total_requested == 0


def _stand_in_sync(passed: bool) -> dg.AssetsDefinition:
    """`finch_connections` with a blocking check, as a sync that may be held."""

    @dg.asset(
        name=CONNECTIONS,
        check_specs=[dg.AssetCheckSpec("plausible_changes", asset=CONNECTIONS, blocking=True)],
    )
    def stand_in():
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(check_name="plausible_changes", passed=passed)

    return stand_in


def test_a_failed_blocking_check_on_the_sync_holds_the_export(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    export_resources = resources(f"duckdb:///{tmp_path / 'wh.duckdb'}", str(tmp_path / "out"))

    def definitions(sync: dg.AssetsDefinition) -> dg.Definitions:
        return dg.Definitions(assets=[sync, finch_connections_csv], resources=export_resources)

    held, accepted = _stand_in_sync(passed=False), _stand_in_sync(passed=True)
    before = dg.evaluate_automation_conditions(defs=definitions(held), instance=instance)
    dg.materialize([held], instance=instance, raise_on_error=False)
    after = dg.evaluate_automation_conditions(
        defs=definitions(held), instance=instance, cursor=before.cursor
    )
    assert after.get_requested_partitions(EXPORT) == set()

    # Once the check passes (the run accepted), the export follows.
    dg.materialize([accepted], instance=instance)
    later = dg.evaluate_automation_conditions(
        defs=definitions(accepted), instance=instance, cursor=after.cursor
    )
    assert later.get_requested_partitions(EXPORT) == set(STATES)
