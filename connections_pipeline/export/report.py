"""The Connections page as one HTML file: the three tabs, sortable and filterable, for people.

The CSVs are what a spreadsheet wants; the report is what a person opening a link wants.
It is rendered with Jinja2 (autoescape on) from the same rows, columns and labels as the CSV
export (`table`), and written next to the CSVs through the same `Destination` (atomic, local
folder or fsspec URL). Names are shown as stored, HTML-escaped only: the CSV's formula guard
(a leading `'`) is for spreadsheets, and a browser runs no formula.

The file is self-contained: styles and script are inline, nothing is fetched, and a
Content-Security-Policy lets only the report's own script run (its SHA-256 is in the
policy), so a company name that looks like markup stays text even if it reached the page
unescaped.

Times are shown absolute (UTC) and relative to the snapshot's `as_of` ("3 hours before the
snapshot" is what "3 hours ago" meant when the snapshot was taken): the page says the same
thing whenever it is opened.
"""

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import polars as pl

from connections_pipeline.concepts import STATES
from connections_pipeline.export.columns import (
    DASHBOARD_COLUMNS,
    ISO_8601_UTC,
    dated_report_name,
    latest_report_name,
)
from connections_pipeline.export.destination import Destination
from connections_pipeline.export.options import ExportOptions
from connections_pipeline.export.run import write_dated_and_latest
from connections_pipeline.export.table import cell_text, select_rows

TEMPLATES = "connections_pipeline.export"
_READABLE_TIME = "%Y-%m-%d %H:%M UTC"
# How each sync status reads at the top of the page.
SYNC_STATUS_TEXT = {
    "success": "complete: every token answered",
    "partial": "partial: some rows are stale (the last values Finch gave)",
}
# Not shown as columns: what the page needs to know of each row.
_ROW_FIELDS = ("connection_key", "needs_action")
_UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600))


@dataclass(frozen=True)
class Snapshot:
    """Which snapshot the report shows: the sync run that loaded it.

    Attributes:
        as_of: Finch's clock when the sync ran (UTC).
        run_id: the sync run's ID.
        status: `success` or `partial`.
        status_reason: why the run is not `success`, if it is not.
        clock: whose clock `as_of` is, as the page names it (e.g. "Finch's clock").
        not_loaded: a later sync that loaded nothing (held or failed) and why, as the page
            says it; None when the snapshot is the newest sync's.
    """

    as_of: datetime
    run_id: str
    status: str
    status_reason: str | None = None
    clock: str = "Finch's clock"
    not_loaded: str | None = None


@dataclass(frozen=True)
class ReportExport:
    """What the report export wrote: its two files and the rows per state."""

    path: str
    latest_path: str | None
    rows: dict[str, int]
    needs_action: int


def relative_time(moment: datetime, reference: datetime) -> str:
    """`moment` relative to `reference`: "3 hours ago", "in 2 days", "just now"."""
    seconds = (_utc(reference) - _utc(moment)).total_seconds()
    size = abs(seconds)
    if size < 60:
        return "just now"
    count, unit = int(size // 60), "minute"
    for name, length in _UNITS:
        if size >= length:
            count, unit = int(size // length), name
            break
    text = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{text} ago" if seconds > 0 else f"in {text}"


def render_report(current: pl.DataFrame, snapshot: Snapshot, generated_at: datetime) -> str:
    """The report's HTML for `current` (`finch_connections` as `read_current()` returns it)."""
    tabs = [_tab(current, state, snapshot.as_of) for state in STATES]
    script = _asset_text("report.js")
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            tabs=tabs,
            headers=[header for header, _ in DASHBOARD_COLUMNS],
            needs_action=sum(tab["needs_action"] for tab in tabs),
            needs_action_state=next((tab["state"] for tab in tabs if tab["needs_action"]), None),
            snapshot=snapshot,
            as_of=_time_cell(snapshot.as_of, generated_at),
            generated=_time_cell(generated_at, generated_at),
            status_text=SYNC_STATUS_TEXT.get(snapshot.status, snapshot.status),
            style=_asset_text("report.css"),
            script=script,
            script_hash=_sha256(script),
        )
    )


def export_report(
    current: pl.DataFrame,
    snapshot: Snapshot,
    destination: Destination,
    generated_at: datetime,
    still_newest: Callable[[], bool] | None = None,
) -> ReportExport:
    """Write `connections_report_<date>.html` and `connections_report_latest.html`.

    The date is the snapshot's, and `_latest` follows the order snapshots were loaded in
    (`still_newest`, as `export.run.write_dated_and_latest`): the same rules as the CSVs.
    """
    html = render_report(current, snapshot, generated_at)
    path, latest = write_dated_and_latest(
        destination,
        html.encode("utf-8"),
        _utc(snapshot.as_of).date(),
        dated=dated_report_name,
        latest=latest_report_name(),
        still_newest=still_newest,
    )
    rows = {state: current.filter(pl.col("state") == state).height for state in STATES}
    return ReportExport(
        path=path,
        latest_path=latest,
        rows=rows,
        needs_action=int(current["needs_action"].sum()),
    )


def _tab(current: pl.DataFrame, state: str, as_of: datetime) -> dict:
    """One tab: the state's rows in the CSV's default order, each with its key and flag."""
    frame = select_rows(current, state, ExportOptions(extra_columns=_ROW_FIELDS))
    columns = [column for _, column in DASHBOARD_COLUMNS]
    rows = [
        {
            "key": row["connection_key"],
            "needs_action": bool(row["needs_action"]),
            "cells": [_cell(row[column], frame.schema[column], as_of) for column in columns],
        }
        for row in frame.iter_rows(named=True)
    ]
    return {
        "state": state,
        "label": state.capitalize(),
        "rows": rows,
        "needs_action": sum(1 for row in rows if row["needs_action"]),
    }


def _cell(value: Any, dtype: pl.DataType, as_of: datetime) -> dict[str, Any]:
    """One table cell: the text shown (as stored; the template escapes it), its sort key,
    and for a time its relative form."""
    if value is None:
        return {"text": "", "sort": "", "kind": "blank"}
    if isinstance(value, datetime):
        return {"kind": "time", **_time_cell(value, as_of)}
    text = cell_text(value, ISO_8601_UTC)
    if dtype.is_numeric():
        return {"text": text, "sort": str(value), "kind": "number"}
    return {"text": text, "sort": text.casefold(), "kind": "text"}


def _time_cell(moment: datetime, reference: datetime) -> dict[str, str]:
    iso = cell_text(moment, ISO_8601_UTC)
    return {
        "text": _utc(moment).strftime(_READABLE_TIME),
        "sort": iso,
        "iso": iso,
        "relative": relative_time(moment, reference),
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATES, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@cache
def _asset_text(name: str) -> str:
    return resources.files(TEMPLATES).joinpath("templates", name).read_text(encoding="utf-8")
