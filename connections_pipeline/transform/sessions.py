"""Connect-session progress and the Staged rows it implies.

Finch has no endpoint that lists sessions, so the ledger is ours; a session's progress is
derived from what the sync sees: `completed` once a connection with the session's
`customer_id` appears after the session was created, `expired` past `expires_at`, else
`pending` — and a pending connect session is a Staged row of the Connections page.

`unknown` is an attempt to create a link whose answer was lost (Finch may or may not have
created it; we never learned a session id or URL). A sync leaves such a row exactly as it
is: nothing Finch shows can tell whether that link exists, so it is never Staged, never
completed by a connection and never counted as a created session; it only blocks another
link for its customer until its would-be `expires_at`.
"""

from datetime import datetime

import polars as pl

from connections_pipeline import concepts
from connections_pipeline.concepts import (
    COMPLETED,
    EXPIRED,
    KIND_CONNECT,
    KIND_REAUTHENTICATE,
    PENDING,
    UNKNOWN,
)
from connections_pipeline.transform.parse import UTC_DATETIME


def _concerning(connections: pl.DataFrame, sessions: pl.DataFrame) -> pl.DataFrame:
    """The connections a session can match (by customer) or names (connected or
    re-authenticated): a large fleet is narrowed to these before any join."""
    named = pl.concat([sessions["connection_id"], sessions["reauth_connection_id"]]).drop_nulls()
    return connections.filter(
        pl.col("customer_id").is_in(sessions["customer_id"].drop_nulls().implode())
        | pl.col("connection_id").is_in(named.implode())
    )


def session_progress(
    sessions: pl.DataFrame, connections: pl.DataFrame, as_of: datetime
) -> pl.DataFrame:
    """The ledger with `status`, `connection_id`, `completed_at` and
    `time_to_connect_seconds` brought up to date as of `as_of`."""
    now = pl.lit(as_of).cast(UTC_DATETIME)
    connections = _concerning(connections, sessions)
    appeared = connections.select(
        pl.col("customer_id").alias("match_customer_id"),
        pl.col("connection_id").alias("match_connection_id"),
        pl.coalesce("connected_at", "first_seen_at", now).alias("match_connected_at"),
    ).filter(pl.col("match_customer_id").is_not_null())
    candidates = (
        sessions.filter((pl.col("kind") == KIND_CONNECT) & (pl.col("status") != UNKNOWN))
        .select("session_id", "customer_id", "created_at", "expires_at")
        .join(appeared, left_on="customer_id", right_on="match_customer_id", how="inner")
        .filter(
            (pl.col("match_connected_at") >= pl.col("created_at"))
            & (pl.col("match_connected_at") < pl.col("expires_at"))
        )
        .sort("match_connected_at")
        .unique("session_id", keep="first", maintain_order=True)
        .select("session_id", "match_connection_id", "match_connected_at")
    )
    reauth_done = connections.filter(
        (pl.col("state") == concepts.LIVE) & (pl.col("connection_status") == "connected")
    ).select(pl.col("connection_id").alias("reauth_connection_id"), pl.lit(True).alias("healed"))
    # A session the source already reports completed took its connection's connect time.
    linked = connections.select(
        pl.col("connection_id").alias("linked_connection_id"),
        pl.coalesce("connected_at", "first_seen_at", now).alias("linked_connected_at"),
    ).unique("linked_connection_id", keep="first", maintain_order=True)
    unknown = (pl.col("status") == UNKNOWN).fill_null(False)
    already = pl.col("status") == COMPLETED
    matched = pl.col("match_connection_id").is_not_null()
    healed = (pl.col("kind") == KIND_REAUTHENTICATE) & pl.col("healed").fill_null(False)
    completed = already | matched | healed
    connect_time = pl.when(pl.col("kind") == KIND_CONNECT).then("linked_connected_at")
    completed_at = pl.coalesce("completed_at", "match_connected_at", connect_time, now)
    return (
        sessions.join(candidates, on="session_id", how="left")
        .join(linked, left_on="connection_id", right_on="linked_connection_id", how="left")
        .join(reauth_done, on="reauth_connection_id", how="left")
        .with_columns(
            pl.when(unknown)
            .then(pl.lit(UNKNOWN))
            .when(completed)
            .then(pl.lit(COMPLETED))
            .when(pl.col("expires_at") <= now)
            .then(pl.lit(EXPIRED))
            .otherwise(pl.lit(PENDING))
            .alias("new_status"),
        )
        .with_columns(
            pl.when(unknown)
            .then(pl.lit(None, dtype=pl.String))
            .when(already)
            .then("connection_id")
            .when(matched)
            .then("match_connection_id")
            .when(healed)
            .then("reauth_connection_id")
            .otherwise(pl.lit(None, dtype=pl.String))
            .alias("connection_id"),
            pl.when(pl.col("new_status") == COMPLETED)
            .then(completed_at)
            .otherwise(pl.lit(None, dtype=UTC_DATETIME))
            .alias("completed_at"),
            pl.when(pl.col("new_status") != pl.col("status"))
            .then(now)
            .otherwise(pl.col("status_updated_at"))
            .alias("status_updated_at"),
        )
        .with_columns(
            pl.col("new_status").alias("status"),
            (pl.col("completed_at") - pl.col("created_at"))
            .dt.total_microseconds()
            .truediv(1_000_000)
            .alias("time_to_connect_seconds"),
        )
        .drop(
            "new_status",
            "match_connection_id",
            "match_connected_at",
            "linked_connected_at",
            "healed",
        )
    )


def staged_rows(
    progress: pl.DataFrame, previous: pl.DataFrame, providers: pl.DataFrame
) -> pl.DataFrame:
    """One Staged row per pending connect session: a link handed out, no connection yet.

    The provider's name comes from this run's `/providers`; when that call failed, from the
    row as it was (a name does not vanish because Finch did not answer once).
    """
    first_seen = previous.select(
        pl.col("connection_key"),
        pl.col("first_seen_at"),
        pl.col("provider_name").alias("previous_provider_name"),
    )
    return (
        progress.filter((pl.col("status") == PENDING) & (pl.col("kind") == KIND_CONNECT))
        .join(providers, on="provider_id", how="left")
        .select(
            pl.col("session_id").alias("connection_key"),
            pl.lit(concepts.STAGED).alias("state"),
            "session_id",
            "customer_name",
            "customer_id",
            "customer_email",
            "provider_id",
            "provider_name",
            pl.col("expires_at").alias("session_expires_at"),
        )
        .join(first_seen, on="connection_key", how="left")
        .with_columns(pl.coalesce("provider_name", "previous_provider_name").alias("provider_name"))
        .drop("previous_provider_name")
    )
