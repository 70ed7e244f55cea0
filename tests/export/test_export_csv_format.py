"""RFC 4180 quoting, formula neutralisation and option checks, on small hand-made inputs."""

import csv
import io
from datetime import UTC, datetime

import polars as pl
import pytest

from connections_pipeline.export import (
    ColumnFilter,
    ExportOptions,
    ExportSettingError,
    encode_csv,
    neutralise,
    select_rows,
)
from connections_pipeline.resources import ExportDestinationResource
from connections_pipeline.warehouse import CONNECTIONS_COLUMNS


def test_quoting_follows_rfc_4180() -> None:
    data = encode_csv(
        ["Name", "Note"],
        [
            ["Smith, Jones", 'The "Best"'],
            ["Line one\nline two", ""],
            ["Carriage\rreturn", "plain"],
        ],
    )
    assert data == (
        b"Name,Note\r\n"
        b'"Smith, Jones","The ""Best"""\r\n'
        b'"Line one\nline two",\r\n'
        b'"Carriage\rreturn",plain\r\n'
    )


def test_unicode_is_utf8_without_byte_order_mark() -> None:
    data = encode_csv(["Company Name"], [["日本テクノロジー株式会社"], ["Ærø Fiskeri ApS"], ["🚀"]])
    assert data.startswith(b"Company Name\r\n")
    assert list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""))) == [
        ["Company Name"],
        ["日本テクノロジー株式会社"],
        ["Ærø Fiskeri ApS"],
        ["🚀"],
    ]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('=HYPERLINK("http://x.test/","Go")', '\'=HYPERLINK("http://x.test/","Go")'),
        ("+1 Staffing Solutions", "'+1 Staffing Solutions"),
        ("-2 Degrees Cooling Inc.", "'-2 Degrees Cooling Inc."),
        ("@SUM(A1:A10) Accounting", "'@SUM(A1:A10) Accounting"),
        ("\tTabbed Services Co.", "'\tTabbed Services Co."),
        ("\rCarriage Return Logistics", "'\rCarriage Return Logistics"),
        ("Acme = Fine", "Acme = Fine"),
        ("'already quoted", "'already quoted"),
        ("", ""),
    ],
)
def test_formula_starts_get_a_single_quote_prefix(text: str, shown: str) -> None:
    assert neutralise(text) == shown


def _frame(rows: list[dict]) -> pl.DataFrame:
    schema = {column.name: column.dtype for column in CONNECTIONS_COLUMNS}
    filled = [{name: row.get(name) for name in schema} for row in rows]
    return pl.DataFrame(filled, schema=schema)


ROWS = [
    {"connection_key": "k3", "state": "live", "company_name": "beta", "connection_id": "c3",
     "entity_count": 2, "needs_action": False,
     "last_synced_at": datetime(2026, 11, 29, 6, tzinfo=UTC)},
    {"connection_key": "k1", "state": "live", "company_name": "Alpha", "connection_id": "c1",
     "entity_count": 1, "needs_action": True},
    {"connection_key": "k2", "state": "live", "company_name": None, "connection_id": "c2",
     "entity_count": 1, "needs_action": True},
    {"connection_key": "k4", "state": "staged", "company_name": "Aardvark", "connection_id": None,
     "entity_count": None, "needs_action": False},
]  # fmt: skip


def test_company_sort_ignores_case_and_puts_blank_names_last() -> None:
    frame = select_rows(_frame(ROWS), "live", ExportOptions())
    assert frame["connection_id"].to_list() == ["c1", "c3", "c2"]
    descending = select_rows(_frame(ROWS), "live", ExportOptions(descending=True))
    assert descending["connection_id"].to_list() == ["c3", "c1", "c2"]


def test_filter_values_are_converted_to_the_column_type() -> None:
    options = ExportOptions(
        filters=(
            ColumnFilter("entity_count", equals="1"),
            ColumnFilter("needs_action", one_of=["TRUE"]),
        )
    )
    assert select_rows(_frame(ROWS), "live", options)["connection_id"].to_list() == ["c1", "c2"]
    by_time = ExportOptions(filters=(ColumnFilter("last_synced_at", equals="2026-11-29T06:00Z"),))
    assert select_rows(_frame(ROWS), "live", by_time)["connection_id"].to_list() == ["c3"]
    only_flag = ExportOptions(needs_action=False)
    assert select_rows(_frame(ROWS), "live", only_flag)["connection_id"].to_list() == ["c3"]


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        (ExportOptions(sort_by="Company Name"), "sort_by"),
        (ExportOptions(filters=(ColumnFilter("nope", equals="x"),)), "filters[0].column"),
        (ExportOptions(filters=(ColumnFilter("state", one_of=[]),)), "filters[0].one_of"),
        (ExportOptions(filters=(ColumnFilter("state", one_of="live"),)), "filters[0].one_of"),
        (
            ExportOptions(filters=(ColumnFilter("state", equals="live", one_of=["live"]),)),
            "filters[0] must set exactly one",
        ),
        (ExportOptions(extra_columns=("run_id", "run_id")), "extra_columns[1]"),
        (ExportOptions(timestamp_format=""), "timestamp_format"),
    ],
)
def test_unusable_options_name_the_setting(options: ExportOptions, setting: str) -> None:
    with pytest.raises(ExportSettingError, match=setting.replace("[", r"\[").replace("]", r"\]")):
        select_rows(_frame(ROWS), "live", options)


def test_destination_resource_never_shows_storage_options_or_url_password() -> None:
    resource = ExportDestinationResource(
        url="ftp://drops:hunter22@files.internal/exports",
        storage_options='{"password": "hunter22"}',
    )
    assert "hunter22" not in repr(resource)
    assert "files.internal/exports" in repr(resource)
