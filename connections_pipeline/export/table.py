"""From the warehouse snapshot to CSV bytes: select, sort, format, neutralise, encode.

Formula neutralisation follows OWASP's advice on CSV injection: a cell whose text begins
with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with a single quote `'`, so
a spreadsheet shows the text instead of evaluating it. Because some spreadsheets trim
leading spaces before they look (LibreOffice's "Trim spaces" import option) or take the
full-width `=+-@` for the ASCII ones (Excel with a Japanese IME), the operators count also
after leading whitespace, control and invisible formatting characters (e.g. " =1+1",
"\u200b@SUM(A1)"), and in their full-width and small forms (compared after NFKC). A cell
that starts with `'` gets another `'` when the rest would be neutralised, so dropping the
leading `'` of a cell whose rest would be neutralised always restores the stored text
(`restore`). Nothing else in the cell changes.
Quoting follows RFC 4180: fields holding a comma, a double quote, CR or LF are enclosed in
double quotes, embedded double quotes are doubled, records end with CRLF.
"""

import csv
import io
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from connections_pipeline.export.columns import DASHBOARD_COLUMNS, TIE_BREAKER
from connections_pipeline.export.options import ExportOptions, check_options

FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
_OPERATORS = FORMULA_STARTS[:4]
# Characters skipped before looking for an operator (besides whitespace): controls (Cc,
# NUL included) and invisible formatting characters (Cf: zero-width space, BOM, RTL marks).
_SKIPPED_CATEGORIES = ("Cc", "Cf")
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


def runs_as_formula(text: str) -> bool:
    """Whether a spreadsheet may run `text` as a formula: it starts with a tab or CR, or
    with `=`, `+`, `-` or `@` (any width) once leading whitespace, control and invisible
    formatting characters are skipped."""
    if text.startswith(FORMULA_STARTS):
        return True
    for char in text:
        if not (char.isspace() or unicodedata.category(char) in _SKIPPED_CATEGORIES):
            return unicodedata.normalize("NFKC", char).startswith(_OPERATORS)
    return False


def needs_neutralising(text: str) -> bool:
    """`runs_as_formula`, or a leading `'` before text that needs neutralising (so that
    `restore` can tell an added quote from a stored one)."""
    return runs_as_formula(text.lstrip(NEUTRALISING_PREFIX))


def neutralise(text: str) -> str:
    """`text`, prefixed with `'` when a spreadsheet would run it as a formula."""
    return NEUTRALISING_PREFIX + text if needs_neutralising(text) else text


def restore(cell: str) -> str:
    """The text `neutralise` was given, from what it returned."""
    rest = cell[len(NEUTRALISING_PREFIX) :]
    if cell.startswith(NEUTRALISING_PREFIX) and needs_neutralising(rest):
        return rest
    return cell


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
