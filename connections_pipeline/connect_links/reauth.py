"""The re-auth queue: live connections in `reauth`, their open link, days in reauth.

Pure Polars over the warehouse's current table, its history and the session ledger.
"""

from datetime import datetime

import polars as pl

from connections_pipeline.concepts import KIND_REAUTHENTICATE, LIVE, PENDING, REAUTH, UNKNOWN

REAUTH_QUEUE_SCHEMA = pl.Schema(
    {
        "connection_id": pl.String,
        "company_name": pl.String,
        "customer_id": pl.String,
        "customer_name": pl.String,
        "customer_email": pl.String,
        "provider_name": pl.String,
        "reauth_since": pl.Datetime("us", "UTC"),
        "days_in_reauth": pl.Int32,
        "session_id": pl.String,
        "connect_url": pl.String,
        "link_expires_at": pl.Datetime("us", "UTC"),
        "as_of": pl.Datetime("us", "UTC"),
    }
)


def reauth_connections(current: pl.DataFrame) -> pl.DataFrame:
    """Live connections whose status is `reauth`: the employer must reconnect."""
    return current.filter(
        (pl.col("state") == LIVE)
        & (pl.col("connection_status") == REAUTH)
        & pl.col("connection_id").is_not_null()
    ).sort("connection_id")


def open_reauth_links(ledger: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """The newest pending, unexpired reauthentication session of each connection."""
    return (
        ledger.filter(
            (pl.col("kind") == KIND_REAUTHENTICATE)
            & (pl.col("status").fill_null(PENDING) == PENDING)
            & (pl.col("expires_at") > as_of)
            & pl.col("reauth_connection_id").is_not_null()
        )
        .sort("created_at", descending=True)
        .unique("reauth_connection_id", keep="first", maintain_order=True)
        .select(
            pl.col("reauth_connection_id").alias("connection_id"),
            "session_id",
            "connect_url",
            pl.col("expires_at").alias("link_expires_at"),
        )
    )


def blocking_reauth_attempts(ledger: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """The connections with a reauthentication link that may be open at `as_of`: a pending
    one, or an attempt of unknown outcome (Finch may have created it) before its would-be
    expiry."""
    return ledger.filter(
        (pl.col("kind") == KIND_REAUTHENTICATE)
        & pl.col("status").fill_null(PENDING).is_in((PENDING, UNKNOWN))
        & (pl.col("expires_at") > as_of)
        & pl.col("reauth_connection_id").is_not_null()
    ).select(pl.col("reauth_connection_id").alias("connection_id"))


def connections_needing_link(
    current: pl.DataFrame, ledger: pl.DataFrame, as_of: datetime
) -> pl.DataFrame:
    """Connections in reauth without a reauthentication link that may be open: at most one
    each, and none while an attempt's outcome is unknown."""
    blocked = blocking_reauth_attempts(ledger, as_of)
    return reauth_connections(current).join(blocked, on="connection_id", how="anti")


def reauth_queue(
    current: pl.DataFrame, history: pl.DataFrame, ledger: pl.DataFrame, as_of: datetime
) -> pl.DataFrame:
    """One row per connection in reauth, with the link to send and how long it has waited.

    `reauth_since` is the `valid_from` of the connection's current history version: the
    sync that first saw the tracked attributes as they are now, status `reauth` included.
    """
    since = history.filter(pl.col("is_current")).select(
        "connection_key", pl.col("valid_from").alias("reauth_since")
    )
    now = pl.lit(as_of).cast(pl.Datetime("us", "UTC"))
    return (
        reauth_connections(current)
        .join(since, on="connection_key", how="left")
        .join(open_reauth_links(ledger, as_of), on="connection_id", how="left")
        .with_columns(
            ((now - pl.col("reauth_since")).dt.total_days())
            .clip(lower_bound=0)
            .cast(pl.Int32)
            .alias("days_in_reauth"),
            now.alias("as_of"),
        )
        .select(list(REAUTH_QUEUE_SCHEMA))
        .cast(dict(REAUTH_QUEUE_SCHEMA))
        .sort(["days_in_reauth", "connection_id"], descending=[True, False], nulls_last=True)
    )
