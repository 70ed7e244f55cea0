"""Turn raw Finch responses (one row per call) into typed, per-call frames."""

import polars as pl

from connections_pipeline.transform.dashboard_rules import connection_type
from connections_pipeline.transform.json_bodies import (
    COMPANY_DTYPE,
    INTROSPECTION_DTYPE,
    JOBS_DTYPE,
    PROVIDERS_DTYPE,
    decode_bodies,
)

UTC_DATETIME = pl.Datetime("us", "UTC")
OK = "ok"


# Tried in turn on every value. Letting Polars infer the format would pick one from the
# column's first value and silently null every row written another way (e.g. `...Z` after a
# naive or date-only text).
ISO_8601_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d")


def parse_timestamp(column: pl.Expr) -> pl.Expr:
    """ISO 8601 text from Finch to a UTC timestamp; unparsable text becomes null.

    Offsets are converted to UTC; naive and date-only texts are taken as UTC.
    """
    text = (
        column.str.strip_chars().str.replace(r"[Zz]$", "+00:00").str.replace(" ", "T", literal=True)
    )
    return pl.coalesce(
        text.str.to_datetime(fmt, time_zone="UTC", time_unit="us", strict=False)
        for fmt in ISO_8601_FORMATS
    )


def ok_bodies(raw: pl.DataFrame, endpoint: str) -> pl.DataFrame:
    return raw.filter((pl.col("endpoint") == endpoint) & (pl.col("outcome") == OK))


def parse_introspections(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One typed row per successful `/introspect`; undecodable bodies are returned apart.

    Returns (introspections, rejected) where rejected carries `token_fingerprint` and
    `reason`.
    """
    decoded, rejected = decode_bodies(ok_bodies(raw, "introspect"), INTROSPECTION_DTYPE)
    body = pl.col("decoded")
    status = body.struct.field("connection_status")
    parsed = decoded.select(
        "token_fingerprint",
        "fetched_at",
        body.struct.field("connection_id").alias("connection_id"),
        status.struct.field("status").alias("connection_status"),
        parse_timestamp(status.struct.field("last_successful_sync")).alias("last_synced_at"),
        body.struct.field("provider_id").alias("provider_id"),
        body.struct.field("company_id").alias("company_id"),
        body.struct.field("customer_id").alias("customer_id"),
        body.struct.field("customer_name").alias("customer_name"),
        body.struct.field("customer_email").alias("customer_email"),
        body.struct.field("products")
        .list.drop_nulls()
        .list.unique()
        .list.sort()
        .list.join(",")
        .alias("products"),
        connection_type(
            body.struct.field("authentication_methods").list.eval(pl.element().struct.field("type"))
        ).alias("connection_type"),
        body.struct.field("entities").alias("entities"),
    )
    missing_id = parsed.filter(pl.col("connection_id").is_null())
    rejected = pl.concat(
        [
            rejected.select("token_fingerprint", "reason"),
            missing_id.select(
                "token_fingerprint", pl.lit("introspection has no connection_id").alias("reason")
            ),
        ]
    )
    return parsed.filter(pl.col("connection_id").is_not_null()), rejected


def parse_companies(raw: pl.DataFrame) -> pl.DataFrame:
    """connection_id, legal_name, company_fetched_at from successful `/employer/company`."""
    decoded, _ = decode_bodies(ok_bodies(raw, "company"), COMPANY_DTYPE)
    return (
        decoded.select(
            "connection_id",
            pl.col("decoded").struct.field("legal_name").alias("legal_name"),
            pl.col("fetched_at").alias("company_fetched_at"),
        )
        .filter(pl.col("legal_name").is_not_null())
        .unique("connection_id", keep="last", maintain_order=True)
    )


def parse_connected_at(raw: pl.DataFrame) -> pl.DataFrame:
    """connection_id, connected_at from `/jobs/automated`.

    The scheduled `data_sync_all` job's `created_at` is the initial connection time; ad-hoc
    jobs are created later, so the earliest `data_sync_all` creation is the connection time.
    """
    decoded, _ = decode_bodies(ok_bodies(raw, "jobs"), JOBS_DTYPE)
    jobs = decoded.select(
        "connection_id", pl.col("decoded").struct.field("data").alias("job")
    ).explode("job")
    return (
        jobs.filter(pl.col("job").struct.field("type") == "data_sync_all")
        .group_by("connection_id")
        .agg(parse_timestamp(pl.col("job").struct.field("created_at")).min().alias("connected_at"))
        .filter(pl.col("connected_at").is_not_null())
    )


def parse_providers(raw: pl.DataFrame) -> pl.DataFrame:
    """provider_id, provider_name from the run's `/providers` answer."""
    decoded, _ = decode_bodies(ok_bodies(raw, "providers"), PROVIDERS_DTYPE)
    if decoded.is_empty():
        return pl.DataFrame(schema={"provider_id": pl.String, "provider_name": pl.String})
    return (
        decoded.select(pl.col("decoded").alias("provider"))
        .explode("provider")
        .select(
            pl.col("provider").struct.field("id").alias("provider_id"),
            pl.col("provider").struct.field("display_name").alias("provider_name"),
        )
        .drop_nulls("provider_id")
        .unique("provider_id", keep="last", maintain_order=True)
    )


def freshest_per_connection(introspections: pl.DataFrame, tokens: pl.DataFrame) -> pl.DataFrame:
    """One introspection per connection: the freshest working token's (latest `issued_at`;
    unknown issue times last; the fingerprint breaks ties so the choice is stable).

    `tokens` needs `token_fingerprint` and `issued_at`.
    """
    ranked = introspections.join(
        tokens.select("token_fingerprint", "issued_at"), on="token_fingerprint", how="left"
    )
    return ranked.sort(
        ["connection_id", "issued_at", "token_fingerprint"],
        descending=[False, True, False],
        nulls_last=True,
    ).unique("connection_id", keep="first", maintain_order=True)
