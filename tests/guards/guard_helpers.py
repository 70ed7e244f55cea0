"""Shared pieces of the guard tests: what a held run may and may not change."""

import json
from pathlib import Path
from typing import Any

import polars as pl
from reliability.table_checksums import table_checksums

from connections_pipeline.warehouse import Warehouse

# A held run keeps its finch_sync_runs row and its raw responses, for diagnosis; every other
# table must be exactly as it was.
RUN_LOG_TABLES = ("finch_sync_runs", "finch_raw_responses")


def data_checksums(warehouse: Warehouse) -> dict[str, str]:
    """Checksums of every table a held run must leave untouched."""
    return {
        name: checksum
        for name, checksum in table_checksums(warehouse, ignore_run_effort=False).items()
        if name not in RUN_LOG_TABLES
    }


def run_row(warehouse: Warehouse, run_id: str) -> dict[str, Any]:
    runs = warehouse.read_table("finch_sync_runs").filter(pl.col("run_id") == run_id)
    assert runs.height == 1, f"expected one finch_sync_runs row for {run_id}"
    return runs.row(0, named=True)


def write_token_file(path: Path, tokens: list[dict[str, Any]], *fields: str) -> Path:
    """A JSON Lines token file holding `fields` of each token (always the access_token)."""
    keep = ("access_token", *fields)
    path.write_text(
        "".join(json.dumps({k: v for k, v in t.items() if k in keep}) + "\n" for t in tokens),
        encoding="utf-8",
    )
    return path
