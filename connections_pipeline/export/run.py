"""One state's export, from the snapshot to its two files."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

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
    latest_path: str | None
    preview: str


def export_state(
    current: pl.DataFrame,
    state: str,
    options: ExportOptions,
    destination: Destination,
    as_of: datetime,
    still_newest: Callable[[], bool] | None = None,
) -> StateExport:
    """Write `connections_<state>_<date>.csv` and `connections_<state>_latest.csv`.

    Both files hold the same bytes; each is replaced atomically (see `destination`). The date
    is the snapshot's (`as_of`), not the export's: an export re-run tomorrow on today's
    snapshot rewrites today's file. `_latest` follows the order the snapshots were loaded in,
    not their dates (a clock can jump): see `write_dated_and_latest`.

    Args:
        current: `finch_connections` as `Warehouse.read_current()` returns it.
        state: the partition: `live`, `staged` or `disconnected`.
        options: sort, filters, extra columns and timestamp format.
        destination: where the files go.
        as_of: the snapshot's time (Finch's clock of the sync that loaded it); a naive
            time is taken as UTC.
        still_newest: whether `current` is still the newest loaded snapshot; None when
            the caller knows it is.
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
        still_newest=still_newest,
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
    still_newest: Callable[[], bool] | None = None,
) -> tuple[str, str | None]:
    """Write `data` as the dated file of `day`, then as `latest` too unless `still_newest`
    says a later sync loaded another snapshot meanwhile (its own export writes `latest`).

    `latest` is the export of the newest *loaded* snapshot, whatever its date: comparing
    dates would let one snapshot dated in the future (a wrong clock) freeze `latest` for
    good, and an older snapshot is never exported anyway (exports read the current table).

    Returns:
        The dated file's location, and the latest file's (None when it was left alone).
    """
    path = destination.write(dated(day), data)
    if still_newest is not None and not still_newest():
        return path, None
    return path, destination.write(latest, data)
