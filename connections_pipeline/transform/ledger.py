"""Session records from a token/session source, shaped as rows of the session ledger."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from connections_pipeline.concepts import KIND_CONNECT, PENDING
from connections_pipeline.transform.parse import UTC_DATETIME, parse_timestamp

SOURCE_SESSION_SCHEMA = {
    "session_id": pl.String,
    "connect_url": pl.String,
    "customer_id": pl.String,
    "customer_name": pl.String,
    "customer_email": pl.String,
    "products": pl.String,
    "redirect_uri": pl.String,
    "provider_id": pl.String,
    "kind": pl.String,
    "reauth_connection_id": pl.String,
    "created_at": pl.String,
    "expires_at": pl.String,
    "status": pl.String,
    "connection_id": pl.String,
}


@dataclass(frozen=True)
class SourceSessions:
    """Session records from a source as ledger rows, and the records that cannot be tracked:
    (location, record, reason) each."""

    sessions: pl.DataFrame
    rejected: list[tuple[str, Mapping[str, Any], str]]


def sessions_from_source(
    records: Sequence[Mapping[str, Any]],
    created_by: str,
    locations: Sequence[str] | None = None,
) -> SourceSessions:
    """Ledger rows for sessions created outside this pipeline (by the application).

    A record without a session id, or whose `created_at` or `expires_at` is missing or not a
    time, cannot be tracked: it is returned in `rejected` with its location (`locations[i]`,
    or `row <i + 1>`) and the reason. The ledger's own schema checks catch the rest.
    """
    places = list(locations) if locations is not None else []
    places += [f"row {n}" for n in range(len(places) + 1, len(records) + 1)]
    rows = [_source_row(record) for record in records]
    frame = pl.DataFrame(rows, schema=SOURCE_SESSION_SCHEMA, orient="row").with_columns(
        parse_timestamp(pl.col("created_at")).alias("created_at_parsed"),
        parse_timestamp(pl.col("expires_at")).alias("expires_at_parsed"),
    )
    reasons = frame.select(
        pl.concat_list(
            pl.when(pl.col("session_id").str.strip_chars().fill_null("") == "").then(
                pl.lit("no session_id")
            ),
            *(_time_problem(name) for name in ("created_at", "expires_at")),
        )
        .list.drop_nulls()
        .list.join("; ")
        .alias("reason")
    )["reason"]
    rejected = [
        (place, record, reason)
        for place, record, reason in zip(places, records, reasons, strict=True)
        if reason
    ]
    sessions = (
        frame.filter(reasons.str.len_chars() == 0)
        .with_columns(
            pl.col("created_at_parsed").alias("created_at"),
            pl.col("expires_at_parsed").alias("expires_at"),
            pl.col("kind").fill_null(KIND_CONNECT),
            pl.col("status").fill_null(PENDING),
            pl.lit(created_by).alias("created_by"),
            pl.lit(None, dtype=UTC_DATETIME).alias("completed_at"),
        )
        .drop("created_at_parsed", "expires_at_parsed")
        .unique("session_id", keep="last", maintain_order=True)
    )
    return SourceSessions(sessions, rejected)


def _time_problem(name: str) -> pl.Expr:
    text = pl.col(name)
    return (
        pl.when(text.is_null() | (text.str.strip_chars() == ""))
        .then(pl.lit(f"no {name}"))
        .when(pl.col(f"{name}_parsed").is_null())
        .then(pl.lit(f"{name} is not an ISO 8601 time"))
    )


def _source_row(record: Mapping[str, Any]) -> dict[str, Any]:
    products = record.get("products")
    if isinstance(products, list | tuple):
        products = ",".join(sorted(str(p) for p in products))
    row = {name: record.get(name) for name in SOURCE_SESSION_SCHEMA}
    row["products"] = products
    row["reauth_connection_id"] = record.get("reauth_connection_id") or (
        record.get("connection_id") if record.get("kind") == "reauthenticate" else None
    )
    return {name: None if value is None else str(value) for name, value in row.items()}
