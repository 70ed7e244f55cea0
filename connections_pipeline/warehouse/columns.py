"""The warehouse's column lists: one place for names, Polars dtypes and nullability.

Transform code imports these constants to build frames with exactly the schema the loader
expects; `tables.py` derives the SQL tables from the same lists, so the two cannot drift.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import polars as pl

UTC_DATETIME = pl.Datetime("us", "UTC")


class Column(NamedTuple):
    """One warehouse column: its name, its Polars dtype and whether it may be null."""

    name: str
    dtype: pl.DataType
    nullable: bool = True


def _text(name: str, nullable: bool = True) -> Column:
    return Column(name, pl.Utf8(), nullable)


def _int(name: str, nullable: bool = True) -> Column:
    return Column(name, pl.Int32(), nullable)


def _float(name: str, nullable: bool = True) -> Column:
    return Column(name, pl.Float64(), nullable)


def _bool(name: str, nullable: bool = True) -> Column:
    return Column(name, pl.Boolean(), nullable)


def _ts(name: str, nullable: bool = True) -> Column:
    return Column(name, UTC_DATETIME, nullable)


CONNECTIONS = "finch_connections"
CONNECTIONS_HISTORY = "finch_connections_history"
CONNECTION_ENTITIES = "finch_connection_entities"
TOKENS = "finch_tokens"
SYNC_RUNS = "finch_sync_runs"
QUARANTINE = "finch_quarantine"
RAW_RESPONSES = "finch_raw_responses"
CONNECT_SESSIONS = "finch_connect_sessions"
WEBHOOK_EVENTS = "finch_webhook_events"

CONNECTIONS_COLUMNS: tuple[Column, ...] = (
    _text("connection_key", nullable=False),
    _text("state", nullable=False),
    _text("connection_id"),
    _text("session_id"),
    _text("company_name"),
    _text("company_id"),
    _text("customer_name"),
    _text("customer_id"),
    _text("customer_email"),
    _int("entity_count"),
    _text("connection_status"),
    # The Dashboard's label of connection_status: "Re-auth" for `reauth`, and so on.
    _text("connection_status_label"),
    _bool("needs_action", nullable=False),
    _ts("last_synced_at"),
    _text("connection_type"),
    _int("expected_refresh_hours"),
    _bool("sync_overdue", nullable=False),
    _ts("connected_at"),
    _text("provider_id"),
    _text("provider_name"),
    _text("products"),
    _ts("session_expires_at"),
    _int("token_count"),
    _text("working_token_fingerprint"),
    _ts("first_seen_at", nullable=False),
    _ts("last_seen_at", nullable=False),
    _ts("disconnected_at"),
    _ts("company_fetched_at"),
    # True while `company_name` is the entity name from `/introspect` because the company
    # lookup is still due (spread over runs by the company share); false once Finch's
    # `/employer/company` answered, or when none is needed.
    _bool("company_name_pending", nullable=False),
    _text("last_error"),
    # True when this run could not refresh the row (its token failed): the values are the
    # last ones Finch gave, `last_error` says why.
    _bool("stale", nullable=False),
    _text("run_id", nullable=False),
)

# Attributes whose change opens a new history version. Everything else in the snapshot
# (sync times, overdue flag, seen times, errors) moves on every run and would flood history.
TRACKED_ATTRIBUTES: tuple[str, ...] = (
    "state",
    "connection_id",
    "session_id",
    "company_name",
    "company_id",
    "customer_name",
    "customer_id",
    "customer_email",
    "entity_count",
    "connection_status",
    "needs_action",
    "connection_type",
    "provider_id",
    "provider_name",
    "products",
)

_CONNECTION_DTYPES = {column.name: column for column in CONNECTIONS_COLUMNS}

CONNECTIONS_HISTORY_COLUMNS: tuple[Column, ...] = (
    _text("connection_key", nullable=False),
    _ts("valid_from", nullable=False),
    _ts("valid_to"),
    _bool("is_current", nullable=False),
    _text("run_id", nullable=False),
    *(_CONNECTION_DTYPES[name] for name in TRACKED_ATTRIBUTES),
)

CONNECTION_ENTITIES_COLUMNS: tuple[Column, ...] = (
    _text("connection_id", nullable=False),
    _text("entity_id", nullable=False),
    _text("entity_name"),
    _text("source_id"),
    _text("entity_status"),
    _text("run_id", nullable=False),
)

TOKENS_COLUMNS: tuple[Column, ...] = (
    _text("token_fingerprint", nullable=False),
    _text("connection_id"),
    _ts("first_seen_at", nullable=False),
    _ts("last_seen_at", nullable=False),
    _text("last_outcome"),
    _ts("last_ok_at"),
    # Why the token's last /introspect did not answer ok (null when it did).
    _text("last_error"),
)

SYNC_RUNS_COLUMNS: tuple[Column, ...] = (
    _text("run_id", nullable=False),
    _ts("started_at"),
    _ts("finished_at"),
    _ts("as_of", nullable=False),
    _float("duration_seconds"),
    _int("tokens"),
    _int("live"),
    _int("staged"),
    _int("disconnected"),
    _int("quarantined"),
    _int("requests"),
    _int("retries"),
    _int("rate_limited"),
    _int("invalid_tokens"),
    # Live connections whose status is `reauth`, and all live connections needing action.
    _int("needs_reauth"),
    _int("needs_action"),
    # Tokens whose /introspect answered 401 authentication_error (reauthenticate_user).
    _int("reauth_tokens"),
    _int("failed_tokens"),
    # success, partial, held or failed (RUN_STATUSES); status_reason says why when not success.
    _text("status"),
    _text("status_reason"),
    _bool("accepted_mass_change"),
    _int("previous_live"),
    _int("leaving_live"),
    _int("newly_invalid_tokens"),
    _int("other_application_tokens"),
    _int("failed_followups"),
    _int("source_rows_rejected"),
    _int("source_duplicate_rows"),
    # Coverage: tokens left for a later run (budget, deadline, a targeted run), those of them
    # no run has observed yet, how long the longest-waiting observed one has gone unobserved,
    # and company names still to fetch.
    _int("tokens_deferred"),
    _int("tokens_never_observed"),
    _float("oldest_observation_age_hours"),
    _int("company_names_pending"),
)

# What a sync run came to. `success`: every token answered. `partial`: some calls failed after
# retries; their connections keep the previous row, marked stale. `held`: the snapshot was
# implausible and not loaded. `failed`: the run stopped with an error. Only `success` and
# `partial` runs loaded a snapshot.
RUN_SUCCESS, RUN_PARTIAL, RUN_HELD, RUN_FAILED = "success", "partial", "held", "failed"
RUN_STATUSES: tuple[str, ...] = (RUN_SUCCESS, RUN_PARTIAL, RUN_HELD, RUN_FAILED)
LOADED_STATUSES: tuple[str, ...] = (RUN_SUCCESS, RUN_PARTIAL)

QUARANTINE_COLUMNS: tuple[Column, ...] = (
    _text("run_id", nullable=False),
    _text("record_kind", nullable=False),
    _text("record_key"),
    _text("reason", nullable=False),
    _text("payload"),
    _ts("quarantined_at"),
)

RAW_RESPONSES_COLUMNS: tuple[Column, ...] = (
    _text("run_id", nullable=False),
    _text("endpoint", nullable=False),
    _text("token_fingerprint"),
    _text("connection_id"),
    _ts("fetched_at"),
    _text("outcome"),
    _int("status_code"),
    _text("error_name"),
    _text("finch_code"),
    _text("request_id"),
    _text("body"),
    # Why the call failed, for failures no Finch error body names (timeouts, dropped
    # connections, malformed bodies) as much as for those it does.
    _text("failure_reason"),
)

SESSION_PROGRESS_COLUMNS: tuple[str, ...] = (
    "status",
    "connection_id",
    "completed_at",
    "time_to_connect_seconds",
    "status_updated_at",
)

CONNECT_SESSIONS_COLUMNS: tuple[Column, ...] = (
    _text("session_id", nullable=False),
    _text("connect_url"),
    _text("customer_id"),
    _text("customer_name"),
    _text("customer_email"),
    _text("products"),
    _text("redirect_uri"),
    _text("provider_id"),
    _text("auth_method"),
    _bool("manual"),
    _text("sandbox"),
    _int("minutes_to_expire"),
    _text("kind"),
    _text("reauth_connection_id"),
    _ts("created_at"),
    _ts("expires_at"),
    _text("created_by"),
    _text("status"),
    _text("connection_id"),
    _ts("completed_at"),
    _float("time_to_connect_seconds"),
    _ts("status_updated_at"),
)

# The webhook inbox: one row per Finch event ID, written by the receiver once the delivery's
# signature checked out, and marked processed by the sync run that asked Finch about it. Only
# the connection ID and the event type are acted on; `status` is what the event claimed, kept
# for diagnosis, never loaded as the connection's status.
WEBHOOK_EVENTS_COLUMNS: tuple[Column, ...] = (
    _text("event_id", nullable=False),
    _text("event_type", nullable=False),
    _text("connection_id"),
    _text("entity_id"),
    _text("status"),
    # Finch's `finch-timestamp` header, and when the receiver stored the event.
    _ts("finch_timestamp", nullable=False),
    _ts("received_at", nullable=False),
    _ts("processed_at"),
    _text("processed_by_run"),
    # What processing came to (WEBHOOK_OUTCOMES); null while the event waits.
    _text("outcome"),
)

# `synced`: a targeted sync asked Finch about the event's connection and loaded its answer.
# `unknown_connection`: the token source holds no token of that connection, so nothing could
# be asked (and nothing is invented). `reconciled`: a full sync that started after the event
# arrived asked Finch about its connection. `ignored`: an event the Connections page does
# not depend on (another type, or no connection ID).
(
    WEBHOOK_SYNCED,
    WEBHOOK_UNKNOWN_CONNECTION,
    WEBHOOK_RECONCILED,
    WEBHOOK_IGNORED,
) = "synced", "unknown_connection", "reconciled", "ignored"
WEBHOOK_OUTCOMES: tuple[str, ...] = (
    WEBHOOK_SYNCED,
    WEBHOOK_UNKNOWN_CONNECTION,
    WEBHOOK_RECONCILED,
    WEBHOOK_IGNORED,
)

TABLE_COLUMNS: Mapping[str, tuple[Column, ...]] = MappingProxyType(
    {
        CONNECTIONS: CONNECTIONS_COLUMNS,
        CONNECTIONS_HISTORY: CONNECTIONS_HISTORY_COLUMNS,
        CONNECTION_ENTITIES: CONNECTION_ENTITIES_COLUMNS,
        TOKENS: TOKENS_COLUMNS,
        SYNC_RUNS: SYNC_RUNS_COLUMNS,
        QUARANTINE: QUARANTINE_COLUMNS,
        RAW_RESPONSES: RAW_RESPONSES_COLUMNS,
        CONNECT_SESSIONS: CONNECT_SESSIONS_COLUMNS,
        WEBHOOK_EVENTS: WEBHOOK_EVENTS_COLUMNS,
    }
)

# Primary keys; the log-like tables (quarantine, raw responses) have none and are replaced
# per run_id instead.
PRIMARY_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        CONNECTIONS: ("connection_key",),
        CONNECTIONS_HISTORY: ("connection_key", "valid_from"),
        CONNECTION_ENTITIES: ("connection_id", "entity_id"),
        TOKENS: ("token_fingerprint",),
        SYNC_RUNS: ("run_id",),
        QUARANTINE: (),
        RAW_RESPONSES: (),
        CONNECT_SESSIONS: ("session_id",),
        WEBHOOK_EVENTS: ("event_id",),
    }
)

# Columns a caller may leave out of a frame because the loader fills them (with the run_id).
LOADER_FILLED: frozenset[str] = frozenset({"run_id"})


def columns_of(table_name: str) -> tuple[Column, ...]:
    """The column list of a warehouse table; ValueError for an unknown name."""
    try:
        return TABLE_COLUMNS[table_name]
    except KeyError:
        known = ", ".join(sorted(TABLE_COLUMNS))
        raise ValueError(f"unknown warehouse table {table_name!r}; known: {known}") from None


def polars_schema(table_name: str) -> pl.Schema:
    """The Polars schema (ordered names and dtypes) of a warehouse table."""
    return pl.Schema([(column.name, column.dtype) for column in columns_of(table_name)])


def empty_frame(table_name: str) -> pl.DataFrame:
    """A frame with no rows and exactly the columns and dtypes of `table_name`."""
    return pl.DataFrame(schema=polars_schema(table_name))


def conform(
    frame: pl.DataFrame,
    table_name: str,
    fill: Mapping[str, object] | None = None,
    *,
    only: tuple[str, ...] | None = None,
    missing_as_null: bool = False,
) -> pl.DataFrame:
    """Return `frame` with exactly the table's columns, in order, cast to the table's dtypes.

    Args:
        frame: the caller's frame; extra columns are an error, so a misspelt column name
            cannot be silently dropped.
        table_name: a key of TABLE_COLUMNS.
        fill: literal values for columns the loader owns (e.g. run_id); they replace
            whatever the frame holds in those columns.
        only: conform to these columns of the table (in this order) instead of all.
        missing_as_null: fill absent nullable columns with nulls instead of failing.

    Returns:
        The conformed frame. Datetimes are converted to UTC; naive datetimes are rejected
        because their instant is unknown.
    """
    columns = columns_of(table_name)
    if only is not None:
        by_name = {column.name: column for column in columns}
        columns = tuple(by_name[name] for name in only)
    fill = dict(fill or {})
    names = {column.name for column in columns}
    extra = [name for name in frame.columns if name not in names]
    if extra:
        raise ValueError(f"{table_name}: unexpected columns {extra}")
    missing = [
        column.name
        for column in columns
        if column.name not in frame.columns
        and column.name not in fill
        and not (missing_as_null and column.nullable)
    ]
    if missing:
        raise ValueError(f"{table_name}: missing columns {missing}")
    expressions = []
    for column in columns:
        if column.name in fill:
            expressions.append(pl.lit(fill[column.name], dtype=column.dtype).alias(column.name))
            continue
        if column.name not in frame.columns:
            expressions.append(pl.lit(None, dtype=column.dtype).alias(column.name))
            continue
        source = frame.schema[column.name]
        expression = pl.col(column.name)
        if isinstance(column.dtype, pl.Datetime):
            if isinstance(source, pl.Datetime):
                if source.time_zone is None:
                    raise ValueError(
                        f"{table_name}.{column.name}: naive datetimes are ambiguous; "
                        "use timezone-aware UTC (pl.Datetime('us', 'UTC'))"
                    )
                expression = expression.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
            elif source != pl.Null:
                raise ValueError(
                    f"{table_name}.{column.name}: expected a UTC datetime, got {source}"
                )
        expressions.append(expression.cast(column.dtype, strict=True).alias(column.name))
    return frame.select(expressions)


def duplicated_keys(frame: pl.DataFrame, keys: tuple[str, ...]) -> list:
    """Up to five key values that occur more than once in `frame`."""
    duplicated = frame.select(keys).filter(pl.struct(keys).is_duplicated())
    return duplicated.unique(maintain_order=True).head(5).rows()
