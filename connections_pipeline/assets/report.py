"""The HTML report asset: the Connections page as one self-contained file beside the CSVs."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from connections_pipeline.assets.exports import newest_loaded_check
from connections_pipeline.assets.failures import no_snapshot_yet, setting_failure, snapshot_reads
from connections_pipeline.assets.notifications import notify_with_warehouse
from connections_pipeline.automation import AFTER_UPSTREAM
from connections_pipeline.export import ISO_8601_UTC, ExportSettingError
from connections_pipeline.export.report import ReportExport, Snapshot, export_report
from connections_pipeline.notify.messages import REPORT, export_delivery
from connections_pipeline.resources import (
    ExportDestinationResource,
    NotifierResource,
    WarehouseResource,
)
from connections_pipeline.warehouse import CONNECTIONS, SYNC_RUNS

REPORT_ASSET = "finch_connections_report"
REPORT_GROUP = "finch_report"


@dg.asset(
    name=REPORT_ASSET,
    description="The Connections page as one HTML file for people, written next to the CSV "
    "exports (CONNECTIONS_EXPORT_URL) as `connections_report_<date>.html` (the date of the "
    "snapshot) and `connections_report_latest.html`: Live, Staged and Disconnected tabs with "
    "counts, sortable columns, a filter on every column and the connections that need action. "
    "Self-contained: it opens without network access.",
    group_name=REPORT_GROUP,
    kinds={"html", "python"},
    deps=[dg.AssetDep(CONNECTIONS), dg.AssetDep(SYNC_RUNS)],
    automation_condition=AFTER_UPSTREAM,
    # Transient trouble (a DuckDB file locked by another run, a network error on upload)
    # retries; unusable settings fail once, as dg.Failure(allow_retries=False).
    retry_policy=dg.RetryPolicy(
        max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    ),
)
def finch_connections_report(
    context: dg.AssetExecutionContext,
    export_destination: ExportDestinationResource,
    warehouse: WarehouseResource,
    notifier: NotifierResource,
) -> dg.MaterializeResult:
    try:
        destination = export_destination.open()
        destination.check()
    except ExportSettingError as exc:
        raise setting_failure(str(exc), export_destination) from None
    with snapshot_reads(warehouse) as store:
        current = store.read_current()
        loaded = store.latest_loaded_run()
        latest = store.latest_run()
    if loaded is None:
        raise no_snapshot_yet()
    snapshot = Snapshot(
        as_of=loaded["as_of"],
        run_id=loaded["run_id"],
        status=loaded["status"],
        status_reason=loaded["status_reason"],
        not_loaded=_not_loaded(loaded, latest),
        # Runs recorded before `as_of_clock` existed were dated by Finch's clock.
        clock=loaded.get("as_of_clock") or Snapshot.clock,
    )
    written = export_report(
        current,
        snapshot,
        destination,
        datetime.now(UTC),
        newest_loaded_check(warehouse, snapshot.run_id),
    )
    context.log.info(
        "Wrote the report of %d rows (snapshot as of %s) to %s",
        current.height,
        snapshot.as_of.strftime(ISO_8601_UTC),
        written.path,
    )
    delivery = export_delivery(
        REPORT, context.run.run_id, [("HTML report", written.path)], snapshot.as_of
    )
    notified = notify_with_warehouse(context.log, notifier, warehouse, [delivery])
    return dg.MaterializeResult(
        metadata={**_metadata(written, destination.is_local, snapshot), **notified}
    )


def _not_loaded(loaded: dict[str, Any], latest: dict[str, Any] | None) -> str | None:
    """What the page says when a later sync than the snapshot's loaded nothing."""
    if latest is None or latest["run_id"] == loaded["run_id"]:
        return None
    reason = f": {latest['status_reason']}" if latest["status_reason"] else ""
    return (
        f"The latest sync (run {latest['run_id']}, {latest['status']}) loaded nothing; "
        f"this page shows the snapshot before it{reason}"
    )


def _metadata(written: ReportExport, local: bool, snapshot: Snapshot) -> dict[str, Any]:
    location = dg.MetadataValue.path if local else dg.MetadataValue.url
    return {
        "path": location(written.path),
        "latest_path": location(written.latest_path) if written.latest_path else "not replaced",
        **{f"{state}_rows": rows for state, rows in written.rows.items()},
        "needs_action": written.needs_action,
        "snapshot_as_of": snapshot.as_of.strftime(ISO_8601_UTC),
        "sync_run_id": snapshot.run_id,
        "sync_status": snapshot.status,
    }
