"""The SQL models follow each sync: a model is asked for once the tables it reads were
loaded, and the session ledger (an external asset no run materializes) does not hold it."""

from pathlib import Path

import dagster as dg
import pytest

from connections_pipeline.definitions import SYNC_JOB_NAME, defs

pytestmark = pytest.mark.slow

# Reads the ledger next to a table the sync loads.
SESSIONS_BY_STATE = """
select c.state, count(s.session_id) as sessions
from finch_connections as c
left join finch_connect_sessions as s on s.connection_id = c.connection_id
group by c.state
"""


def test_a_model_reading_the_ledger_and_a_synced_table_follows_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "sessions_by_state.sql").write_text(SESSIONS_BY_STATE)
    monkeypatch.setenv("CONNECTIONS_SQL_MODELS_DIR", str(models))
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "30")
    definitions = defs()
    model = dg.AssetKey("sessions_by_state")
    parents = definitions.resolve_asset_graph().get(model).parent_keys
    assert parents == {dg.AssetKey("finch_connections"), dg.AssetKey("finch_connect_sessions")}

    instance = dg.DagsterInstance.ephemeral()
    before = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    assert before.get_requested_partitions(model) == set()
    assert definitions.resolve_job_def(SYNC_JOB_NAME).execute_in_process(instance=instance).success
    after = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=before.cursor
    )
    assert after.get_requested_partitions(model) == {None}
