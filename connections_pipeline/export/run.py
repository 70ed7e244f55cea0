"""One state's export, from the snapshot to its two files."""

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from connections_pipeline.export.columns import dated_file_name, latest_file_name
from connections_pipeline.export.destination import Destination
from connections_pipeline.export.options import ExportOptions
from connections_pipeline.export.table import (
    PREVIEW_ROWS,
    encode_csv,
    export_columns,
    markdown_preview,
    render_rows,
    select_rows,
)


@dataclass(frozen=True)
class StateExport:
    """What one state's export wrote."""

    state: str
    rows: int
    path: str
    latest_path: str
    preview: str


def export_state(
    current: pl.DataFrame,
    state: str,
    options: ExportOptions,
    destination: Destination,
    exported_at: datetime,
) -> StateExport:
    """Write `connections_<state>_<date>.csv` and `connections_<state>_latest.csv`.

    Both files hold the same bytes; each is replaced atomically (see `destination`).

    Args:
        current: `finch_connections` as `Warehouse.read_current()` returns it.
        state: the partition: `live`, `staged` or `disconnected`.
        options: sort, filters, extra columns and timestamp format.
        destination: where the files go.
        exported_at: the export run's time; its UTC date names the dated file (a naive
            time is taken as UTC).
    """
    header = [name for name, _ in export_columns(options)]
    rows = render_rows(select_rows(current, state, options), options)
    data = encode_csv(header, rows)
    day = (exported_at if exported_at.tzinfo is None else exported_at.astimezone(UTC)).date()
    path = destination.write(dated_file_name(state, day), data)
    latest_path = destination.write(latest_file_name(state), data)
    return StateExport(
        state=state,
        rows=len(rows),
        path=path,
        latest_path=latest_path,
        preview=markdown_preview(header, rows[:PREVIEW_ROWS]),
    )
