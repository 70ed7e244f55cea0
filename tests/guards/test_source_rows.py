"""Unusable token and session rows cost one row each: quarantined with file, line and
reason (never the token), counted in finch_sync_runs, and the run goes on."""

import json
from pathlib import Path

import polars as pl
import pytest
from guard_helpers import run_row
from sync.sync_helpers import all_text, make_warehouse, served_sandbox

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.finch import token_fingerprint
from connections_pipeline.resources import TokenSourceResource

pytestmark = pytest.mark.slow
NUL_TOKEN = "tok-with-\u0000-nul-8c1f9e0d2b7a"


def _line(record: object) -> str:
    return (record if isinstance(record, str) else json.dumps(record)) + "\n"


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_bad_rows_are_quarantined_with_their_place_and_the_run_goes_on(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    with served_sandbox(seed=57, connections=50) as (sandbox, finch, source):
        tokens = sandbox.tokens()
        sessions = sandbox.sessions()
        sync_with_resources("run-1", finch, source, warehouse)
        live_before = warehouse.read_current().filter(pl.col("state") == "live").height

        good = [{k: t[k] for k in ("access_token", "connection_id", "issued_at")} for t in tokens]
        conflicted, repeated = good[0], good[1]
        token_lines = [_line(row) for row in good[2:]] + [
            _line({"access_token": NUL_TOKEN, "connection_id": "conn-x"}),  # line n+1
            _line({"connection_id": "conn-no-token"}),  # n+2
            _line({**good[2], "access_token": "tok-bad-date-1", "issued_at": "31/12/2025"}),
            _line({**conflicted, "connection_id": "conn-one"}),  # n+4
            _line({**conflicted, "connection_id": "conn-two"}),  # n+5
            _line(repeated),
            _line(repeated),
            _line("{not json"),  # n+8
        ]
        token_file = tmp_path / "tokens.jsonl"
        token_file.write_text("".join(token_lines), encoding="utf-8")
        first_bad = len(good) - 2 + 1
        session_file = tmp_path / "sessions.jsonl"
        session_file.write_text(
            "".join(
                [_line(s) for s in sessions]
                + [
                    _line({**sessions[0], "session_id": "sess-bad", "created_at": "yesterday"}),
                    _line({**sessions[0], "session_id": None}),
                ]
            ),
            encoding="utf-8",
        )
        file_source = TokenSourceResource(
            tokens_file=str(token_file), sessions_file=str(session_file)
        )
        result = sync_with_resources("run-2", finch, file_source, warehouse)

    assert result.status == "success"
    row = run_row(warehouse, "run-2")
    assert (row["source_rows_rejected"], row["source_duplicate_rows"]) == (8, 1)
    quarantine = warehouse.read_table("finch_quarantine").filter(pl.col("run_id") == "run-2")
    source_rows = quarantine.filter(
        pl.col("record_kind").is_in(["token_source_row", "session_source_row"])
    )
    reasons = sorted(source_rows["reason"].to_list())
    where = f"CONNECTIONS_TOKENS_FILE {token_file} line"
    expected_tokens = {
        f"{where} {first_bad}: access_token holds characters an HTTP header cannot carry",
        f"{where} {first_bad + 1}: no access_token field",
        f"{where} {first_bad + 2}: issued_at is not an ISO 8601 time",
        f"{where} {first_bad + 3}: the same access_token is listed 2 times",
        f"{where} {first_bad + 4}: the same access_token is listed 2 times",
        f"{where} {first_bad + 7}: not JSON",
    }
    for prefix in expected_tokens:
        assert any(reason.startswith(prefix) for reason in reasons), prefix
    session_where = f"CONNECTIONS_SESSIONS_FILE {session_file} line"
    assert f"{session_where} {len(sessions) + 1}: created_at is not an ISO 8601 time" in reasons
    assert f"{session_where} {len(sessions) + 2}: no session_id" in reasons
    assert source_rows.height == 8
    keys = set(source_rows["record_key"])
    assert {
        token_fingerprint(NUL_TOKEN.strip()),
        token_fingerprint(conflicted["access_token"]),
    } <= keys

    # The rest was synced as usual: one bad row costs that row, not the run.
    current = warehouse.read_current()
    assert current.filter(pl.col("state") == "live").height == live_before
    assert "sess-bad" not in set(current["connection_key"])
    stored = all_text(warehouse)
    for secret in (
        NUL_TOKEN,
        conflicted["access_token"],
        repeated["access_token"],
        "tok-bad-date-1",
    ):
        assert secret not in stored
    warehouse.dispose()
