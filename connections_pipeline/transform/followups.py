"""Which connections need more than `/introspect` this run.

A steady-state run costs about one request per token: `/jobs/automated` is called once per
connection ever (its connection time never changes) and `/employer/company` only when the
cached name is missing or older than the TTL.
"""

from datetime import datetime, timedelta

import polars as pl

from connections_pipeline import concepts
from connections_pipeline.transform.parse import UTC_DATETIME, freshest_per_connection


def wants_company_name() -> pl.Expr:
    """On parsed introspections or connection rows: the connection has one entity, the
    company product, and a status in which Finch can answer `/employer/company` — Finch's
    legal name applies."""
    single_entity = pl.col("entity_count").fill_null(1) <= 1
    has_company_product = pl.col("products").str.contains("(^|,)company(,|$)").fill_null(False)
    can_answer = ~pl.col("connection_status").is_in(
        [*concepts.NEEDS_ACTION_STATUSES, "pending"]
    ).fill_null(True)
    return single_entity & has_company_product & can_answer


def known_company_lookups(
    previous: pl.DataFrame, usable: list[str], as_of: datetime, company_ttl: timedelta
) -> pl.DataFrame:
    """connection_id, token_fingerprint, company_fetched_at: live connections known from the
    last run whose company name is due (missing, pending, or older than the TTL), with the
    token that answered for them then — if it is among `usable` — oldest name first.

    They can be asked for before this run's introspections answer; a connection whose
    answer has changed meanwhile (re-auth, more entities) only wastes the call.
    """
    stale_before = as_of - company_ttl
    return (
        previous.filter(
            (pl.col("state") == concepts.LIVE)
            & pl.col("connection_id").is_not_null()
            & wants_company_name()
            & pl.col("working_token_fingerprint").is_in(usable)
            & (
                pl.col("company_name_pending").fill_null(False)
                | pl.col("company_name").is_null()
                | pl.col("company_fetched_at").is_null()
                | (pl.col("company_fetched_at") < pl.lit(stale_before).cast(UTC_DATETIME))
            )
        )
        .select(
            "connection_id",
            pl.col("working_token_fingerprint").alias("token_fingerprint"),
            "company_fetched_at",
        )
        .sort("company_fetched_at", "connection_id", nulls_last=False)
    )


def plan_followups(
    introspections: pl.DataFrame,
    token_source: pl.DataFrame,
    previous: pl.DataFrame,
    as_of: datetime,
    company_ttl: timedelta,
    jobs_for: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """connection_id, token_fingerprint (the freshest working token), need_jobs, need_company,
    company_fetched_at (when the cached name was fetched, for refreshing oldest first).

    Args:
        jobs_for: connections whose `/jobs/automated` is asked again even though their
            connection time is known: Finch reported one of their jobs completed.
    """
    freshest = freshest_per_connection(introspections.drop("entities"), token_source)
    known = previous.filter(pl.col("connection_id").is_not_null()).select(
        "connection_id",
        pl.col("connected_at").alias("known_connected_at"),
        pl.col("company_name").alias("known_company_name"),
        pl.col("company_fetched_at").alias("known_company_fetched_at"),
    )
    stale_before = pl.lit(as_of - company_ttl).cast(UTC_DATETIME)
    cache_stale = (
        pl.col("known_company_name").is_null()
        | pl.col("known_company_fetched_at").is_null()
        | (pl.col("known_company_fetched_at") < stale_before)
    )
    return freshest.join(known, on="connection_id", how="left").select(
        "connection_id",
        "token_fingerprint",
        (
            (pl.col("known_connected_at").is_null() | pl.col("connection_id").is_in(jobs_for))
            & (pl.col("connection_type") != concepts.ASSISTED).fill_null(True)
        ).alias("need_jobs"),
        (wants_company_name() & cache_stale).alias("need_company"),
        pl.col("known_company_fetched_at").alias("company_fetched_at"),
    )
