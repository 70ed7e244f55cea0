"""The CSV export asset: one file per connection state, like the Dashboard's export button.

Partitioned by state (`live`, `staged`, `disconnected`). A run may cover one partition or
all three (a single-run backfill: `BackfillPolicy.single_run()`), reading the warehouse once
either way; after each sync, declarative automation asks for all three in one run.
"""

import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from connections_pipeline.assets.failures import no_snapshot_yet, setting_failure, snapshot_reads
from connections_pipeline.assets.notifications import notify_with_warehouse
from connections_pipeline.assets.table_schemas import export_schema
from connections_pipeline.automation import AFTER_UPSTREAM
from connections_pipeline.export import (
    DASHBOARD_COLUMNS,
    ISO_8601_UTC,
    ColumnFilter,
    ExportOptions,
    ExportSettingError,
    StateExport,
    check_options,
    export_state,
    latest_file_name,
)
from connections_pipeline.notify.messages import EXPORT, export_delivery
from connections_pipeline.partitions import connection_state_partitions
from connections_pipeline.resources import (
    ExportDestinationResource,
    NotifierResource,
    WarehouseResource,
)
from connections_pipeline.warehouse import (
    CONNECTIONS,
    CONNECTIONS_COLUMNS,
    WarehouseConnectionError,
)

EXPORT_GROUP = "finch_exports"
EXPORT_ASSET = "finch_connections_csv"
_SCHEMA = {column.name: column.dtype for column in CONNECTIONS_COLUMNS}


class ExportFilter(dg.Config):
    """Keep rows whose `column` equals `equals`, or is one of `one_of` (set one)."""

    column: str
    equals: Any = None
    one_of: list[Any] | None = None


class CsvExportConfig(dg.Config):
    """Run configuration of `finch_connections_csv` (Launchpad, `--config-json`)."""

    sort_by: str = "company_name"
    descending: bool = False
    needs_action: bool | None = None
    filters: list[ExportFilter] = []
    extra_columns: list[str] = []
    timestamp_format: str = ISO_8601_UTC

    def to_options(self) -> ExportOptions:
        return ExportOptions(
            sort_by=self.sort_by,
            descending=self.descending,
            needs_action=self.needs_action,
            filters=tuple(
                ColumnFilter(f.column, equals=f.equals, one_of=f.one_of) for f in self.filters
            ),
            extra_columns=tuple(self.extra_columns),
            timestamp_format=self.timestamp_format,
        )


with warnings.catch_warnings():
    # Dagster marks backfill_policy beta; it is what makes one run export all three states.
    # The warning is ours to track, not something a user of this package can act on.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    _single_run_backfill = dg.BackfillPolicy.single_run()
    _export_asset = dg.asset(
        name=EXPORT_ASSET,
        description="The Dashboard's CSV export of one connection state, written to "
        "CONNECTIONS_EXPORT_URL as `connections_<state>_<date>.csv` (the date of the snapshot) "
        "and `connections_<state>_latest.csv`.",
        group_name=EXPORT_GROUP,
        kinds={"csv", "python"},
        partitions_def=connection_state_partitions,
        deps=[dg.AssetDep(CONNECTIONS)],
        # The file's columns, as the Dashboard heads them (configured extra columns follow).
        metadata=export_schema(DASHBOARD_COLUMNS, CONNECTIONS),
        backfill_policy=_single_run_backfill,
        automation_condition=AFTER_UPSTREAM,
        # Transient trouble (a DuckDB file locked by another run, a network error on upload)
        # retries; unusable settings fail once, as dg.Failure(allow_retries=False).
        retry_policy=dg.RetryPolicy(
            max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
    )


@_export_asset
def finch_connections_csv(
    context: dg.AssetExecutionContext,
    config: CsvExportConfig,
    export_destination: ExportDestinationResource,
    warehouse: WarehouseResource,
    notifier: NotifierResource,
) -> None:
    states = context.partition_keys
    try:
        options = config.to_options()
        check_options(options, _SCHEMA)
        destination = export_destination.open()
        destination.check()
    except ExportSettingError as exc:
        raise setting_failure(str(exc), export_destination) from None
    with snapshot_reads(warehouse) as store:
        current = store.read_current()
        snapshot = store.latest_loaded_run()
    if snapshot is None:
        raise no_snapshot_yet()
    exported_at = datetime.now(UTC)
    context.log.info(
        "Exporting %s from %d rows of %s (snapshot as of %s, sync %s %s) to %s",
        ", ".join(states),
        current.height,
        CONNECTIONS,
        snapshot["as_of"].strftime(ISO_8601_UTC),
        snapshot["run_id"],
        snapshot["status"],
        destination.display_url,
    )
    still_newest = newest_loaded_check(warehouse, snapshot["run_id"])
    written_states: dict[str, dict[str, Any]] = {}
    files: list[tuple[str, str]] = []
    for state in states:
        written = export_state(
            current, state, options, destination, snapshot["as_of"], still_newest
        )
        if written.latest_path is None:
            context.log.warning(
                "Wrote %d %s rows to %s; a later sync loaded another snapshot meanwhile, so "
                "%s is left to its export",
                written.rows,
                state,
                written.path,
                latest_file_name(state),
            )
        else:
            context.log.info(
                "Wrote %d %s rows to %s and %s",
                written.rows,
                state,
                written.path,
                written.latest_path,
            )
        written_states[state] = _metadata(
            written, destination.is_local, options, exported_at, snapshot
        )
        files.append((f"{state}, {written.rows} rows", written.path))
    # The files to the people who receive them; a failed delivery waits, the export stands.
    delivery = export_delivery(EXPORT, context.run.run_id, files, snapshot["as_of"])
    notified = notify_with_warehouse(context.log, notifier, warehouse, [delivery])
    for state, metadata in written_states.items():
        context.add_asset_metadata({**metadata, **notified}, partition_key=state)


def newest_loaded_check(warehouse: WarehouseResource, run_id: str) -> Callable[[], bool]:
    """Whether the sync `run_id` is still the last that loaded a snapshot, asked just before
    a `_latest` file is replaced: of two exports running at once (after two quick syncs),
    the older snapshot's must not end as `_latest`. A warehouse that cannot be read right
    now (a sync holding the DuckDB file) counts as yes: this is the newest snapshot known."""

    def check() -> bool:
        try:
            store = warehouse.open(hold_connections=False)
            try:
                loaded = store.latest_loaded_run()
            finally:
                store.dispose()
        except (ValueError, WarehouseConnectionError):
            return True
        return loaded is None or loaded["run_id"] == run_id

    return check


def _metadata(
    written: StateExport,
    local: bool,
    options: ExportOptions,
    exported_at: datetime,
    snapshot: dict[str, Any],
) -> dict[str, Any]:
    location = dg.MetadataValue.path if local else dg.MetadataValue.url
    latest = location(written.latest_path) if written.latest_path else "not replaced"
    return {
        "dagster/row_count": written.rows,
        "path": location(written.path),
        "latest_path": latest,
        # Which snapshot the files hold: the sync that loaded it, its Finch clock and status.
        "snapshot_as_of": snapshot["as_of"].strftime(ISO_8601_UTC),
        "sync_run_id": snapshot["run_id"],
        "sync_status": snapshot["status"],
        "exported_at": exported_at.strftime(ISO_8601_UTC),
        "sort": f"{options.sort_by} {'desc' if options.descending else 'asc'}",
        "preview": dg.MetadataValue.md(written.preview),
    }
