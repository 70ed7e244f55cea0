"""The webhook inbox and the re-auth queue on every warehouse: an event ID is stored once,
waits until marked, and is marked once; the queue is replaced whole."""

import datetime as dt

import polars as pl
import pytest
from frames import at

from connections_pipeline.warehouse import Warehouse


def _event(event_id: str, received: dt.datetime) -> dict:
    return {
        "event_id": event_id,
        "event_type": "account.updated",
        "connection_id": "conn-1",
        "entity_id": None,
        "status": "reauth",
        "finch_timestamp": received - dt.timedelta(seconds=5),
        "received_at": received,
    }


@pytest.mark.snowflake
def test_an_event_is_stored_once_and_marked_once(warehouse: Warehouse) -> None:
    assert warehouse.store_webhook_event(_event("evt-1", at(0)))
    assert warehouse.store_webhook_event(_event("evt-2", at(1)))
    replay = {**_event("evt-1", at(2)), "status": "connected"}
    assert not warehouse.store_webhook_event(replay)

    pending = warehouse.pending_webhook_events()
    assert pending["event_id"].to_list() == ["evt-1", "evt-2"]
    # The replay kept the first delivery's row.
    assert pending["status"].to_list() == ["reauth", "reauth"]
    assert pending["received_at"].to_list() == [at(0), at(1)]

    assert warehouse.mark_webhook_events({"evt-1": "synced"}, "run-1", at(3)) == 1
    assert warehouse.mark_webhook_events({"evt-1": "ignored"}, "run-2", at(4)) == 0
    assert warehouse.pending_webhook_events()["event_id"].to_list() == ["evt-2"]
    [marked] = warehouse.read_webhook_events(["evt-1"]).to_dicts()
    assert (marked["outcome"], marked["processed_by_run"], marked["processed_at"]) == (
        "synced",
        "run-1",
        at(3),
    )


@pytest.mark.snowflake
def test_the_reauth_queue_is_replaced_whole(warehouse: Warehouse) -> None:
    def queue(connection_ids: list[str], days: list[int]) -> pl.DataFrame:
        rows = len(connection_ids)
        return pl.DataFrame(
            {
                "connection_id": connection_ids,
                "company_name": ["Acme"] * rows,
                "customer_id": ["cust"] * rows,
                "customer_name": ["Customer"] * rows,
                "customer_email": [None] * rows,
                "provider_name": ["Gusto"] * rows,
                "reauth_since": [at(0)] * rows,
                "days_in_reauth": days,
                "session_id": [None] * rows,
                "connect_url": [None] * rows,
                "link_expires_at": [None] * rows,
                "as_of": [at(48)] * rows,
            },
            schema_overrides={
                "days_in_reauth": pl.Int32,
                "link_expires_at": pl.Datetime("us", "UTC"),
            },
        )

    assert warehouse.replace_reauth_queue(queue(["a", "b"], [1, 3])) == 2
    assert warehouse.replace_reauth_queue(queue(["c"], [2])) == 1
    stored = warehouse.read_reauth_queue()
    assert stored["connection_id"].to_list() == ["c"]
    assert stored["days_in_reauth"].to_list() == [2]
    assert stored["as_of"].to_list() == [at(48)]
