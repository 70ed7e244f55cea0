"""What each sync asset reports: row counts, a state breakdown, request statistics."""

import logging
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
import polars as pl

from connections_pipeline.assets.table_schemas import ROW_COUNT, ROWS_CHANGED, TABLE_NAME
from connections_pipeline.concepts import STATES
from connections_pipeline.export import ISO_8601_UTC
from connections_pipeline.export.table import cell_text, markdown_preview
from connections_pipeline.sync.run import SyncResult
from connections_pipeline.warehouse.load import LoadSummary

PREVIEW_COLUMNS = ["state", "company_name", "connection_status", "connection_type", "provider_name"]
PREVIEW_ROWS = 10
# Where the sync's progress also goes as structured records (`endpoint`, `done`, `total`),
# for a front end such as the command line's progress bars.
PROGRESS_LOGGER = "connections_pipeline.progress"


def progress_logger(log: Any, every_percent: int = 10) -> Callable[[str, int, int], None]:
    """Log 'introspect 120/200' roughly every `every_percent` of each endpoint's calls."""
    last_logged: dict[str, int] = {}
    progress = logging.getLogger(PROGRESS_LOGGER)

    def report(endpoint: str, done: int, total: int) -> None:
        progress.debug(
            "%s %d/%d",
            endpoint,
            done,
            total,
            extra={"endpoint": endpoint, "done": done, "total": total},
        )
        step = max(1, total * every_percent // 100)
        if done == total or done - last_logged.get(endpoint, 0) >= step:
            last_logged[endpoint] = done
            log.info(f"Finch {endpoint}: {done}/{total}")

    return report


def state_breakdown(connections: pl.DataFrame) -> dg.TableMetadataValue:
    counts = connections.group_by("state").agg(
        pl.len().alias("rows"), pl.col("needs_action").sum().alias("needs_action")
    )
    by_state = {row["state"]: row for row in counts.iter_rows(named=True)}
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "state": state,
                    "rows": int(by_state.get(state, {}).get("rows", 0)),
                    "needs_action": int(by_state.get(state, {}).get("needs_action", 0)),
                }
            )
            for state in STATES
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("state", "string"),
                dg.TableColumn("rows", "int"),
                dg.TableColumn("needs_action", "int"),
            ]
        ),
    )


def _coverage(result: SyncResult) -> dict[str, Any]:
    """What the run polled and what waits for the next one (a budget, a deadline, the
    company share, a targeted run)."""
    run = result.sync_run
    return {
        "tokens_polled": run["tokens"],
        **{
            name: run[name]
            for name in (
                "tokens_deferred",
                "tokens_never_observed",
                "oldest_observation_age_hours",
                "company_names_pending",
            )
        },
    }


def sync_metadata(
    result: SyncResult, row_counts: Mapping[str, int], schema: str
) -> dict[str, dict[str, Any]]:
    """Metadata per sync asset key.

    Args:
        result: what the run did.
        row_counts: each table's rows once the run committed: `dagster/row_count` is the
            table's size, and `rows_changed_this_run` what this run wrote or changed.
        schema: the warehouse schema of the tables (for `dagster/table_name`).
    """
    stats = result.request_stats
    requests = {
        "requests": stats["requests"],
        "retries": stats["retries"],
        "rate_limited_429": stats["rate_limited"],
        "requests_per_token": round(stats["requests"] / max(1, result.sync_run["tokens"]), 3),
    }
    connections = result.connections
    preview = connections.select(PREVIEW_COLUMNS).head(PREVIEW_ROWS)
    load = result.load
    metadata: dict[str, dict[str, Any]] = {
        "finch_raw_responses": {
            **requests,
            "tokens": result.sync_run["tokens"],
            "token_outcomes": dg.MetadataValue.json(result.token_outcomes),
            ROWS_CHANGED: result.raw_responses,
        },
        "finch_connections": {
            "state_breakdown": state_breakdown(connections),
            "quarantined_rows": result.quarantine.height,
            "stale_rows": int(connections["stale"].sum()),
            # Rows whose tokens the application dropped: kept, stale, no longer refreshed.
            "rows_not_in_token_source": int(connections["left_source_at"].is_not_null().sum()),
            "leaving_source": result.sync_run["leaving_source"],
            "sync_status": result.status,
            "as_of": result.as_of.isoformat(),
            "preview": dg.MetadataValue.md(_markdown(preview)),
            **_current_changes(load),
            **_coverage(result),
        },
        "finch_connections_history": _history_metadata(result),
        "finch_connection_row_hashes": {ROWS_CHANGED: _current_changes(load)[ROWS_CHANGED]},
        "finch_connection_entities": {ROWS_CHANGED: load.entities if load else 0},
        "finch_tokens": {
            "tokens_this_run": result.sync_run["tokens"],
            "token_outcomes": dg.MetadataValue.json(result.token_outcomes),
            ROWS_CHANGED: load.tokens if load else 0,
        },
        "finch_quarantine": {
            "source_rows_rejected": result.sync_run["source_rows_rejected"],
            ROWS_CHANGED: result.quarantine.height,
        },
        "finch_connect_sessions": {
            "sessions_added": result.new_sessions,
            "sessions_updated": result.sessions_updated,
            ROWS_CHANGED: result.new_sessions + result.sessions_updated,
        },
        "finch_sync_runs": {
            "status": result.status,
            "status_reason": result.sync_run["status_reason"] or "",
            **requests,
            "duration_seconds": round(result.sync_run["duration_seconds"], 2),
            # From the first request to the last answer: the rest is this run's own work.
            "seconds_with_finch": stats.get("finch_seconds", 0.0),
            "state_breakdown": state_breakdown(connections),
            ROWS_CHANGED: 1,
        },
    }
    for key, entries in metadata.items():
        entries[ROW_COUNT] = row_counts[key]
        entries[TABLE_NAME] = f"{schema}.{key}"
    return metadata


def _current_changes(load: LoadSummary | None) -> dict[str, int]:
    """What the load did to the current table: rows inserted, updated and deleted."""
    if load is None:
        return {ROWS_CHANGED: 0}
    return {
        ROWS_CHANGED: load.inserted + load.updated + load.deleted,
        "rows_inserted": load.inserted,
        "rows_updated": load.updated,
        "rows_deleted": load.deleted,
    }


def _history_metadata(result: SyncResult) -> dict[str, Any]:
    """What the load did to the history: versions opened and closed by this run."""
    if result.load is None:
        return {ROWS_CHANGED: 0}
    return {
        "versions_opened": result.load.history_opened,
        "versions_closed": result.load.history_closed,
        ROWS_CHANGED: result.load.history_opened
        + result.load.history_closed
        + result.load.history_replaced,
    }


def _markdown(frame: pl.DataFrame) -> str:
    rows = [[cell_text(value, ISO_8601_UTC) for value in row] for row in frame.iter_rows()]
    return markdown_preview(frame.columns, rows)
