"""Pandera (Polars) models for the normalized tables, with the Dashboard's state rules."""

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from connections_pipeline.transform import dashboard_rules as rules
from connections_pipeline.transform.sessions import SESSION_STATUSES

UTC = pl.Datetime(time_unit="us", time_zone="UTC")
STATUSES = (*rules.CONNECTION_STATUSES, rules.DISCONNECTED_STATUS)


class ConnectionsSchema(pa.DataFrameModel):
    """One row of the Connections page; rules that make a row trustworthy enough to load."""

    connection_key: str = pa.Field(unique=True)
    state: str = pa.Field(isin=rules.STATES)
    connection_id: str = pa.Field(nullable=True)
    session_id: str = pa.Field(nullable=True)
    company_name: str = pa.Field(nullable=True)
    company_id: str = pa.Field(nullable=True)
    customer_name: str = pa.Field(nullable=True)
    customer_id: str = pa.Field(nullable=True)
    customer_email: str = pa.Field(nullable=True)
    entity_count: pl.Int32 = pa.Field(ge=1, nullable=True)
    connection_status: str = pa.Field(isin=STATUSES, nullable=True)
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

    class Config:
        strict = False

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
    connection_id: str
    entity_id: str
    entity_name: str = pa.Field(nullable=True)
    source_id: str = pa.Field(nullable=True)
    entity_status: str = pa.Field(
        isin=(*rules.CONNECTION_STATUSES, rules.DISCONNECTED_STATUS), nullable=True
    )

    class Config:
        strict = False
        unique = ["connection_id", "entity_id"]


class SessionsSchema(pa.DataFrameModel):
    session_id: str = pa.Field(unique=True)
    customer_id: str = pa.Field(nullable=True, str_length={"min_value": 1, "max_value": 255})
    status: str = pa.Field(isin=SESSION_STATUSES)
    created_at: UTC
    expires_at: UTC

    class Config:
        strict = False
