"""One state's export, from the snapshot to its two files."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from connections_pipeline.export.columns import (
    dated_file_name,
    dated_file_pattern,
    day_of_dated_file,
    latest_file_name,
)
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
    latest_path: str | None
    preview: str


def export_state(
    current: pl.DataFrame,
    state: str,
    options: ExportOptions,
    destination: Destination,
    as_of: datetime,
) -> StateExport:
    """Write `connections_<state>_<date>.csv` and `connections_<state>_latest.csv`.

    Both files hold the same bytes; each is replaced atomically (see `destination`). The date
    is the snapshot's (`as_of`), not the export's: an export re-run tomorrow on today's
    snapshot rewrites today's file. `_latest` is left alone when the destination already
    holds a dated file of a later snapshot, so an older snapshot never poses as the newest.

    Args:
        current: `finch_connections` as `Warehouse.read_current()` returns it.
        state: the partition: `live`, `staged` or `disconnected`.
        options: sort, filters, extra columns and timestamp format.
        destination: where the files go.
        as_of: the snapshot's time (Finch's clock of the sync that loaded it); a naive
            time is taken as UTC.
    """
    header = [name for name, _ in export_columns(options)]
    rows = render_rows(select_rows(current, state, options), options)
    data = encode_csv(header, rows)
    day = (as_of if as_of.tzinfo is None else as_of.astimezone(UTC)).date()
    path, latest_path = write_dated_and_latest(
        destination,
        data,
        day,
        dated=lambda day: dated_file_name(state, day),
        latest=latest_file_name(state),
        pattern=dated_file_pattern(state),
    )
    return StateExport(
        state=state,
        rows=len(rows),
        path=path,
        latest_path=latest_path,
        preview=markdown_preview(header, rows[:PREVIEW_ROWS]),
    )


def write_dated_and_latest(
    destination: Destination,
    data: bytes,
    day: date,
    *,
    dated: Callable[[date], str],
    latest: str,
    pattern: str,
) -> tuple[str, str | None]:
    """Write `data` as the dated file of `day` and, unless the destination holds a dated
    file (matching `pattern`) of a later day, as `latest` too.

    Returns:
        The dated file's location, and the latest file's (None when it was left alone).
    """
    path = destination.write(dated(day), data)
    newest = max(filter(None, map(day_of_dated_file, destination.names(pattern))), default=day)
    return path, (None if newest > day else destination.write(latest, data))
