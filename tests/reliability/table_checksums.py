"""SHA-256 checksums of warehouse tables and exported files, for idempotency checks."""

import hashlib
from pathlib import Path

import polars as pl

from connections_pipeline.warehouse import TABLE_COLUMNS, Warehouse

# Columns that say when or how hard a run worked, not what it loaded: wall-clock times,
# request counts (a restarted run may meet a 429 an uninterrupted one did not) and the id
# Finch gives each request.
RUN_EFFORT_COLUMNS = {
    "finch_sync_runs": (
        "started_at",
        "finished_at",
        "duration_seconds",
        "requests",
        "retries",
        "rate_limited",
    ),
    "finch_raw_responses": ("request_id",),
}


def table_checksums(
    warehouse: Warehouse, ignore_run_effort: bool = True, only_run: str | None = None
) -> dict[str, str]:
    """One checksum per warehouse table over all rows (or `only_run`'s rows, in tables
    that have a run_id), sorted on every column."""
    checksums = {}
    for name in TABLE_COLUMNS:
        frame = warehouse.read_table(name)
        if only_run is not None and "run_id" in frame.columns:
            frame = frame.filter(pl.col("run_id") == only_run)
        if ignore_run_effort:
            frame = frame.drop(RUN_EFFORT_COLUMNS.get(name, ()))
        text = frame.sort(frame.columns, nulls_last=True).write_csv()
        checksums[name] = hashlib.sha256(text.encode()).hexdigest()
    return checksums


def file_checksums(folder: Path) -> dict[str, str]:
    """Checksum of every file under `folder`, by path relative to it."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
