"""A sync run with `dagster job execute` (README offers it; no run-status sensor sees it) is
followed by the CSV export and the SQL models, on the default DuckDB warehouse."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deploy_helpers import (
    DEFINITIONS_MODULE,
    SCHEMA,
    bi_runs,
    deployment,
    export_runs,
    finished,
    sync_runs,
)
from export.export_helpers import STATES, read_with_csv

from connections_pipeline.definitions import SYNC_JOB_NAME
from connections_pipeline.partitions import all_states_tags
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow


def test_a_sync_executed_from_the_cli_is_followed_by_the_exports(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    warehouse_url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    with deployment(postgres_admin_url, tmp_path, warehouse_url=warehouse_url) as deployed:
        instance = deployed.instance()
        deployed.start_daemon()

        deployed.dagster("job", "execute", "-m", DEFINITIONS_MODULE, "-j", SYNC_JOB_NAME)

        [sync] = sync_runs(instance)
        assert sync.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert not sync.dagster_run.tags.get("dagster/schedule_name")
        export = deployed.wait_for(
            "export run after the CLI sync",
            lambda: [r for r in export_runs(instance) if finished(r)],
            timeout=300,
        )[0]
        assert export.dagster_run.status == dg.DagsterRunStatus.SUCCESS, deployed.tail()
        assert all_states_tags().items() <= export.dagster_run.tags.items()
        models = deployed.wait_for(
            "SQL models run after the CLI sync",
            lambda: [r for r in bi_runs(instance, {"connections"}) if finished(r)],
            timeout=300,
        )[0]
        # Both read or write the one DuckDB file; the loser of its lock retries.
        assert models.dagster_run.status == dg.DagsterRunStatus.SUCCESS, deployed.tail()

        with Warehouse(warehouse_url, schema=SCHEMA) as warehouse:
            current = warehouse.read_current()
        for state in STATES:
            rows = read_with_csv(deployed.exports / f"connections_{state}_latest.csv")[1:]
            assert len(rows) == current.filter(pl.col("state") == state).height
        assert len(export_runs(instance)) == 1
