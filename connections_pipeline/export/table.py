"""From the warehouse snapshot to CSV bytes: select, sort, format, neutralise, encode.

Formula neutralisation follows OWASP's advice on CSV injection: a cell whose text begins
with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with a single quote `'`, so
a spreadsheet shows the text instead of evaluating it. Nothing else in the cell changes.
Quoting follows RFC 4180: fields holding a comma, a double quote, CR or LF are enclosed in
double quotes, embedded double quotes are doubled, records end with CRLF.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from connections_pipeline.export.columns import DASHBOARD_COLUMNS, TIE_BREAKER
from connections_pipeline.export.options import ExportOptions, check_options

FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
NEUTRALISING_PREFIX = "'"
PREVIEW_ROWS = 5
_PREVIEW_CELL_CHARS = 60


def export_columns(options: ExportOptions) -> list[tuple[str, str]]:
    """(header, column) pairs of the file: the Dashboard's, then the configured extras."""
    return [*DASHBOARD_COLUMNS, *((name, name) for name in options.extra_columns)]


def select_rows(current: pl.DataFrame, state: str, options: ExportOptions) -> pl.DataFrame:
    """The rows of `state` that pass the filters, sorted, with the export's columns.

    Args:
        current: `finch_connections` as `Warehouse.read_current()` returns it.
        state: `live`, `staged` or `disconnected`.
        options: validated against `current`'s columns here as well.
    """
    condition = check_options(options, current.schema)
    key = options.sort_by
    ordered = (
        current.filter((pl.col("state") == state) & condition)
        .with_columns(pl.col(key).str.to_lowercase().alias("__sort_folded"))
        .sort(
            ["__sort_folded", key, TIE_BREAKER],
            descending=options.descending,
            nulls_last=True,
        )
    )
    return ordered.select(column for _, column in export_columns(options))


def neutralise(text: str) -> str:
    """`text`, prefixed with `'` when a spreadsheet would run it as a formula."""
    return NEUTRALISING_PREFIX + text if text.startswith(FORMULA_STARTS) else text


def cell_text(value: Any, timestamp_format: str) -> str:
    """One cell as the file shows it, before neutralisation: blank for null, `true`/`false`
    for booleans, timestamps in UTC with `timestamp_format`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.strftime(timestamp_format)
    return str(value)


def render_rows(frame: pl.DataFrame, options: ExportOptions) -> list[list[str]]:
    """Every row of `frame` as neutralised cell texts, in column order."""
    fmt = options.timestamp_format
    return [[neutralise(cell_text(value, fmt)) for value in row] for row in frame.iter_rows()]


def encode_csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    """RFC 4180 CSV in UTF-8 (no byte-order mark): a header row, then `rows`, CRLF endings."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def markdown_preview(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of `rows` for Dagster's UI; cells shortened to one line."""
    lines = [
        "| " + " | ".join(_markdown_cell(name) for name in header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _markdown_cell(text: str) -> str:
    flat = " ".join(text.replace("|", "\\|").split())
    return flat if len(flat) <= _PREVIEW_CELL_CHARS else flat[: _PREVIEW_CELL_CHARS - 1] + "…"
