"""Pandera (Polars) models for the normalized tables, with the Dashboard's state rules.

Beyond the business rules, a row must be storable as it is: its text holds no NUL character
(PostgreSQL text cannot), its keys fit a B-tree index, and the times Finch reports lie
between the Unix epoch and a day after the run (a year-0 or year-10000 time cannot be stored
or exported; a sync "completed" in 9999 would hide an overdue connection forever).
"""

from datetime import UTC as _UTC
from datetime import datetime, timedelta

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from connections_pipeline.transform import dashboard_rules as rules
from connections_pipeline.transform.parse import MAX_ID_CHARS, NUL
from connections_pipeline.transform.sessions import SESSION_STATUSES

UTC = pl.Datetime(time_unit="us", time_zone="UTC")
STATUSES = (*rules.CONNECTION_STATUSES, rules.DISCONNECTED_STATUS)
# Finch timestamps outside [EARLIEST_FINCH_TIME, last_seen_at + FINCH_CLOCK_SKEW] are absurd.
EARLIEST_FINCH_TIME = datetime(1970, 1, 1, tzinfo=_UTC)
FINCH_CLOCK_SKEW = timedelta(days=1)
# The JSON decoder turns an unpaired UTF-16 surrogate escape into NUL as well.
NO_NUL = "no NUL character (U+0000) or unpaired surrogate"
PLAUSIBLE_TIME = "a time between 1970-01-01 and a day after the run"
_KEY_LENGTH = {"max_value": MAX_ID_CHARS}

CONNECTION_TEXT_COLUMNS = (
    "connection_key",
    "connection_id",
    "session_id",
    "company_name",
    "company_id",
    "customer_name",
    "customer_id",
    "customer_email",
    "provider_id",
    "provider_name",
    "products",
)
ENTITY_TEXT_COLUMNS = ("connection_id", "entity_id", "entity_name", "source_id")


def _without_nul(data: PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(~pl.col(data.key).str.contains(NUL, literal=True).fill_null(False))


class ConnectionsSchema(pa.DataFrameModel):
    """One row of the Connections page; rules that make a row trustworthy enough to load."""

    connection_key: str = pa.Field(unique=True, str_length=_KEY_LENGTH)
    state: str = pa.Field(isin=rules.STATES)
    connection_id: str = pa.Field(nullable=True, str_length=_KEY_LENGTH)
    session_id: str = pa.Field(nullable=True, str_length=_KEY_LENGTH)
    company_name: str = pa.Field(nullable=True)
    company_id: str = pa.Field(nullable=True)
    customer_name: str = pa.Field(nullable=True)
    customer_id: str = pa.Field(nullable=True)
    customer_email: str = pa.Field(nullable=True)
    entity_count: pl.Int32 = pa.Field(ge=1, nullable=True)
    connection_status: str = pa.Field(isin=STATUSES, nullable=True)
    connection_status_label: str = pa.Field(
        isin=tuple(rules.CONNECTION_STATUS_LABELS.values()), nullable=True
    )
    needs_action: bool
    last_synced_at: UTC = pa.Field(nullable=True)
    connection_type: str = pa.Field(isin=rules.CONNECTION_TYPES, nullable=True)
    expected_refresh_hours: pl.Int32 = pa.Field(
        isin=(rules.AUTOMATED_REFRESH_HOURS, rules.ASSISTED_REFRESH_HOURS), nullable=True
    )
    sync_overdue: bool
    connected_at: UTC = pa.Field(nullable=True)
    provider_id: str = pa.Field(nullable=True)
    provider_name: str = pa.Field(nullable=True)
    products: str = pa.Field(nullable=True)
    session_expires_at: UTC = pa.Field(nullable=True)
    first_seen_at: UTC
    last_seen_at: UTC
    disconnected_at: UTC = pa.Field(nullable=True)
    stale: bool

    class Config:
        strict = False

    @pa.check(*CONNECTION_TEXT_COLUMNS, name="no_nul_character", error=NO_NUL)
    def text_has_no_nul(cls, data: PolarsData) -> pl.LazyFrame:
        return _without_nul(data)

    @pa.check("last_synced_at", "connected_at", name="plausible_finch_time", error=PLAUSIBLE_TIME)
    def finch_time_is_plausible(cls, data: PolarsData) -> pl.LazyFrame:
        moment = pl.col(data.key)
        latest = pl.col("last_seen_at") + pl.lit(FINCH_CLOCK_SKEW)
        plausible = (moment >= pl.lit(EARLIEST_FINCH_TIME).cast(UTC)) & (moment <= latest)
        return data.lazyframe.select(moment.is_null() | plausible.fill_null(False))

    @pa.dataframe_check(error="a live row needs a connection_id, an entity count and a status")
    def live_rows_are_complete(cls, data: PolarsData) -> pl.LazyFrame:
        state = pl.col("state")
        complete = (
            pl.col("connection_id").is_not_null()
            & pl.col("entity_count").is_not_null()
            & pl.col("connection_status").is_in(rules.CONNECTION_STATUSES)
        )
        return data.lazyframe.select(((state != rules.LIVE) | complete).fill_null(False))

    @pa.dataframe_check(error="a staged row has no connection_id and an unexpired session")
    def staged_rows_are_open_sessions(cls, data: PolarsData) -> pl.LazyFrame:
        open_session = (
            pl.col("connection_id").is_null()
            & pl.col("session_id").is_not_null()
            & (pl.col("session_expires_at") > pl.col("last_seen_at"))
        )
        return data.lazyframe.select(
            ((pl.col("state") != rules.STAGED) | open_session).fill_null(False)
        )

    @pa.dataframe_check(error="a disconnected row needs a connection_id and disconnected_at")
    def disconnected_rows_are_dated(cls, data: PolarsData) -> pl.LazyFrame:
        dated = pl.col("connection_id").is_not_null() & pl.col("disconnected_at").is_not_null()
        return data.lazyframe.select(
            ((pl.col("state") != rules.DISCONNECTED) | dated).fill_null(False)
        )


class EntitiesSchema(pa.DataFrameModel):
    connection_id: str = pa.Field(str_length=_KEY_LENGTH)
    entity_id: str = pa.Field(str_length=_KEY_LENGTH)
    entity_name: str = pa.Field(nullable=True)
    source_id: str = pa.Field(nullable=True)
    entity_status: str = pa.Field(
        isin=(*rules.CONNECTION_STATUSES, rules.DISCONNECTED_STATUS), nullable=True
    )

    class Config:
        strict = False
        unique = ["connection_id", "entity_id"]

    @pa.check(*ENTITY_TEXT_COLUMNS, name="no_nul_character", error=NO_NUL)
    def text_has_no_nul(cls, data: PolarsData) -> pl.LazyFrame:
        return _without_nul(data)


class SessionsSchema(pa.DataFrameModel):
    session_id: str = pa.Field(unique=True)
    customer_id: str = pa.Field(nullable=True, str_length={"min_value": 1, "max_value": 255})
    status: str = pa.Field(isin=SESSION_STATUSES)
    created_at: UTC
    expires_at: UTC

    class Config:
        strict = False
