"""Pandera (Polars) schemas of the rows a sync loads, derived from the warehouse's column
registry, with the Dashboard's state rules.

Each schema has exactly the registry's columns, dtypes and nullability (strict: a missing or
extra column is a bug, reported as such, not a bad record). Beyond the business rules, a row
must be storable as it is: its text holds no NUL character (PostgreSQL text cannot), its
ids and the names Finch sends stay within the decoding limits (`decoding_limits`: a key must
fit a B-tree index, a 10 MB name must not reach a CSV), and the times Finch reports lie
between the Unix epoch and a day after the run (a year-0 or year-10000 time cannot be stored
or exported; a sync "completed" in 9999 would hide an overdue connection forever).
"""

from collections.abc import Mapping, Sequence
from datetime import UTC as _UTC
from datetime import datetime, timedelta

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from connections_pipeline import concepts
from connections_pipeline.decoding_limits import MAX_ID_CHARS, MAX_TEXT_CHARS
from connections_pipeline.transform import dashboard_rules as rules
from connections_pipeline.transform.parse import NUL
from connections_pipeline.warehouse.columns import (
    CONNECTION_ENTITIES,
    CONNECTION_ENTITIES_COLUMNS,
    CONNECTIONS,
    CONNECTIONS_COLUMNS,
    UTC_DATETIME,
    Column,
)

STATUSES = (*concepts.CONNECTION_STATUSES, concepts.DISCONNECTED_STATUS)
# Finch timestamps outside [EARLIEST_FINCH_TIME, last_seen_at + FINCH_CLOCK_SKEW] are absurd.
EARLIEST_FINCH_TIME = datetime(1970, 1, 1, tzinfo=_UTC)
FINCH_CLOCK_SKEW = timedelta(days=1)
# The JSON decoder turns an unpaired UTF-16 surrogate escape into NUL as well.
NO_NUL = "no NUL character (U+0000) or unpaired surrogate"
PLAUSIBLE_TIME = "a time between 1970-01-01 and a day after the run"


def _without_nul(data: PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(~pl.col(data.key).str.contains(NUL, literal=True).fill_null(False))


def _plausible_finch_time(data: PolarsData) -> pl.LazyFrame:
    moment = pl.col(data.key)
    latest = pl.col("last_seen_at") + pl.lit(FINCH_CLOCK_SKEW)
    plausible = (moment >= pl.lit(EARLIEST_FINCH_TIME).cast(UTC_DATETIME)) & (moment <= latest)
    return data.lazyframe.select(moment.is_null() | plausible.fill_null(False))


def _live_rows_are_complete(data: PolarsData) -> pl.LazyFrame:
    complete = (
        pl.col("connection_id").is_not_null()
        & pl.col("entity_count").is_not_null()
        & pl.col("connection_status").is_in(concepts.CONNECTION_STATUSES)
    )
    return data.lazyframe.select(((pl.col("state") != concepts.LIVE) | complete).fill_null(False))


def _staged_rows_are_open_sessions(data: PolarsData) -> pl.LazyFrame:
    open_session = (
        pl.col("connection_id").is_null()
        & pl.col("session_id").is_not_null()
        & (pl.col("session_expires_at") > pl.col("last_seen_at"))
    )
    return data.lazyframe.select(
        ((pl.col("state") != concepts.STAGED) | open_session).fill_null(False)
    )


def _disconnected_rows_are_dated(data: PolarsData) -> pl.LazyFrame:
    dated = pl.col("connection_id").is_not_null() & pl.col("disconnected_at").is_not_null()
    return data.lazyframe.select(
        ((pl.col("state") != concepts.DISCONNECTED) | dated).fill_null(False)
    )


NO_NUL_CHECK = pa.Check(_without_nul, name="no_nul_character", error=NO_NUL)
KEY_LENGTH = pa.Check.str_length(max_value=MAX_ID_CHARS)
# A name or other text Finch sends, past the decoding limit: quarantined, never cut short.
TEXT_LENGTH = pa.Check.str_length(max_value=MAX_TEXT_CHARS)
FINCH_TIME = pa.Check(_plausible_finch_time, name="plausible_finch_time", error=PLAUSIBLE_TIME)

# The business rules of finch_connections, by column (the registry gives the rest).
CONNECTION_CHECKS: Mapping[str, Sequence[pa.Check]] = {
    "connection_key": (KEY_LENGTH,),
    "state": (pa.Check.isin(concepts.STATES),),
    "connection_id": (KEY_LENGTH,),
    "session_id": (KEY_LENGTH,),
    "company_name": (TEXT_LENGTH,),
    "company_id": (KEY_LENGTH,),
    "customer_name": (TEXT_LENGTH,),
    "customer_id": (KEY_LENGTH,),
    "customer_email": (TEXT_LENGTH,),
    "entity_count": (pa.Check.ge(1),),
    "connection_status": (pa.Check.isin(STATUSES),),
    "connection_status_label": (pa.Check.isin(tuple(concepts.CONNECTION_STATUS_LABELS.values())),),
    "connection_type": (pa.Check.isin(concepts.CONNECTION_TYPES),),
    "expected_refresh_hours": (
        pa.Check.isin((rules.AUTOMATED_REFRESH_HOURS, rules.ASSISTED_REFRESH_HOURS)),
    ),
    "last_synced_at": (FINCH_TIME,),
    "connected_at": (FINCH_TIME,),
    "provider_id": (KEY_LENGTH,),
    "provider_name": (TEXT_LENGTH,),
    "products": (TEXT_LENGTH,),
}
ENTITY_CHECKS: Mapping[str, Sequence[pa.Check]] = {
    "connection_id": (KEY_LENGTH,),
    "entity_id": (KEY_LENGTH,),
    "entity_name": (TEXT_LENGTH,),
    "source_id": (KEY_LENGTH,),
    "entity_status": (pa.Check.isin(STATUSES),),
}


def registry_schema(
    name: str,
    columns: Sequence[Column],
    checks: Mapping[str, Sequence[pa.Check]],
    *,
    unique: Sequence[str] = (),
    frame_checks: Sequence[pa.Check] = (),
) -> pa.DataFrameSchema:
    """A strict schema with exactly `columns` (dtype and nullability from the registry),
    `checks` per column, and no NUL in any text column."""
    unknown = set(checks) - {column.name for column in columns}
    if unknown:
        raise ValueError(f"{name}: checks for columns it does not have: {sorted(unknown)}")
    single_key = unique[0] if len(unique) == 1 else None
    return pa.DataFrameSchema(
        {
            column.name: pa.Column(
                column.dtype,
                nullable=column.nullable,
                unique=column.name == single_key,
                checks=[
                    *checks.get(column.name, ()),
                    *((NO_NUL_CHECK,) if column.dtype == pl.Utf8 else ()),
                ],
            )
            for column in columns
        },
        checks=list(frame_checks),
        unique=list(unique) if len(unique) > 1 else None,
        strict=True,
        name=name,
    )


CONNECTIONS_SCHEMA = registry_schema(
    CONNECTIONS,
    CONNECTIONS_COLUMNS,
    CONNECTION_CHECKS,
    unique=("connection_key",),
    frame_checks=(
        pa.Check(
            _live_rows_are_complete,
            name="live_rows_are_complete",
            error="a live row needs a connection_id, an entity count and a status",
        ),
        pa.Check(
            _staged_rows_are_open_sessions,
            name="staged_rows_are_open_sessions",
            error="a staged row has no connection_id and an unexpired session",
        ),
        pa.Check(
            _disconnected_rows_are_dated,
            name="disconnected_rows_are_dated",
            error="a disconnected row needs a connection_id and disconnected_at",
        ),
    ),
)
ENTITIES_SCHEMA = registry_schema(
    CONNECTION_ENTITIES,
    CONNECTION_ENTITIES_COLUMNS,
    ENTITY_CHECKS,
    unique=("connection_id", "entity_id"),
)
