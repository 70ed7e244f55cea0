"""Turn raw Finch responses (one row per call) into typed, per-call frames."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from connections_pipeline.decoding_limits import MAX_ENTITIES_PER_CONNECTION, MAX_ID_CHARS
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
NUL = "\x00"


# Tried in turn on every value. Letting Polars infer the format would pick one from the
# column's first value and silently null every row written another way (e.g. `...Z` after a
# naive or date-only text).
ISO_8601_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d")


# The instants Python, PostgreSQL and a spreadsheet can all hold.
EARLIEST_TIME = datetime(1, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


def parse_timestamp(column: pl.Expr) -> pl.Expr:
    """ISO 8601 text from Finch to a UTC timestamp; unparsable text becomes null.

    Offsets are converted to UTC; naive and date-only texts are taken as UTC. A time before
    year 1 or after year 9999 (`0000-01-01`, `+10000-01-01`) is pinned to those bounds: it
    stays visibly absurd, so validation quarantines its row, and it can still be reported
    and stored, which a year-0 time could not.
    """
    text = (
        column.str.strip_chars().str.replace(r"[Zz]$", "+00:00").str.replace(" ", "T", literal=True)
    )
    return pl.coalesce(
        text.str.to_datetime(fmt, time_zone="UTC", time_unit="us", strict=False)
        for fmt in ISO_8601_FORMATS
    ).clip(pl.lit(EARLIEST_TIME).cast(UTC_DATETIME), pl.lit(LATEST_TIME).cast(UTC_DATETIME))


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
        # The entity list is only needed whole for the entities table; the counts and the
        # first name travel as plain columns so ranking and joins do not copy the lists.
        pl.max_horizontal(body.struct.field("entities").list.len().fill_null(0), pl.lit(1))
        .cast(pl.Int32)
        .alias("entity_count"),
        body.struct.field("entities").list.first().struct.field("name").alias("first_entity_name"),
        body.struct.field("client_id").alias("client_id"),
        body.struct.field("client_type").alias("client_type"),
    )
    reason = pl.coalesce(
        unusable_id_reason(pl.col("connection_id"), "connection_id"),
        too_many_entities_reason(pl.col("entities")),
    )
    unusable = parsed.filter(reason.is_not_null())
    rejected = pl.concat(
        [
            rejected.select("token_fingerprint", "reason"),
            unusable.select("token_fingerprint", reason.alias("reason")),
        ]
    )
    return parsed.filter(reason.is_null()), rejected


def unusable_id_reason(column: pl.Expr, name: str) -> pl.Expr:
    """Why an id cannot identify a record (null when it can): missing or blank, holding a
    NUL character (which PostgreSQL text cannot store; the JSON decoder also turns an unpaired
    UTF-16 surrogate escape into one), or longer than MAX_ID_CHARS."""
    return (
        pl.when(column.is_null())
        .then(pl.lit(f"introspection has no {name}"))
        .when(column.str.strip_chars().str.len_chars() == 0)
        .then(pl.lit(f"introspection has a blank {name}"))
        .when(column.str.contains(NUL, literal=True))
        .then(
            pl.lit(f"{name} holds a NUL character (U+0000) or an unpaired UTF-16 surrogate escape")
        )
        .when(column.str.len_chars() > MAX_ID_CHARS)
        .then(
            pl.format(
                f"{name} is {{}} characters long (at most {MAX_ID_CHARS})", column.str.len_chars()
            )
        )
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def too_many_entities_reason(entities: pl.Expr) -> pl.Expr:
    """Why an introspection's entity list is refused (null when it is not): more than
    MAX_ENTITIES_PER_CONNECTION entities, each of which would become a warehouse row."""
    count = entities.list.len()
    return (
        pl.when(count > MAX_ENTITIES_PER_CONNECTION)
        .then(
            pl.format(
                f"introspection lists {{}} entities (at most {MAX_ENTITIES_PER_CONNECTION} "
                "per connection)",
                count,
            )
        )
        .otherwise(pl.lit(None, dtype=pl.String))
    )


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


def followup_failures(raw: pl.DataFrame) -> pl.DataFrame:
    """connection_id, followup_error: why this run's jobs or company call for a connection
    did not answer, e.g. "company not read: failed after retries: HTTP 503 server_error"."""
    failed = raw.filter(
        pl.col("endpoint").is_in(["jobs", "company"]),
        pl.col("outcome") != "ok",
        pl.col("connection_id").is_not_null(),
    )
    reason = pl.col("failure_reason").fill_null(pl.col("outcome"))
    return failed.group_by("connection_id", maintain_order=True).agg(
        pl.format("{} not read: {}", "endpoint", reason).str.join("; ").alias("followup_error")
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

    `tokens` needs `token_fingerprint` and `issued_at`. Most connections have one token;
    only those with several are ranked, so a large fleet is not sorted as a whole.
    """
    per_connection = pl.len().over("connection_id")
    several = introspections.filter(per_connection > 1).join(
        tokens.select("token_fingerprint", "issued_at"), on="token_fingerprint", how="left"
    )
    latest = pl.col("issued_at").max().over("connection_id")
    # max() skips nulls: a known issue time beats an unknown one; all unknown tie.
    ranked = (
        several.filter((pl.col("issued_at") == latest) | latest.is_null())
        .filter(
            pl.col("token_fingerprint") == pl.col("token_fingerprint").min().over("connection_id")
        )
        .drop("issued_at")
        # The same token listed twice must still make one row.
        .unique("connection_id", keep="first", maintain_order=True)
    )
    return pl.concat([introspections.filter(per_connection == 1), ranked], rechunk=False)


# The raw-response columns the follow-up parsers read.
_BODY_COLUMNS = {
    "endpoint": pl.String,
    "outcome": pl.String,
    "connection_id": pl.String,
    "fetched_at": UTC_DATETIME,
    "body": pl.String,
}


@dataclass(frozen=True)
class FollowupBodies:
    """What the snapshot reads from the bodies of `/providers`, `/jobs/automated` and
    `/employer/company`: decoded once, so the bodies themselves need not be kept.

    Attributes:
        providers: as `parse_providers`.
        companies: as `parse_companies`.
        connected_at: as `parse_connected_at`.
    """

    providers: pl.DataFrame
    companies: pl.DataFrame
    connected_at: pl.DataFrame

    @classmethod
    def of(cls, raw: pl.DataFrame) -> "FollowupBodies":
        return cls(parse_providers(raw), parse_companies(raw), parse_connected_at(raw))

    @classmethod
    def combined(cls, parts: Sequence["FollowupBodies"]) -> "FollowupBodies":
        """The bodies of consecutive chunks of raw rows, as `of` reads them all at once:
        the last answer per key wins, and the earliest connection time."""
        if not parts:
            return cls.of(pl.DataFrame(schema=_BODY_COLUMNS))
        providers = pl.concat([part.providers for part in parts])
        companies = pl.concat([part.companies for part in parts])
        connected = pl.concat([part.connected_at for part in parts])
        return cls(
            providers.unique("provider_id", keep="last", maintain_order=True),
            companies.unique("connection_id", keep="last", maintain_order=True),
            connected.group_by("connection_id", maintain_order=True).agg(
                pl.col("connected_at").min()
            ),
        )
