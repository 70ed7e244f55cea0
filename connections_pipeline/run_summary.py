"""What the `run` command prints: the state breakdown, where the data, CSVs and report are.

Times are UTC, with whose clock they are: a snapshot's `as_of` is Finch's clock (its `Date`
header) or, when no answer carried a usable one, this machine's; the embedded sandbox keeps a
simulated clock of its own, which looks wrong beside the machine's unless the line says so.
The line names the clock the run actually used (`finch_sync_runs.as_of_clock`), with the
headers it ignored. Paths and URLs are absolute.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import sqlalchemy as sa

from connections_pipeline.assets.exports import EXPORT_ASSET
from connections_pipeline.assets.report import REPORT_ASSET
from connections_pipeline.partitions import CONNECTION_STATES
from connections_pipeline.redaction import safe_database_url
from connections_pipeline.warehouse.engine import duckdb_file

TIME = "%Y-%m-%d %H:%M:%S UTC"


def print_summary(resources: Mapping[str, Any], run_id: str) -> None:
    # Settings from the environment are EnvVars until resolved, as in a run.
    store = resources["warehouse"].process_config_and_initialize().open()
    finch = resources["finch"].process_config_and_initialize()
    try:
        current = store.read_current()
        runs = store.read_table("finch_sync_runs").filter(pl.col("run_id") == run_id)
    finally:
        store.dispose()
    run = runs.row(0, named=True) if runs.height else None
    if run is None:
        print(f"\nSync {run_id} finished.")
    else:
        print(
            f"\nSync {run_id} {run['status']}: snapshot as of {_utc(run['as_of'])}, "
            f"{clock_source(finch.embedded, clock=run.get('as_of_clock'))}"
        )
    print(f"{'state':<14}{'rows':>8}{'needs action':>14}")
    for state in CONNECTION_STATES:
        rows = current.filter(pl.col("state") == state)
        print(f"{state:<14}{rows.height:>8}{int(rows['needs_action'].sum()):>14}")
    if run is not None:
        print(
            f"Finch requests: {run['requests']} for {run['tokens']} tokens "
            f"({run['retries']} retries, {run['rate_limited']} rate-limited); "
            f"{run['quarantined']} rows quarantined"
        )
        waiting = _waiting(run)
        if waiting:
            print(f"Left for the next runs: {waiting}")
    print(f"Warehouse: {shown_database_url(store.url)} (schema {store.schema})")


def clock_source(embedded: bool, now: datetime | None = None, clock: str | None = None) -> str:
    """Whose clock a snapshot's time is: `clock` as the run recorded it (a run recorded
    before runs said so: Finch's, or the embedded sandbox's), with this machine's time
    beside the embedded sandbox's simulated one."""
    if clock is None:
        clock = "the embedded Finch sandbox's simulated clock" if embedded else "Finch's clock"
    if not embedded:
        return f"by {clock}"
    moment = now or datetime.now(UTC)
    return f"by {clock} (this machine's: {moment.astimezone(UTC).strftime(TIME)})"


def shown_database_url(url: str | sa.URL) -> str:
    """The warehouse URL without its password, a DuckDB file's path made absolute."""
    parsed = sa.make_url(url)
    path = duckdb_file(parsed)
    if path is not None and not path.is_absolute():
        parsed = parsed.set(database=str(Path(path).resolve()))
    return safe_database_url(parsed)


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


def print_report(result: dg.ExecuteInProcessResult) -> None:
    """Where the HTML report is: the file to open."""
    [metadata] = [event.metadata for event in result.asset_materializations_for_node(REPORT_ASSET)]
    latest = metadata["latest_path"]
    print(f"Report: {metadata['path'].value}")
    if hasattr(latest, "value"):
        print(f"        {latest.value}")


def _utc(moment: datetime) -> str:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime(TIME)
