"""The Connect session ledger and the raw-response store."""

import dataclasses
import datetime as dt

import polars as pl
import pytest
import sqlalchemy as sa
from frames import at, connection_row, run

from connections_pipeline.warehouse import (
    CONNECT_SESSIONS,
    RAW_RESPONSES,
    Warehouse,
    empty_frame,
    polars_schema,
)


def session(session_id: str, **overrides: object) -> dict:
    row = {
        "session_id": session_id,
        "connect_url": f"https://connect.tryfinch.com/authorize?session={session_id}",
        "customer_id": f"cus-{session_id}",
        "customer_name": f"Customer {session_id}",
        "customer_email": None,
        "products": "company,directory",
        "redirect_uri": None,
        "provider_id": None,
        "auth_method": None,
        "manual": False,
        "sandbox": "finch",
        "minutes_to_expire": 129600,
        "kind": "connect",
        "reauth_connection_id": None,
        "created_at": at(0),
        "expires_at": at(24 * 90),
        "created_by": "ops@example.com",
        "status": "pending",
        "connection_id": None,
        "completed_at": None,
        "time_to_connect_seconds": None,
        "status_updated_at": at(0),
    }
    row.update(overrides)
    return row


def sessions(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=polars_schema(CONNECT_SESSIONS), orient="row")


@pytest.mark.snowflake
def test_import_adds_new_sessions_and_never_rewrites_inputs(warehouse: Warehouse) -> None:
    assert warehouse.import_sessions(sessions(session("s1"), session("s2"))) == 2
    added = warehouse.import_sessions(
        sessions(session("s1", customer_name="Changed", status="expired"), session("s3"))
    )
    assert added == 1
    ledger = warehouse.read_sessions()
    assert ledger.schema == empty_frame(CONNECT_SESSIONS).schema
    assert ledger["session_id"].to_list() == ["s1", "s2", "s3"]
    first = ledger.row(0, named=True)
    assert first["customer_name"] == "Customer s1"
    assert first["status"] == "pending"
    assert (
        ledger.filter(pl.col("session_id") == "s2").to_dicts() == sessions(session("s2")).to_dicts()
    )


def test_import_accepts_a_frame_without_progress_columns(warehouse: Warehouse) -> None:
    frame = sessions(session("s1")).drop("connection_id", "completed_at", "status_updated_at")
    assert warehouse.import_sessions(frame) == 1
    assert warehouse.read_sessions()["completed_at"].to_list() == [None]
    with pytest.raises(ValueError, match="duplicate session_id"):
        warehouse.import_sessions(sessions(session("s9"), session("s9")))


@pytest.mark.snowflake
def test_progress_updates_only_the_progress_columns(warehouse: Warehouse) -> None:
    warehouse.import_sessions(sessions(session("s1"), session("s2"), session("s3")))
    before = warehouse.read_sessions()
    progress = pl.DataFrame(
        {
            "session_id": ["s1", "s2", "unknown"],
            "status": ["completed", "expired", "completed"],
            "connection_id": ["conn-1", None, "conn-x"],
            "completed_at": [at(2), None, at(2)],
            "time_to_connect_seconds": [7200.5, None, 1.0],
            "status_updated_at": [at(2), at(3), at(2)],
        },
        schema_overrides={"completed_at": pl.Datetime("us", "UTC")},
    )
    warehouse.load_run(dataclasses.replace(run("r1", at(2), []), session_progress=progress))
    after = warehouse.read_sessions()
    assert after["session_id"].to_list() == ["s1", "s2", "s3"]
    progress_columns = [
        "status", "connection_id", "completed_at", "time_to_connect_seconds", "status_updated_at"
    ]  # fmt: skip
    inputs = [name for name in after.columns if name not in progress_columns]
    assert after.select(inputs).equals(before.select(inputs))
    assert after.select("session_id", *progress_columns).rows()[:2] == [
        ("s1", "completed", "conn-1", at(2), 7200.5, at(2)),
        ("s2", "expired", None, None, None, at(3)),
    ]
    assert after.row(2) == before.row(2)
    with pytest.raises(ValueError, match="unexpected columns"):
        extra = progress.with_columns(pl.lit("x").alias("customer_id"))
        warehouse.load_run(dataclasses.replace(run("r2", at(3), []), session_progress=extra))


def raw_responses(count: int, body: str = '{"ok": true}') -> pl.DataFrame:
    return pl.DataFrame(
        {
            "endpoint": ["/introspect"] * count,
            "token_fingerprint": [f"fp{index}" for index in range(count)],
            "connection_id": [None if index % 2 else f"c{index}" for index in range(count)],
            "fetched_at": [at(0) + dt.timedelta(seconds=index) for index in range(count)],
            "outcome": ["ok"] * count,
            "status_code": [200] * count,
            "error_name": [None] * count,
            "finch_code": [None] * count,
            "request_id": [f"req-{index}" for index in range(count)],
            "body": [body] * count,
            "failure_reason": [None] * count,
        },
        schema_overrides={
            "status_code": pl.Int32,
            "error_name": pl.Utf8,
            "finch_code": pl.Utf8,
            "connection_id": pl.Utf8,
            "failure_reason": pl.Utf8,
        },
    )


def test_raw_responses_round_trip_and_are_replaced_per_run(warehouse: Warehouse) -> None:
    # What a held or failed run keeps for diagnosis: its run row and raw responses.
    body = '{"entities": [{"name": "Acme, \\"Inc\\"\\n", "id": "é"}], "x": null}'
    held = {"status": "held", "status_reason": "for the test"}
    warehouse.record_unloaded_run("r1", at(0), held, raw_responses(3, body))
    warehouse.record_unloaded_run("r2", at(1), held, raw_responses(2))
    stored = warehouse.read_raw_responses("r1")
    assert stored.schema == empty_frame(RAW_RESPONSES).schema
    assert stored.drop("run_id").equals(raw_responses(3, body))
    assert stored["run_id"].unique().to_list() == ["r1"]
    # Recording r1 again replaces r1's rows only.
    warehouse.record_unloaded_run("r1", at(0), held, raw_responses(1))
    assert warehouse.read_raw_responses("r1").height == 1
    assert warehouse.read_raw_responses("r2").height == 2
    assert warehouse.read_raw_responses("nope").height == 0
    runs = warehouse.read_table("finch_sync_runs")
    assert runs.select("run_id", "status").rows() == [("r1", "held"), ("r2", "held")]


def _run_with_ledger_and_raw(**changes: object) -> object:
    progress = pl.DataFrame(
        {
            "session_id": ["s1"],
            "status": ["completed"],
            "connection_id": ["conn-1"],
            "completed_at": [at(2)],
            "time_to_connect_seconds": [60.0],
            "status_updated_at": [at(2)],
        }
    )
    return dataclasses.replace(
        run("r1", at(2), [connection_row("a")], **changes),
        raw_responses=raw_responses(3),
        new_sessions=sessions(session("s1", customer_name="Changed"), session("s2")),
        session_progress=progress,
    )


@pytest.mark.snowflake
def test_a_run_writes_its_sessions_and_raw_responses_in_its_load(warehouse: Warehouse) -> None:
    warehouse.import_sessions(sessions(session("s1")))
    warehouse.load_run(_run_with_ledger_and_raw())
    ledger = warehouse.read_sessions()
    assert ledger["session_id"].to_list() == ["s1", "s2"]
    # s1 was in the ledger already: its inputs stay, its progress is the run's.
    assert ledger.row(0, named=True)["customer_name"] == "Customer s1"
    assert ledger.row(0, named=True)["status"] == "completed"
    assert warehouse.read_raw_responses("r1").height == 3


def test_a_failed_load_leaves_no_session_or_raw_response_behind(warehouse: Warehouse) -> None:
    # Regression: a sync used to import sessions and store raw responses in transactions of
    # their own before the load, so a run that died in the load left them behind.
    warehouse.import_sessions(sessions(session("s1")))
    before = warehouse.read_sessions()
    with pytest.raises(sa.exc.DBAPIError):
        warehouse.load_run(_run_with_ledger_and_raw(quarantine_reasons=("ok", None)))
    assert warehouse.read_sessions().equals(before)
    assert warehouse.read_raw_responses("r1").height == 0
