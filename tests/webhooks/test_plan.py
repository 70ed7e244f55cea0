"""What a targeted sync asks Finch for a set of inbox rows, and what each event comes to."""

import polars as pl

from connections_pipeline.webhooks.plan import outcomes, targets

EVENTS = pl.DataFrame(
    {
        "event_id": ["e1", "e2", "e3", "e4", "e5"],
        "event_type": [
            "account.updated",
            "job.data_sync_all.completed",
            "account.updated",
            "directory.updated",
            "account.updated",
        ],
        "connection_id": ["conn-a", "conn-b", "conn-x", "conn-a", None],
    }
)


def test_only_connection_ids_and_types_decide_what_is_asked() -> None:
    asked = targets(EVENTS)
    assert asked.connection_ids == {"conn-a", "conn-b", "conn-x"}
    assert asked.jobs_for == {"conn-b"}


def test_each_event_is_synced_unknown_or_ignored() -> None:
    assert outcomes(EVENTS, {"conn-a", "conn-b"}) == {
        "e1": "synced",
        "e2": "synced",
        "e3": "unknown_connection",
        "e4": "ignored",
        "e5": "ignored",
    }
