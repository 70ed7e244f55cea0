"""Builders of small, valid warehouse frames for the warehouse tests."""

import datetime as dt
import json
from typing import NamedTuple

import polars as pl
import sqlalchemy as sa

from connections_pipeline.warehouse import (
    CONNECTION_ENTITIES,
    CONNECTIONS,
    QUARANTINE,
    TOKENS,
    RunLoad,
    Warehouse,
    polars_schema,
)


class Target(NamedTuple):
    """Where a test's warehouse lives: a URL and a schema of the test's own."""

    url: str
    schema: str
    connect_args: str | None = None

    def engine(self) -> sa.Engine:
        """A plain SQLAlchemy engine on the target's database, for setting up old schemas."""
        arguments = json.loads(self.connect_args) if self.connect_args else {}
        return sa.create_engine(self.url, connect_args=arguments)

    def open(self, schema: str | None = None, **options: object) -> "Warehouse":
        return Warehouse(
            self.url, schema=schema or self.schema, connect_args=self.connect_args, **options
        )


T0 = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


LABELS = {"connected": "Connected", "reauth": "Re-auth", "disconnected": "Disconnected"}


def connection_row(key: str, **overrides: object) -> dict:
    """One valid finch_connections row; live unless overridden."""
    row = {
        "connection_key": key,
        "state": "live",
        "connection_id": key,
        "session_id": None,
        "company_name": f"Company {key}",
        "company_id": f"cmp-{key}",
        "customer_name": f"Customer {key}",
        "customer_id": f"cus-{key}",
        "customer_email": f"{key}@example.com",
        "entity_count": 1,
        "connection_status": "connected",
        "needs_action": False,
        "last_synced_at": at(-1),
        "connection_type": "Automated",
        "expected_refresh_hours": 24,
        "sync_overdue": False,
        "connected_at": at(-100),
        "provider_id": "gusto",
        "provider_name": "Gusto",
        "products": "company,directory",
        "session_expires_at": None,
        "token_count": 1,
        "working_token_fingerprint": f"fp-{key}",
        "first_seen_at": at(-50),
        "last_seen_at": at(0),
        "disconnected_at": None,
        "left_source_at": None,
        "company_fetched_at": at(-2),
        "last_error": None,
        "stale": False,
        "company_name_pending": False,
    }
    row.update(overrides)
    row.setdefault("connection_status_label", LABELS.get(row["connection_status"]))
    return row


def frame(table: str, rows: list[dict]) -> pl.DataFrame:
    schema = polars_schema(table)
    names = [name for name in schema.names() if not rows or name in rows[0]]
    return pl.DataFrame(rows, schema={name: schema[name] for name in names}, orient="row")


def connections(*rows: dict) -> pl.DataFrame:
    return frame(CONNECTIONS, list(rows)) if rows else frame(CONNECTIONS, [])


def entities(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return (
        frame(
            CONNECTION_ENTITIES,
            [
                {
                    "connection_id": connection_id,
                    "entity_id": entity_id,
                    "entity_name": name,
                    "source_id": f"src-{entity_id}",
                    "entity_status": "active",
                }
                for connection_id, entity_id, name in rows
            ],
        )
        if rows
        else frame(CONNECTION_ENTITIES, [])
    )


def tokens(*rows: dict) -> pl.DataFrame:
    return frame(TOKENS, list(rows))


def token_row(fingerprint: str, connection_id: str, seen: dt.datetime, **overrides) -> dict:
    row = {
        "token_fingerprint": fingerprint,
        "connection_id": connection_id,
        "first_seen_at": seen,
        "last_seen_at": seen,
        "last_outcome": "ok",
        "last_ok_at": seen,
        "last_error": None,
    }
    row.update(overrides)
    return row


def quarantine(run_id: str, *reasons: str | None) -> pl.DataFrame:
    return frame(
        QUARANTINE,
        [
            {
                "run_id": run_id,
                "record_kind": "introspect",
                "record_key": f"fp-{index}",
                "reason": reason,
                "payload": '{"a": [1, "x,\\"y\\"\\n"]}',
                "quarantined_at": at(index),
            }
            for index, reason in enumerate(reasons)
        ],
    )


def run(
    run_id: str,
    as_of: dt.datetime,
    rows: list[dict],
    entity_rows: tuple = (),
    token_rows: tuple = (),
    quarantine_reasons: tuple = (),
) -> RunLoad:
    """A RunLoad with sync-run counts derived from its rows."""
    snapshot = connections(*rows)
    states = snapshot["state"].value_counts() if snapshot.height else None
    count = dict(states.iter_rows()) if states is not None else {}
    return RunLoad(
        run_id=run_id,
        as_of=as_of,
        connections=snapshot,
        entities=entities(*entity_rows),
        tokens=tokens(*token_rows) if token_rows else frame(TOKENS, []),
        quarantine=quarantine(run_id, *quarantine_reasons),
        sync_run={
            "started_at": as_of - dt.timedelta(minutes=5),
            "finished_at": as_of,
            "duration_seconds": 300.25,
            "tokens": len(token_rows),
            "live": count.get("live", 0),
            "staged": count.get("staged", 0),
            "disconnected": count.get("disconnected", 0),
            "quarantined": len(quarantine_reasons),
            "requests": 10,
            "retries": 1,
            "rate_limited": 0,
            "invalid_tokens": 0,
            "needs_reauth": 0,
            "failed_tokens": 0,
            "status": "success",
        },
    )


def all_tables(warehouse) -> dict[str, pl.DataFrame]:
    """Full contents of every data table, for before/after comparisons."""
    from connections_pipeline.warehouse import TABLE_COLUMNS

    return {name: warehouse.read_table(name) for name in sorted(TABLE_COLUMNS)}


def assert_same_tables(before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]) -> None:
    from polars.testing import assert_frame_equal

    assert before.keys() == after.keys()
    for name in before:
        assert_frame_equal(after[name], before[name], check_row_order=False)
