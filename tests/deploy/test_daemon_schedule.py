"""The production instance runs by itself: the daemon's schedule starts a sync, and one export
run (every state) and the SQL models follow it, on the shipped config and README's URL form;
the people who act hear of it (the needs-action digest, the CSVs by email) and of a later
sync the daemon runs that is held (one alert)."""

from pathlib import Path

import httpx
import polars as pl
import pytest
import sqlalchemy as sa
from deploy_helpers import (
    SCHEDULE,
    SCHEMA,
    WORKSPACE,
    bi_runs,
    deployment,
    export_runs,
    finished,
    materialized_at,
    refreshed,
    sync_runs,
)
from export.export_helpers import STATES, read_with_csv
from notify.receivers import http_receiver, smtp_receiver
from sync.sync_helpers import disconnected_keys, truth_differences

from connections_pipeline.partitions import all_states_tags
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow

# Models that read only what the sync materializes; connect_session_funnel reads the session
# ledger, an external asset no run materializes, so nothing triggers it.
MODELS_AFTER_SYNC = {
    "connections",
    "connection_states_daily",
    "needs_action_queue",
    "provider_health",
    "sync_freshness",
}


def test_scheduled_sync_is_followed_by_one_export_run_and_the_sql_models(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    with (
        http_receiver() as hook,
        smtp_receiver() as smtp,
        deployment(postgres_admin_url, tmp_path, cron="* * * * *") as deployed,
    ):
        deployed.env.update(
            {
                "CONNECTIONS_NOTIFY_RUNS": hook.url,
                "CONNECTIONS_NOTIFY_NEEDS_ACTION": hook.url,
                "CONNECTIONS_NOTIFY_EXPORTS": smtp.url(),
            }
        )
        instance = deployed.instance()
        deployed.start_daemon()

        # The cron fires at the next minute; one scheduled sync is all this test follows.
        first = deployed.wait_for("scheduled sync run", lambda: sync_runs(instance), timeout=180)[0]
        deployed.dagster("schedule", "stop", SCHEDULE, "-w", str(WORKSPACE))
        assert first.dagster_run.tags.get("dagster/schedule_name") == SCHEDULE
        sync = deployed.wait_for(
            "finished sync", lambda: finished(r := refreshed(instance, first)) and r, timeout=300
        )
        assert sync.dagster_run.status.value == "SUCCESS", deployed.tail()

        export = deployed.wait_for(
            "export run after the sync",
            lambda: [r for r in export_runs(instance) if finished(r)],
            timeout=300,
        )[0]
        models = deployed.wait_for(
            "SQL models run after the sync",
            lambda: [r for r in bi_runs(instance, MODELS_AFTER_SYNC) if finished(r)],
            timeout=300,
        )[0]
        for follower in (export, models):
            assert follower.dagster_run.status.value == "SUCCESS", deployed.tail()
            assert follower.create_timestamp.timestamp() >= materialized_at(
                instance, sync.dagster_run.run_id, "finch_connections"
            )
            assert follower.dagster_run.tags.get("dagster/sensor_name")
        # One export run for the sync, over every state partition; every model rebuilt.
        assert len(export_runs(instance)) == 1
        assert all_states_tags().items() <= export.dagster_run.tags.items()
        rebuilt = {
            key.to_user_string()
            for record in bi_runs(instance, MODELS_AFTER_SYNC)
            for key in record.dagster_run.asset_selection
        }
        assert rebuilt >= MODELS_AFTER_SYNC
        assert len(sync_runs(instance)) == 1

        # The warehouse is the Dashboard, and no request met a 429.
        truth = deployed.finch("/_sandbox/truth")["rows"]
        stats = deployed.finch("/_sandbox/stats")
        with Warehouse(deployed.warehouse_url, schema=SCHEMA) as warehouse:
            current = warehouse.read_current()
            assert truth_differences(truth, current, disconnected_keys(truth)) == []
            engine = sa.create_engine(deployed.warehouse_url)
            with engine.connect() as connection:
                model_rows = connection.execute(
                    sa.text(f"select count(*) from {SCHEMA}.connections")
                ).scalar_one()
            engine.dispose()
        assert model_rows == current.height
        assert stats["by_status"].get("429", 0) == 0 and stats["ip_blocks"] == 0

        # The CSVs hold every row of their state.
        for state in STATES:
            rows = read_with_csv(deployed.exports / f"connections_{state}_latest.csv")[1:]
            assert len(rows) == current.filter(pl.col("state") == state).height

        # The runs the daemon launched sent their messages: the first digest names every
        # connection that needs action, the export run mailed the three CSVs.
        needing = {row["connection_id"] for row in truth if row["needs_action"]}
        [digest] = [post for post in hook.posts if "need action" in post["title"]]
        for connection_id in needing:
            assert f"connection {connection_id} " in digest["message"]
        mailed = {
            name for mail in smtp.emails for name in mail.attachments if name.endswith(".csv")
        }
        assert mailed == {path.name for path in deployed.exports.glob("connections_*_20*.csv")}
        assert len(mailed) == len(STATES)

        # A year later every connection looks gone: the next sync the daemon runs (launched
        # through its queue, as the UI does; waiting a minute for the schedule's next tick
        # would prove nothing more) is held and says so once, while the previous snapshot stays.
        httpx.post(f"{deployed.finch_url}/_sandbox/advance", json={"days": 365}, timeout=60)
        deployed.launch_sync()
        held = deployed.wait_for(
            "a second sync, finished",
            lambda: [
                r
                for r in sync_runs(instance)
                if r.dagster_run.run_id != first.dagster_run.run_id and finished(r)
            ],
            timeout=300,
        )[0]
        assert held.dagster_run.status.value == "FAILURE", deployed.tail()
        alerts = [post for post in hook.posts if "held" in post["title"]]
        assert len(alerts) == 1, hook.posts
        assert f"Sync run {held.dagster_run.run_id} was held" in alerts[0]["message"]
        assert "would leave Live in one run" in alerts[0]["message"]
