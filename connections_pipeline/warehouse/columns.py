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
    """One warehouse column: its name, its Polars dtype, whether it may be null, and what it
    holds (the column's description in Dagster's UI)."""

    name: str
    dtype: pl.DataType
    nullable: bool = True
    description: str = ""


def _text(name: str, description: str, nullable: bool = True) -> Column:
    return Column(name, pl.Utf8(), nullable, description)


def _int(name: str, description: str, nullable: bool = True) -> Column:
    return Column(name, pl.Int32(), nullable, description)


def _bigint(name: str, description: str, nullable: bool = True) -> Column:
    return Column(name, pl.Int64(), nullable, description)


def _float(name: str, description: str, nullable: bool = True) -> Column:
    return Column(name, pl.Float64(), nullable, description)


def _bool(name: str, description: str, nullable: bool = True) -> Column:
    return Column(name, pl.Boolean(), nullable, description)


def _ts(name: str, description: str, nullable: bool = True) -> Column:
    return Column(name, UTC_DATETIME, nullable, description)


CONNECTIONS = "finch_connections"
CONNECTIONS_HISTORY = "finch_connections_history"
CONNECTION_ENTITIES = "finch_connection_entities"
TOKENS = "finch_tokens"
SYNC_RUNS = "finch_sync_runs"
QUARANTINE = "finch_quarantine"
RAW_RESPONSES = "finch_raw_responses"
CONNECT_SESSIONS = "finch_connect_sessions"
WEBHOOK_EVENTS = "finch_webhook_events"
CONNECTION_ROW_HASHES = "finch_connection_row_hashes"
NOTIFICATIONS = "finch_notifications"
NEEDS_ACTION_NOTIFIED = "finch_needs_action_notified"

CONNECTIONS_COLUMNS: tuple[Column, ...] = (
    _text("connection_key", "Connection ID, or the session ID of a staged row", nullable=False),
    _text("state", "live, staged or disconnected: the Connections page's tab", nullable=False),
    _text("connection_id", "Finch's connection ID (blank when staged)"),
    _text("session_id", "The Connect session that created or stages the connection"),
    _text(
        "company_name",
        "Legal name from the payroll system; 'Multi-entity connection' for several entities",
    ),
    _text("company_id", "Finch's company ID"),
    _text("customer_name", "customer_name given when the Connect session was created"),
    _text("customer_id", "customer_id given when the Connect session was created"),
    _text("customer_email", "customer_email given when the Connect session was created"),
    _int("entity_count", "Number of connected entities (1 for single-entity)"),
    _text(
        "connection_status",
        "Finch's status code (reauth, error_permissions, ...); disconnected when disconnected",
    ),
    # The Dashboard's label of connection_status: "Re-auth" for `reauth`, and so on.
    _text(
        "connection_status_label",
        "The Dashboard's label of connection_status (Connected, Re-auth, ...)",
    ),
    _bool(
        "needs_action",
        "True when the employer must act (re-auth or an error); such rows stay Live",
        nullable=False,
    ),
    _ts("last_synced_at", "When Finch's most recent sync of the connection completed (UTC)"),
    _text(
        "connection_type",
        "Automated, Assisted or 'Automated, Assisted', from the authentication methods",
    ),
    _int(
        "expected_refresh_hours", "How often Finch refreshes it: 24 (Automated) or 168 (Assisted)"
    ),
    _bool(
        "sync_overdue",
        "True when last_synced_at is older than the expected refresh, by Finch's clock",
        nullable=False,
    ),
    _ts("connected_at", "When the connection was created (UTC)"),
    _text("provider_id", "Finch's ID of the payroll provider"),
    _text("provider_name", "The payroll provider's display name"),
    _text("products", "Finch products granted, comma-separated"),
    _ts("session_expires_at", "When the staged Connect session expires (UTC)"),
    _int("token_count", "Access tokens known for the connection"),
    _text(
        "working_token_fingerprint",
        "Short SHA-256 fingerprint of the token that answered; never the token",
    ),
    _ts("first_seen_at", "First sync that saw the row (UTC)", nullable=False),
    _ts("last_seen_at", "Last sync that saw the row (UTC)", nullable=False),
    _ts("disconnected_at", "First sync that saw the connection disconnected (UTC)"),
    # Not disconnected (nothing proves it): the application stopped listing its tokens, so
    # no run can refresh the row; `stale` is true and `last_error` says so meanwhile.
    _ts(
        "left_source_at",
        "First sync that found no token of the connection in the token source (e.g. the "
        "customer offboarded): the row is no longer refreshed; null while the source lists one",
    ),
    _ts("company_fetched_at", "When the company name was last read from Finch (UTC)"),
    _bool(
        "company_name_pending",
        "True while company_name is the entity name from /introspect: Finch's legal name "
        "is still to be fetched (company names are spread over runs)",
        nullable=False,
    ),
    _text("last_error", "Why the last call for it did not answer ok, if it did not"),
    # True when this run could not refresh the row (its token failed): the values are the
    # last ones Finch gave, `last_error` says why.
    _bool(
        "stale",
        "True when the last run could not refresh the row: its values are the last Finch gave",
        nullable=False,
    ),
    _text("run_id", "The sync run that last changed the row", nullable=False),
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
    _text("connection_key", "Connection ID, or the session ID of a staged row", nullable=False),
    _ts("valid_from", "Start of this version (the sync that opened it)", nullable=False),
    _ts("valid_to", "End of this version; null while current"),
    _bool("is_current", "True for the connection's current version", nullable=False),
    _text("run_id", "The sync run that opened this version", nullable=False),
    *(_CONNECTION_DTYPES[name] for name in TRACKED_ATTRIBUTES),
)

CONNECTION_ENTITIES_COLUMNS: tuple[Column, ...] = (
    _text("connection_id", "The live connection the entity belongs to", nullable=False),
    _text("entity_id", "Finch's entity ID", nullable=False),
    _text("entity_name", "The entity's name from /introspect"),
    _text("source_id", "The entity's ID in the payroll system"),
    _text("entity_status", "The entity's status (connected, disconnected, ...)"),
    _text("run_id", "The sync run that wrote the row", nullable=False),
)

TOKENS_COLUMNS: tuple[Column, ...] = (
    _text(
        "token_fingerprint",
        "Short SHA-256 fingerprint of the access token; never the token",
        nullable=False,
    ),
    _text("connection_id", "The connection the token belongs to, when known"),
    _ts("first_seen_at", "First sync that read the token (UTC)", nullable=False),
    _ts("last_seen_at", "Last sync that read the token (UTC)", nullable=False),
    _text(
        "last_outcome", "Outcome of the token's last /introspect (ok, invalid_token, failed, ...)"
    ),
    _ts("last_ok_at", "Last time the token answered ok (UTC)"),
    # Why the token's last /introspect did not answer ok (null when it did).
    _text("last_error", "Why the token's last /introspect did not answer ok (null when it did)"),
)

SYNC_RUNS_COLUMNS: tuple[Column, ...] = (
    _text("run_id", "The Dagster run ID of the sync", nullable=False),
    _ts("started_at", "When the sync started (UTC)"),
    _ts("finished_at", "When the sync finished (UTC)"),
    _ts("as_of", "Finch's clock (its Date header) when the sync ran (UTC)", nullable=False),
    _text(
        "as_of_clock",
        "Whose clock as_of is (Finch's, an emulator's simulated one, or this machine's) and "
        "the Date headers ignored, missing or unreadable",
    ),
    _float("duration_seconds", "Wall time of the sync"),
    _int("tokens", "Access tokens read from the token source"),
    _int("live", "Live connections in the snapshot"),
    _int("staged", "Staged sessions in the snapshot"),
    _int("disconnected", "Disconnected connections in the snapshot"),
    _int("quarantined", "Records quarantined by the run"),
    _int("requests", "Requests sent to Finch"),
    _int("retries", "Requests retried"),
    _int("rate_limited", "Answers 429 (rate limited)"),
    _int("invalid_tokens", "Tokens answering 401 invalid_token_error"),
    # Live connections whose status is `reauth`, and all live connections needing action.
    _int("needs_reauth", "Live connections in reauth"),
    _int("needs_action", "Live connections needing action"),
    # Tokens whose /introspect answered 401 authentication_error (reauthenticate_user).
    _int("reauth_tokens", "Tokens whose /introspect answered 401 authentication_error"),
    _int("failed_tokens", "Tokens without a usable answer after retries"),
    # success, partial, held or failed (RUN_STATUSES); status_reason says why when not success.
    _text("status", "success, partial, held or failed"),
    _text("status_reason", "Why the run is not success"),
    _bool("accepted_mass_change", "True when a person accepted an implausible change"),
    _int("previous_live", "Live connections before the run"),
    _int("leaving_live", "Live connections the run would move out of Live"),
    _int(
        "leaving_source",
        "Live connections whose every token left the token source in this run (kept, stale)",
    ),
    _int("newly_invalid_tokens", "Tokens answering 401 as news"),
    _int("other_application_tokens", "Tokens belonging to another Finch application"),
    _int("failed_followups", "Failed /jobs/automated and /employer/company calls"),
    _int("source_rows_rejected", "Token and session source rows that could not be used"),
    _int("source_duplicate_rows", "Source rows repeating a token exactly, merged"),
    # Coverage: tokens left for a later run (budget, deadline, a targeted run), those of them
    # no run has observed yet, how long the longest-waiting observed one has gone unobserved,
    # and company names still to fetch.
    _int("tokens_deferred", "Tokens left for a later run (budget, deadline, targeted run)"),
    _int("tokens_never_observed", "Deferred tokens no run has observed yet"),
    _float(
        "oldest_observation_age_hours",
        "How long the longest-waiting deferred token has gone unobserved",
    ),
    _int("company_names_pending", "Live rows still showing the entity name for the company"),
)

# What a sync run came to. `success`: every token answered. `partial`: some calls failed after
# retries; their connections keep the previous row, marked stale. `held`: the snapshot was
# implausible and not loaded. `failed`: the run stopped with an error. Only `success` and
# `partial` runs loaded a snapshot.
RUN_SUCCESS, RUN_PARTIAL, RUN_HELD, RUN_FAILED = "success", "partial", "held", "failed"
RUN_STATUSES: tuple[str, ...] = (RUN_SUCCESS, RUN_PARTIAL, RUN_HELD, RUN_FAILED)
LOADED_STATUSES: tuple[str, ...] = (RUN_SUCCESS, RUN_PARTIAL)

QUARANTINE_COLUMNS: tuple[Column, ...] = (
    _text("run_id", "The sync run that quarantined the record", nullable=False),
    _text(
        "record_kind",
        "introspection, connection, entity, token_source_row or session_source_row",
        nullable=False,
    ),
    _text("record_key", "The record's key (a source row's token fingerprint, never the token)"),
    _text(
        "reason",
        "Why the record could not be loaded (a source row's file and line)",
        nullable=False,
    ),
    _text("payload", "The record as JSON, without the token or fields named like secrets"),
    _ts("quarantined_at", "When it was quarantined (UTC)"),
)

RAW_RESPONSES_COLUMNS: tuple[Column, ...] = (
    _text("run_id", "The sync run that made the call", nullable=False),
    _text(
        "endpoint",
        "The Finch call: introspect, jobs, company or providers",
        nullable=False,
    ),
    _text("token_fingerprint", "Fingerprint of the token used; never the token"),
    _text("connection_id", "The connection the answer is about, when known"),
    _ts("fetched_at", "When the answer arrived (UTC)"),
    _text("outcome", "ok, or the kind of failure"),
    _int("status_code", "HTTP status of the answer"),
    _text("error_name", "Finch's error name, for an error answer"),
    _text("finch_code", "Finch's finch_code, for an error answer"),
    _text("request_id", "Finch-Request-Id of the answer"),
    _text("body", "The answer's JSON body"),
    # Why the call failed, for failures no Finch error body names (timeouts, dropped
    # connections, malformed bodies) as much as for those it does.
    _text(
        "failure_reason",
        "Why the call failed (timeouts, dropped connections, malformed bodies too)",
    ),
)

SESSION_PROGRESS_COLUMNS: tuple[str, ...] = (
    "status",
    "connection_id",
    "completed_at",
    "time_to_connect_seconds",
    "status_updated_at",
)

CONNECT_SESSIONS_COLUMNS: tuple[Column, ...] = (
    _text("session_id", "Finch's Connect session ID", nullable=False),
    _text("connect_url", "The Connect link sent to the employer"),
    _text("customer_id", "customer_id of the session"),
    _text("customer_name", "customer_name of the session"),
    _text("customer_email", "customer_email of the session"),
    _text("products", "Products asked for, comma-separated"),
    _text("redirect_uri", "Where Finch Connect sends the employer afterwards"),
    _text("provider_id", "Provider preselected for the session"),
    _text("auth_method", "Authentication method preselected"),
    _bool("manual", "Manual-only flow"),
    _text("sandbox", "finch or provider (Finch sandbox applications)"),
    _int("minutes_to_expire", "Lifetime asked for the link"),
    _text("kind", "connect or reauthenticate"),
    _text("reauth_connection_id", "The connection a reauthenticate session is for"),
    _ts("created_at", "When the session was created (UTC)"),
    _ts("expires_at", "When the link expires (UTC)"),
    _text("created_by", "Who created it: `cli`, `dagster:<run id>` or the application"),
    _text("status", "pending, completed, expired or unknown"),
    _text("connection_id", "The connection the session completed into"),
    _ts("completed_at", "When that connection was made (UTC)"),
    _float("time_to_connect_seconds", "From session creation to connection"),
    _ts("status_updated_at", "When the status last changed (UTC)"),
)

# The re-auth queue: a table published for people and replaced whole by `finch_reauth_queue`,
# not one of the synced tables (it is outside TABLE_COLUMNS and the migrations).
REAUTH_QUEUE = "finch_reauth_queue"
REAUTH_QUEUE_TABLE_COLUMNS: tuple[Column, ...] = (
    _text("connection_id", "The live connection in reauth"),
    _text("company_name", "Its company name"),
    _text("customer_id", "The customer to contact: customer_id of the connection"),
    _text("customer_name", "The customer's name"),
    _text("customer_email", "The customer's email"),
    _text("provider_name", "The payroll provider's display name"),
    _ts("reauth_since", "Since when the connection has been in reauth (UTC)"),
    _int("days_in_reauth", "Whole days in reauth, as of the snapshot"),
    _text("session_id", "The open reauthentication session"),
    _text("connect_url", "The reauthentication link to send"),
    _ts("link_expires_at", "When that link expires (UTC)"),
    _ts("as_of", "The snapshot the queue was built from (Finch's clock, UTC)"),
)

# The webhook inbox: one row per Finch event ID, written by the receiver once the delivery's
# signature checked out, and marked processed by the sync run that asked Finch about it. Only
# the connection ID and the event type are acted on; `status` is what the event claimed, kept
# for diagnosis, never loaded as the connection's status.
WEBHOOK_EVENTS_COLUMNS: tuple[Column, ...] = (
    _text("event_id", "Finch's event ID (the finch-event-id header)", nullable=False),
    _text("event_type", "account.updated, job.data_sync_all.completed, ...", nullable=False),
    _text("connection_id", "The connection the event names (acted on)"),
    _text("entity_id", "The entity the event names (kept, not acted on)"),
    _text("status", "The status an account.updated claimed (kept, not loaded)"),
    _ts("finch_timestamp", "Finch's finch-timestamp header", nullable=False),
    _ts("received_at", "When the receiver stored the event", nullable=False),
    _ts("processed_at", "When a sync marked the event processed; null while it waits"),
    _text("processed_by_run", "The Dagster run that processed the event"),
    _text("outcome", "synced, unknown_connection, reconciled or ignored; null while it waits"),
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

# The loader's own bookkeeping: a hash of each finch_connections row's content, so a run
# reads back only the rows whose hash changed instead of the whole table. A hash is only a
# filter: rows it flags are compared column by column before anything is written.
CONNECTION_ROW_HASHES_COLUMNS: tuple[Column, ...] = (
    _text("connection_key", "The finch_connections row", nullable=False),
    _bigint("row_hash", "Hash of the row's content (run_id aside)", nullable=False),
)

# The notification outbox: one row per message and destination, written before anything is
# sent, so a message that cannot be sent now is neither lost nor sent twice. The destination
# is a fingerprint of its URL (the URL holds secrets and stays in the settings).
NOTIFICATIONS_COLUMNS: tuple[Column, ...] = (
    _text(
        "notification_id",
        "What the message is about and where it goes: kind, subject key, destination",
        nullable=False,
    ),
    _text(
        "channel",
        "runs, needs_action or exports: the setting naming its destinations",
        nullable=False,
    ),
    _text("kind", "held, failed, partial, stale, digest, export or report", nullable=False),
    _text(
        "destination",
        "Short SHA-256 fingerprint of the destination URL; never the URL",
        nullable=False,
    ),
    _text("run_id", "The Dagster run the message is about"),
    _text("subject", "The message's title", nullable=False),
    _text("body", "The message's text", nullable=False),
    _text("attachments", "JSON list of the files (paths or object URLs) it carries"),
    _ts("created_at", "When it was queued (UTC)", nullable=False),
    _int("attempts", "Delivery attempts so far", nullable=False),
    _ts("last_attempt_at", "When delivery was last tried (UTC)"),
    _text("last_error", "Why the last attempt failed, if it did"),
    _ts("sent_at", "When it was delivered (UTC); null while it waits"),
    _ts("claimed_until", "A sender is delivering it until then (UTC)"),
)

# The connections the needs-action digest last announced as needing action: the digest
# names what changed since, so the table moves only in the transaction that queues it.
NEEDS_ACTION_NOTIFIED_COLUMNS: tuple[Column, ...] = (
    _text("connection_key", "The finch_connections row announced", nullable=False),
    _text("connection_id", "Its connection ID"),
    _ts("announced_at", "When the digest that named it was queued (UTC)", nullable=False),
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
        CONNECTION_ROW_HASHES: CONNECTION_ROW_HASHES_COLUMNS,
        NOTIFICATIONS: NOTIFICATIONS_COLUMNS,
        NEEDS_ACTION_NOTIFIED: NEEDS_ACTION_NOTIFIED_COLUMNS,
    }
)

# Primary keys; the log-like tables (quarantine, raw responses) have none and are replaced
# per run_id instead, and the loader's row hashes need none.
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
        # No index to maintain: the table is read whole and written with the current table.
        CONNECTION_ROW_HASHES: (),
        NOTIFICATIONS: ("notification_id",),
        NEEDS_ACTION_NOTIFIED: ("connection_key",),
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


def check_row(table_name: str, row: Mapping[str, object]) -> dict[str, object]:
    """One row for a single-row write, as the table's column -> value (absent nullable
    columns null); ValueError naming the table for an unknown column or a missing value of
    a NOT NULL one."""
    columns = columns_of(table_name)
    names = {column.name for column in columns}
    extra = sorted(set(row) - names)
    missing = [c.name for c in columns if not c.nullable and row.get(c.name) is None]
    if extra or missing:
        raise ValueError(f"{table_name}: unexpected {extra}, missing {missing}")
    return {column.name: row.get(column.name) for column in columns}


def duplicated_keys(frame: pl.DataFrame, keys: tuple[str, ...]) -> list:
    """Up to five key values that occur more than once in `frame`."""
    duplicated = frame.select(keys).filter(pl.struct(keys).is_duplicated())
    return duplicated.unique(maintain_order=True).head(5).rows()
