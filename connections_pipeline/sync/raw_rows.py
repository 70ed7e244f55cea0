"""One row per Finch call, as `finch_raw_responses` keeps it: the body exactly as received."""

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import polars as pl

from connections_pipeline.finch import FinchCallResult
from connections_pipeline.transform.finch_clock import ClockReading

RAW_SCHEMA = {
    "run_id": pl.String,
    "endpoint": pl.String,
    "token_fingerprint": pl.String,
    "connection_id": pl.String,
    "fetched_at": pl.Datetime("us", "UTC"),
    "outcome": pl.String,
    "status_code": pl.Int32,
    "error_name": pl.String,
    "finch_code": pl.String,
    "request_id": pl.String,
    "body": pl.String,
    "failure_reason": pl.String,
}


def raw_row(
    run_id: str, result: FinchCallResult, fingerprint: str | None, connection_id: str | None
) -> dict[str, Any]:
    """A call's row; `connection_id` is the one it was made for (the source's, for an
    `/introspect`, until its answer is decoded)."""
    return {
        "run_id": run_id,
        "endpoint": result.endpoint,
        "token_fingerprint": fingerprint,
        "connection_id": connection_id,
        "fetched_at": server_time(result.server_date) or datetime.now(UTC),
        "outcome": result.outcome.value,
        "status_code": result.status_code,
        "error_name": result.error_name,
        "finch_code": result.finch_code,
        "request_id": result.request_id,
        "body": result.text if result.ok else None,
        "failure_reason": None if result.ok else failure_reason(result),
    }


def failure_reason(result: FinchCallResult) -> str:
    return result.reason or result.message or result.error_name or result.outcome.value


def server_time(header: str | None) -> datetime | None:
    """A `Date` header as a UTC time; None when absent or unreadable."""
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def answered_connections(introspections: pl.DataFrame) -> pl.DataFrame:
    """token_fingerprint, answered_id: the connection each decoded answer names."""
    return introspections.select(
        "token_fingerprint", pl.col("connection_id").alias("answered_id")
    ).unique("token_fingerprint", keep="last")


def with_answered(raw: pl.DataFrame, answered: pl.DataFrame) -> pl.DataFrame:
    """`raw` with its successful `/introspect` rows under their `answered_connections`."""
    return (
        raw.join(answered, on="token_fingerprint", how="left", maintain_order="left")
        .with_columns(
            pl.when((pl.col("endpoint") == "introspect") & (pl.col("outcome") == "ok"))
            .then(pl.col("answered_id"))
            .otherwise(pl.col("connection_id"))
            .alias("connection_id")
        )
        .drop("answered_id")
    )


def trusted_fetch_times(frame: pl.DataFrame, clock: ClockReading) -> pl.DataFrame:
    """A `fetched_at` outside the trusted window (an ignored `Date` header, or this
    machine's clock beside a simulated one) becomes the snapshot's time: a company name
    fetched "in 2999" would otherwise never be due again."""
    fetched = pl.col("fetched_at")
    trusted = fetched.is_between(pl.lit(clock.earliest), pl.lit(clock.latest))
    return frame.with_columns(
        pl.when(trusted).then(fetched).otherwise(pl.lit(clock.as_of)).alias("fetched_at")
    )
