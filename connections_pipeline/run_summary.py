"""What the `run` command prints: the state breakdown, where the data and the CSVs are."""

import dagster as dg
import polars as pl

from connections_pipeline.assets.exports import EXPORT_ASSET
from connections_pipeline.partitions import CONNECTION_STATES
from connections_pipeline.redaction import safe_database_url
from connections_pipeline.resources import WarehouseResource


def print_summary(warehouse: WarehouseResource, run_id: str) -> None:
    # Settings from the environment are EnvVars until resolved, as in a run.
    store = warehouse.process_config_and_initialize().open()
    try:
        current = store.read_current()
        runs = store.read_table("finch_sync_runs").filter(pl.col("run_id") == run_id)
    finally:
        store.dispose()
    print(f"\nSync {run_id} finished.")
    print(f"{'state':<14}{'rows':>8}{'needs action':>14}")
    for state in CONNECTION_STATES:
        rows = current.filter(pl.col("state") == state)
        print(f"{state:<14}{rows.height:>8}{int(rows['needs_action'].sum()):>14}")
    if runs.height:
        run = runs.row(0, named=True)
        print(
            f"Finch requests: {run['requests']} for {run['tokens']} tokens "
            f"({run['retries']} retries, {run['rate_limited']} rate-limited); "
            f"{run['quarantined']} rows quarantined"
        )
        waiting = _waiting(run)
        if waiting:
            print(f"Left for the next runs: {waiting}")
    print(f"Warehouse: {safe_database_url(store.url)} (schema {store.schema})")


def print_exports(result: dg.ExecuteInProcessResult) -> None:
    """Each state's row count and its two files, from the export run's materializations."""
    written = {
        event.partition: event.metadata
        for event in result.asset_materializations_for_node(EXPORT_ASSET)
    }
    print(f"\nCSV exports (run {result.run_id}):")
    for state in CONNECTION_STATES:
        metadata = written.get(state)
        if metadata is None:
            continue
        rows = metadata["dagster/row_count"].value
        print(f"{state:<14}{rows:>8}  {metadata['path'].value}")
        latest = metadata["latest_path"]
        print(f"{'':<22}  {getattr(latest, 'value', latest)}")


def _waiting(run: dict) -> str:
    """What the run's budget or the company share left for later runs, if anything."""
    parts = []
    if run.get("tokens_deferred"):
        parts.append(f"{run['tokens_deferred']} tokens deferred by the run's budget")
    if run.get("company_names_pending"):
        parts.append(
            f"{run['company_names_pending']} company names (the entity name shows meanwhile)"
        )
    return "; ".join(parts)
