"""Session records from a token/session source, shaped as rows of the session ledger."""

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from connections_pipeline.transform.parse import UTC_DATETIME, parse_timestamp
from connections_pipeline.transform.sessions import KIND_CONNECT, PENDING

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


def sessions_from_source(records: Iterable[Mapping[str, Any]], created_by: str) -> pl.DataFrame:
    """Ledger rows for sessions created outside this pipeline (by the application).

    Rows without a session id or timestamps cannot be tracked and are dropped here; the
    ledger's own schema checks catch the rest.
    """
    rows = [_source_row(record) for record in records]
    frame = pl.DataFrame(rows, schema=SOURCE_SESSION_SCHEMA, orient="row")
    return (
        frame.with_columns(
            parse_timestamp(pl.col("created_at")).alias("created_at"),
            parse_timestamp(pl.col("expires_at")).alias("expires_at"),
            pl.col("kind").fill_null(KIND_CONNECT),
            pl.col("status").fill_null(PENDING),
            pl.lit(created_by).alias("created_by"),
            pl.lit(None, dtype=UTC_DATETIME).alias("completed_at"),
        )
        .drop_nulls(["session_id", "created_at", "expires_at"])
        .unique("session_id", keep="last", maintain_order=True)
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
