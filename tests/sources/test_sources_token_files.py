"""Token files (JSON Lines and CSV) and tokens_from_records."""

import csv
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from sources_helpers import assert_no_token_in, fingerprint, make_token

from connections_pipeline.sources.files import read_session_file, read_token_file
from connections_pipeline.sources.records import (
    SourceBatch,
    SourceToken,
    TokenSourceError,
    tokens_from_records,
)
from connections_pipeline.transform.token_frame import TOKEN_FRAME_SCHEMA

UTC = dt.UTC
SETTING = "CONNECTIONS_TOKENS_FILE"


def _jsonl(path: Path, *records: object) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def _csv(path: Path, header: list[str], *rows: list[object], encoding: str = "utf-8") -> str:
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def test_jsonl_tokens_with_hints(tmp_path: Path) -> None:
    a, b, c = make_token("a"), make_token("b"), make_token("c")
    path = _jsonl(
        tmp_path / "tokens.jsonl",
        {"access_token": a, "connection_id": "conn-a", "issued_at": "2026-03-01T10:00:00Z"},
        {"access_token": b, "disconnected": True, "created_at": "2026-02-01T12:00:00+02:00"},
        {"access_token": c, "revoked": "yes", "connection_id": "  "},
    )
    batch = read_token_file(path)

    assert [t.fingerprint for t in batch.tokens] == [fingerprint(a), fingerprint(b), fingerprint(c)]
    by_fp = {token.fingerprint: token for token in batch.tokens}
    first, second, third = by_fp[fingerprint(a)], by_fp[fingerprint(b)], by_fp[fingerprint(c)]
    assert first.access_token == a
    assert (first.connection_id, first.disconnected) == ("conn-a", False)
    assert first.issued_at == dt.datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert second.disconnected is True
    assert second.issued_at == dt.datetime(2026, 2, 1, 10, tzinfo=UTC)
    assert third.disconnected is True
    assert third.connection_id is None
    assert batch.skipped_rows == []
    assert batch.sessions == []


def test_csv_tokens_with_hints(tmp_path: Path) -> None:
    a, b = make_token("a"), make_token("b")
    path = _csv(
        tmp_path / "tokens.CSV",
        ["access_token", "connection_id", "disconnected", "issued_at"],
        [a, "conn-a", "false", "2026-03-01T10:00:00"],
        [b, "", "TRUE", ""],
    )
    batch = read_token_file(path)
    first, second = batch.tokens
    assert (first.fingerprint, first.connection_id, first.disconnected) == (
        fingerprint(a),
        "conn-a",
        False,
    )
    assert first.issued_at == dt.datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert (second.connection_id, second.disconnected, second.issued_at) == (None, True, None)


def test_csv_with_only_the_token_column(tmp_path: Path) -> None:
    a = make_token("a")
    batch = read_token_file(_csv(tmp_path / "t.csv", ["access_token"], [a]))
    token = batch.tokens[0]
    assert (token.connection_id, token.disconnected, token.issued_at) == (None, False, None)


def test_csv_saved_by_a_spreadsheet_with_a_byte_order_mark(tmp_path: Path) -> None:
    a = make_token("a")
    path = _csv(
        tmp_path / "t.csv", ["access_token", "connection_id"], [a, "c"], encoding="utf-8-sig"
    )
    assert [t.fingerprint for t in read_token_file(path).tokens] == [fingerprint(a)]


def test_jsonl_with_a_byte_order_mark(tmp_path: Path) -> None:
    a = make_token("a")
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"access_token": a}) + "\n", encoding="utf-8-sig")
    assert [t.fingerprint for t in read_token_file(str(path)).tokens] == [fingerprint(a)]


def test_empty_token_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    a = make_token("a")
    path = _jsonl(
        tmp_path / "t.jsonl",
        {"access_token": ""},
        {"access_token": a},
        {"access_token": "   "},
        {"access_token": None},
    )
    batch = read_token_file(path)
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(a)]
    assert batch.skipped_rows == [
        f"{SETTING} {path} line 1: empty access_token",
        f"{SETTING} {path} line 3: empty access_token",
        f"{SETTING} {path} line 4: empty access_token",
    ]
    assert set(batch.rejected["record_kind"]) == {"token_source_row"}


def test_empty_csv_cells_and_short_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    a = make_token("a")
    path = tmp_path / "t.csv"
    path.write_text(f"connection_id,access_token\nconn-x,\nconn-y\nconn-a,{a}\n", encoding="utf-8")
    batch = read_token_file(str(path))
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(a)]
    assert batch.skipped_rows == [
        f"{SETTING} {path} line 2: empty access_token",
        f"{SETTING} {path} line 3: empty access_token",
    ]


def test_blank_jsonl_lines_are_ignored(tmp_path: Path) -> None:
    a = make_token("a")
    path = tmp_path / "t.jsonl"
    path.write_text(f"\n{json.dumps({'access_token': a})}\n   \n\n", encoding="utf-8")
    batch = read_token_file(str(path))
    assert len(batch.tokens) == 1
    assert batch.skipped_rows == []


def test_what_auth_token_answered_comes_along_when_the_source_kept_it(tmp_path: Path) -> None:
    a, b = make_token("a"), make_token("b")
    path = _csv(
        tmp_path / "t.csv",
        ["access_token", "connection_id", "customer_id", "customer_name", "provider_id",
         "company_id", "company_name"],
        [a, "conn-a", " cust-1 ", "Acme, Inc.", "gusto", "co-1", "ACME INC"],
        [b, "conn-b", "", "", "", "", ""],
    )  # fmt: skip
    batch = read_token_file(path)
    frame = batch.token_frame.sort("source_connection_id")
    assert frame.select(
        "source_customer_id", "source_customer_name", "source_provider_id",
        "source_company_id", "source_company_name",
    ).rows() == [
        ("cust-1", "Acme, Inc.", "gusto", "co-1", "ACME INC"),
        (None, None, None, None, None),
    ]  # fmt: skip


def test_a_customer_name_with_a_nul_costs_its_row(tmp_path: Path) -> None:
    a, b = make_token("a"), make_token("b")
    path = _jsonl(
        tmp_path / "t.jsonl",
        {"access_token": a, "customer_name": "bad\u0000name"},
        {"access_token": b},
    )
    batch = read_token_file(path)
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(b)]
    assert batch.skipped_rows == [
        f"{SETTING} {path} line 1: customer_name holds a NUL character or more than 255 characters"
    ]


def test_identical_duplicate_tokens_collapse_with_a_count(tmp_path: Path) -> None:
    a, b = make_token("a"), make_token("b")
    path = _jsonl(
        tmp_path / "t.jsonl",
        {"access_token": a, "connection_id": "conn-a"},
        {"access_token": b},
        {"access_token": f"  {a} ", "connection_id": "conn-a"},
        {"access_token": a, "connection_id": " conn-a "},
    )
    batch = read_token_file(path)
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(a), fingerprint(b)]
    assert batch.tokens[0].connection_id == "conn-a"
    assert batch.tokens[0].access_token == a
    assert batch.duplicate_rows == 2
    assert batch.skipped_rows == []


def test_conflicting_duplicates_of_one_token_are_all_rejected(tmp_path: Path) -> None:
    # Regression: the last row won, so a token listed under 13 connection ids made up 12
    # connections that do not exist once it answered 401.
    a, b = make_token("a"), make_token("b")
    path = _jsonl(
        tmp_path / "t.jsonl",
        {"access_token": a, "connection_id": "conn-old"},
        {"access_token": b, "connection_id": "conn-b"},
        {"access_token": a, "connection_id": "conn-new"},
    )
    batch = read_token_file(path)
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(b)]
    assert batch.rejected["record_key"].to_list() == [fingerprint(a), fingerprint(a)]
    reasons = batch.skipped_rows
    assert reasons[0].startswith(f"{SETTING} {path} line 1: the same access_token is listed 2")
    assert f"line 1, {SETTING} {path} line 3" in reasons[0]
    assert reasons[1].startswith(f"{SETTING} {path} line 3: ")
    payloads = [json.loads(text) for text in batch.rejected["payload"]]
    assert [p["connection_id"] for p in payloads] == ["conn-old", "conn-new"]
    assert all(p["token_fingerprint"] == fingerprint(a) for p in payloads)
    assert_no_token_in(repr(batch.rejected.rows()), a, b)


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(TokenSourceError, match=rf"^{SETTING}: no such file"):
        read_token_file(str(tmp_path / "absent.jsonl"))
    with pytest.raises(TokenSourceError, match=r"^CONNECTIONS_SESSIONS_FILE: no such file"):
        read_session_file(str(tmp_path / "absent.jsonl"))


def test_a_directory_is_not_a_token_file(tmp_path: Path) -> None:
    with pytest.raises(TokenSourceError, match=SETTING):
        read_token_file(str(tmp_path))


def test_csv_without_an_access_token_column(tmp_path: Path) -> None:
    a = make_token("a")
    path = _csv(tmp_path / "t.csv", ["token", "connection_id"], [a, "conn-a"])
    with pytest.raises(TokenSourceError, match=rf"^{SETTING}: CSV has no access_token column") as e:
        read_token_file(path)
    assert_no_token_in(str(e.value), a)


def test_empty_csv_has_no_access_token_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(TokenSourceError, match="no access_token column"):
        read_token_file(str(path))


def test_jsonl_row_without_an_access_token_field_costs_that_row(tmp_path: Path) -> None:
    a, b = make_token("a"), make_token("b")
    path = _jsonl(tmp_path / "t.jsonl", {"access_token": a}, {"token": b, "connection_id": "c"})
    batch = read_token_file(path)
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(a)]
    assert batch.skipped_rows == [f"{SETTING} {path} line 2: no access_token field"]
    # A field named like a secret is left out of the stored payload.
    assert json.loads(batch.rejected["payload"][0]) == {"connection_id": "c"}
    assert_no_token_in(repr(batch.rejected.rows()), a, b)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"access_token": "{token}"', "line 2: not JSON"),
        ("{token}", "line 2: not JSON"),
        ('"{token}"', "line 2: not a JSON object"),
        ('["{token}"]', "line 2: not a JSON object"),
    ],
)
def test_invalid_jsonl_line_costs_that_line_and_names_it_not_the_token(
    tmp_path: Path, line: str, message: str
) -> None:
    a, b, c = make_token("a"), make_token("b"), make_token("c")
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps({"access_token": a})
        + "\n"
        + line.replace("{token}", b)
        + "\n"
        + json.dumps({"access_token": c})
        + "\n",
        encoding="utf-8",
    )
    batch = read_token_file(str(path))
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(a), fingerprint(c)]
    [reason] = batch.skipped_rows
    assert reason.startswith(f"{SETTING} {path} {message}")
    assert batch.rejected["payload"].to_list() == [None]
    assert_no_token_in(repr(batch.rejected.rows()), a, b, c)


@pytest.mark.parametrize(
    "bad",
    ["tok\u0000nul", "tok with space", "tok\r\ninjected: yes", "tök-non-ascii", "tok\t"],
)
def test_a_token_no_http_header_can_carry_costs_its_row(tmp_path: Path, bad: str) -> None:
    # Regression: one token with a NUL failed the whole run, naming neither file nor line.
    a = make_token("a")
    bad_token = bad + make_token("x")
    path = _jsonl(tmp_path / "t.jsonl", {"access_token": bad_token}, {"access_token": a})
    batch = read_token_file(path)
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(a)]
    [reason] = batch.skipped_rows
    assert reason.startswith(f"{SETTING} {path} line 1: access_token holds characters")
    assert batch.rejected["record_key"].to_list() == [fingerprint(bad_token.strip())]
    assert_no_token_in(repr(batch.rejected.rows()), bad_token.strip(), a)


def test_a_line_that_is_not_utf8_costs_that_line(tmp_path: Path) -> None:
    a = make_token("a")
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b'{"access_token": "tok-\xff\xfe"}\n' + json.dumps({"access_token": a}).encode()
    )
    batch = read_token_file(str(path))
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(a)]
    assert batch.skipped_rows == [f"{SETTING} {path} line 1: the line is not valid UTF-8"]


def test_an_unparseable_issue_time_costs_its_row_without_echoing_it(tmp_path: Path) -> None:
    a, b = make_token("a"), make_token("b")
    path = _csv(
        tmp_path / "t.csv",
        ["access_token", "connection_id", "issued_at"],
        [a, "conn-a", "31/02/2026"],
        [b, "conn-b", "2026-03-01T10:00:00Z"],
    )
    batch = read_token_file(path)
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(b)]
    assert batch.skipped_rows == [f"{SETTING} {path} line 2: issued_at is not an ISO 8601 time"]


def test_a_custom_setting_name_is_used_in_errors(tmp_path: Path) -> None:
    with pytest.raises(TokenSourceError, match=r"^MY_SETTING: no such file"):
        read_token_file(str(tmp_path / "x.jsonl"), setting="MY_SETTING")


def test_repr_of_tokens_and_batches_hides_the_tokens(tmp_path: Path) -> None:
    a, b = make_token("a"), make_token("b")
    batch = read_token_file(
        _jsonl(tmp_path / "t.jsonl", {"access_token": a, "connection_id": "c"}, {"access_token": b})
    )
    for text in (repr(batch), str(batch), repr(batch.tokens), repr(batch.tokens[0])):
        assert_no_token_in(text, a, b)
    assert fingerprint(a) in repr(batch.tokens[0])
    frame = batch.token_frame
    assert_no_token_in(repr(frame.to_dicts()), a, b)


def test_token_frame_has_the_snapshot_schema() -> None:
    a, b = make_token("a"), make_token("b")
    batch = tokens_from_records(
        [
            {"access_token": a, "connection_id": "conn-a", "issued_at": "2026-03-01T10:00:00Z"},
            {"access_token": b, "disconnected": "1"},
        ],
        "TEST",
    )
    frame = batch.token_frame
    assert frame.schema == TOKEN_FRAME_SCHEMA
    assert frame.select(list(TOKEN_FRAME_SCHEMA)[:4]).rows() == [
        (fingerprint(a), "conn-a", False, dt.datetime(2026, 3, 1, 10, tzinfo=UTC)),
        (fingerprint(b), None, True, None),
    ]
    assert SourceBatch([], []).token_frame.schema == TOKEN_FRAME_SCHEMA


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("Y", True),
        (" yes ", True),
        ("1", True),
        (1, True),
        ("0", False),
        ("no", False),
        ("", False),
        (None, False),
        (0, False),
    ],
)
def test_disconnected_flag_parsing(value: object, expected: bool) -> None:
    batch = tokens_from_records([{"access_token": make_token("a"), "disconnected": value}], "T")
    assert batch.tokens[0].disconnected is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01T10:00:00Z", dt.datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T10:00:00", dt.datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T12:00:00+02:00", dt.datetime(2026, 3, 1, 10, tzinfo=UTC)),
        (dt.datetime(2026, 3, 1, 10), dt.datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_issued_at_parsing(value: object, expected: dt.datetime | None) -> None:
    batch = tokens_from_records([{"access_token": make_token("a"), "issued_at": value}], "T")
    assert batch.tokens[0].issued_at == expected


def test_a_uuid_token_value_is_a_token_not_an_empty_cell() -> None:
    """Finch access tokens are UUID-shaped; a database may hand them over as UUID objects."""
    value = uuid.uuid4()
    batch = tokens_from_records([{"access_token": value}], "T")
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(str(value))]
    assert batch.skipped_rows == []


def test_a_non_text_token_value_is_reported_as_such() -> None:
    batch = tokens_from_records([{"access_token": 12345}, {"access_token": b"bytes"}], "T")
    assert batch.tokens == []
    assert batch.skipped_rows == [
        "T row 1: access_token is not text (int)",
        "T row 2: access_token is not text (bytes)",
    ]
    assert "12345" not in repr(batch)


def test_source_token_repr_hides_a_token_built_by_hand() -> None:
    a = make_token("a")
    token = SourceToken(access_token=a, fingerprint=fingerprint(a), connection_id="c")
    assert_no_token_in(repr(token), a)
    assert "access_token" not in repr(token)
