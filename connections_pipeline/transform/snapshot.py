"""Build one run's Connections snapshot from raw responses, the token source and the past.

One row per `connection_id` (several tokens collapse into one connection; the freshest
working token wins) plus one row per staged Connect session.
"""

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from connections_pipeline import concepts
from connections_pipeline.concepts import KIND_CONNECT
from connections_pipeline.transform import dashboard_rules as rules
from connections_pipeline.transform.followups import wants_company_name
from connections_pipeline.transform.guards import (
    FAILED,
    OTHER_APPLICATION,
    Application,
    split_by_application,
)
from connections_pipeline.transform.parse import (
    UTC_DATETIME,
    FollowupBodies,
    followup_failures,
    freshest_per_connection,
    parse_introspections,
)
from connections_pipeline.transform.sessions import session_progress, staged_rows
from connections_pipeline.transform.token_frame import CONNECTION_DETAILS, SOURCE_DETAIL_COLUMNS

INVALID_TOKEN = "invalid_token"


@dataclass(frozen=True)
class SnapshotInputs:
    """Everything one run knows, as frames; see `connections_pipeline.warehouse` for columns.

    Args:
        run_id: the Dagster run building the snapshot.
        as_of: Finch's clock at extraction (its `Date` header), the time the snapshot shows.
        raw: this run's raw responses.
        token_source: token_fingerprint, source_connection_id, source_disconnected, issued_at.
        previous: `finch_connections` before this run.
        previous_tokens: `finch_tokens` before this run.
        sessions: the Connect-session ledger.
        application: the Finch application every token must belong to; another
            application's tokens never become connections.
        token_source_complete: `token_source` is all the source lists (a sync's read),
            so a known connection none of whose tokens it lists has left the source. False
            for a partial view (a replay, some tokens only), where absence means nothing.
        unreadable_tokens: fingerprints of source rows that could not be used: their
            tokens are still in the source.
    """

    run_id: str
    as_of: datetime
    raw: pl.DataFrame
    token_source: pl.DataFrame
    previous: pl.DataFrame
    previous_tokens: pl.DataFrame
    sessions: pl.DataFrame
    application: Application = field(default_factory=Application)
    token_source_complete: bool = False
    unreadable_tokens: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Snapshot:
    connections: pl.DataFrame
    entities: pl.DataFrame
    tokens: pl.DataFrame
    rejected: pl.DataFrame
    session_progress: pl.DataFrame


def build_snapshot(
    inputs: SnapshotInputs,
    columns: list[str],
    parsed_introspections: tuple[pl.DataFrame, pl.DataFrame] | None = None,
    followup_bodies: FollowupBodies | None = None,
) -> Snapshot:
    """Classify every connection and staged session; `columns` is the output column order.

    `parsed_introspections` is `parse_introspections(inputs.raw)`, and `followup_bodies`
    `FollowupBodies.of(inputs.raw)`, when the caller already has them (extraction decodes
    each body as it arrives and keeps none); otherwise they are computed here, and only
    then does `inputs.raw` need its `body` column.
    """
    as_of = pl.lit(inputs.as_of).cast(UTC_DATETIME)
    introspections, rejected = parsed_introspections or parse_introspections(inputs.raw)
    introspections, others = split_by_application(introspections, inputs.application)
    bodies = followup_bodies or FollowupBodies.of(inputs.raw)
    providers, companies = bodies.providers, bodies.companies
    tokens = _token_outcomes(inputs, introspections, others, as_of)
    live = _live_connections(inputs, introspections, tokens, bodies)
    carried = _carried_forward(inputs, live, tokens, providers, companies)
    connections = pl.concat([live, carried], how="diagonal_relaxed")
    progress = session_progress(inputs.sessions, connections, inputs.as_of)
    staged = staged_rows(progress, inputs.previous, providers)
    connections = pl.concat([connections, staged], how="diagonal_relaxed")
    connections = _with_session_links(connections, progress)
    connections = _with_derived_columns(connections, inputs, as_of)
    return Snapshot(
        connections=_conform(connections, columns).sort("connection_key"),
        entities=_entities(introspections, live, inputs.run_id),
        tokens=tokens.drop("source_disconnected", "issued_at"),
        rejected=rejected.with_columns(pl.lit("introspection").alias("record_kind")),
        session_progress=progress,
    )


def _token_outcomes(
    inputs: SnapshotInputs, introspections: pl.DataFrame, others: pl.DataFrame, as_of: pl.Expr
) -> pl.DataFrame:
    """One row per token called this run, mapped to its connection when anything knows it.

    A token of another application answered, but not for us: its outcome is
    `other_application` (with the reason), and its answer names no connection of ours.
    """
    calls = inputs.raw.filter(pl.col("endpoint") == "introspect").select(
        "token_fingerprint",
        pl.col("outcome").alias("last_outcome"),
        pl.col("failure_reason").alias("last_error"),
    )
    seen = introspections.select("token_fingerprint", pl.col("connection_id").alias("seen_id"))
    known = inputs.previous_tokens.select(
        "token_fingerprint",
        pl.col("connection_id").alias("known_id"),
        pl.col("first_seen_at").alias("known_first_seen_at"),
        pl.col("last_ok_at").alias("known_last_ok_at"),
    )
    source = inputs.token_source.select(
        "token_fingerprint",
        "source_connection_id",
        "source_disconnected",
        "issued_at",
    )
    foreign = others.select("token_fingerprint", pl.col("reason").alias("other_reason"))
    is_foreign = pl.col("other_reason").is_not_null()
    return (
        calls.lazy()
        .join(seen.lazy(), on="token_fingerprint", how="left")
        .join(known.lazy(), on="token_fingerprint", how="left")
        .join(source.lazy(), on="token_fingerprint", how="left")
        .join(foreign.lazy(), on="token_fingerprint", how="left")
        .select(
            "token_fingerprint",
            pl.coalesce("seen_id", "known_id", "source_connection_id").alias("connection_id"),
            pl.coalesce("known_first_seen_at", as_of).alias("first_seen_at"),
            as_of.alias("last_seen_at"),
            pl.when(is_foreign)
            .then(pl.lit(OTHER_APPLICATION))
            .otherwise("last_outcome")
            .alias("last_outcome"),
            pl.when(pl.col("seen_id").is_not_null())
            .then(as_of)
            .otherwise(pl.col("known_last_ok_at"))
            .alias("last_ok_at"),
            pl.coalesce("other_reason", "last_error").alias("last_error"),
            pl.col("source_disconnected").fill_null(False),
            "issued_at",
        )
        .collect(engine="in-memory")
    )


def _live_connections(
    inputs: SnapshotInputs,
    introspections: pl.DataFrame,
    tokens: pl.DataFrame,
    bodies: FollowupBodies,
) -> pl.DataFrame:
    blocked = _not_refreshable(inputs, introspections, tokens)
    freshest = freshest_per_connection(introspections.drop("entities"), tokens).filter(
        ~pl.col("connection_id").is_in(blocked.implode())
    )
    # A connection's first token is obtained when the employer connects; it stands in for
    # the connection time where Finch lists no automated jobs (assisted connections).
    token_counts = tokens.group_by("connection_id").agg(
        pl.len().cast(pl.Int32).alias("token_count"),
        pl.col("issued_at").min().alias("first_token_issued_at"),
    )
    previous = inputs.previous.select(
        "connection_id",
        pl.col("company_name").alias("prev_company_name"),
        pl.col("entity_count").alias("prev_entity_count"),
        pl.col("company_fetched_at").alias("prev_company_fetched_at"),
        pl.col("connected_at").alias("prev_connected_at"),
        pl.col("first_seen_at").alias("prev_first_seen_at"),
        pl.col("provider_name").alias("prev_provider_name"),
        pl.col("company_name_pending").fill_null(False).alias("prev_name_pending"),
    ).filter(pl.col("connection_id").is_not_null())
    first_entity_name = pl.col("first_entity_name")
    previous_legal_name = pl.when(
        (pl.col("prev_entity_count") == 1) & ~pl.col("prev_name_pending")
    ).then("prev_company_name")
    # Pending until Finch's legal name arrives: still due this run, or pending before and
    # not answerable now (e.g. in re-auth); the shown name meanwhile is the entity's.
    name_pending = (
        # Finch's legal name applies at all (whether it was due this run does not matter
        # once none is known), or it was pending before.
        (wants_company_name() | pl.col("prev_name_pending"))
        & pl.col("legal_name").is_null()
        & previous_legal_name.is_null()
    )
    previous_entity_name = pl.when(pl.col("prev_name_pending")).then("prev_company_name")
    return (
        # One lazy plan carries only the columns the final select needs. In memory: the
        # streaming engine (Polars 2's default for collect) is slower on joins this size.
        freshest.lazy()
        .join(token_counts.lazy(), on="connection_id", how="left")
        .join(bodies.companies.lazy(), on="connection_id", how="left")
        .join(bodies.connected_at.lazy(), on="connection_id", how="left")
        .join(followup_failures(inputs.raw).lazy(), on="connection_id", how="left")
        .join(previous.lazy(), on="connection_id", how="left")
        .join(bodies.providers.lazy(), on="provider_id", how="left")
        .select(
            pl.col("connection_id").alias("connection_key"),
            pl.lit(concepts.LIVE).alias("state"),
            "connection_id",
            rules.company_name(
                pl.col("entity_count"),
                pl.coalesce(
                    "legal_name", previous_legal_name, first_entity_name, previous_entity_name
                ),
            ).alias("company_name"),
            "company_id",
            "customer_name",
            "customer_id",
            "customer_email",
            "entity_count",
            "connection_status",
            "last_synced_at",
            "connection_type",
            pl.coalesce("connected_at", "prev_connected_at", "first_token_issued_at").alias(
                "connected_at"
            ),
            "provider_id",
            pl.coalesce("provider_name", "prev_provider_name").alias("provider_name"),
            "products",
            "token_count",
            pl.col("token_fingerprint").alias("working_token_fingerprint"),
            pl.col("prev_first_seen_at").alias("first_seen_at"),
            pl.coalesce("company_fetched_at", "prev_company_fetched_at").alias(
                "company_fetched_at"
            ),
            name_pending.alias("company_name_pending"),
            pl.lit(None, dtype=UTC_DATETIME).alias("disconnected_at"),
            pl.col("followup_error").alias("last_error"),
            pl.lit(False).alias("stale"),
        )
        .collect(engine="in-memory")
    )


def _not_refreshable(
    inputs: SnapshotInputs, introspections: pl.DataFrame, tokens: pl.DataFrame
) -> pl.Series:
    """Connections whose freshest token failed this run while an older one answered.

    The older token's answer may differ (fewer products, an old status) without anything
    having changed: a known connection keeps its previous row, marked stale, rather than
    record a change that did not happen; a new one waits for the next run. Freshest means
    the latest `issued_at`; when the issue times are unknown, the token that answered for
    the connection last time.
    """
    working = inputs.previous.filter(pl.col("state") != concepts.STAGED).select(
        "connection_id", pl.col("working_token_fingerprint").alias("token_fingerprint")
    )
    failed = tokens.filter(
        (pl.col("last_outcome") == FAILED) & pl.col("connection_id").is_not_null()
    ).select("connection_id", "token_fingerprint", pl.lit(False).alias("answered"))
    # Only a connection with a failed token can be blocked; the rest need no ranking.
    answered = introspections.filter(
        pl.col("connection_id").is_in(failed["connection_id"].implode())
    ).select("connection_id", "token_fingerprint", pl.lit(True).alias("answered"))
    ranked = (
        pl.concat([answered, failed])
        .join(tokens.select("token_fingerprint", "issued_at"), on="token_fingerprint", how="left")
        .join(
            working.with_columns(pl.lit(True).alias("was_working")),
            on=["connection_id", "token_fingerprint"],
            how="left",
        )
        .with_columns(pl.col("was_working").fill_null(False))
        .sort(
            ["connection_id", "issued_at", "was_working", "token_fingerprint"],
            descending=[False, True, True, False],
            nulls_last=True,
        )
        .unique("connection_id", keep="first", maintain_order=True)
    )
    # A connection no run has seen yet is blocked too when the issue times say which token
    # is freshest: it has no row to keep, so it waits for a run its freshest token answers.
    return ranked.filter(
        ~pl.col("answered")
        & (
            pl.col("connection_id").is_in(working["connection_id"].implode())
            | pl.col("issued_at").is_not_null()
        )
    )["connection_id"]


def _carried_forward(
    inputs: SnapshotInputs,
    live: pl.DataFrame,
    tokens: pl.DataFrame,
    providers: pl.DataFrame,
    companies: pl.DataFrame,
) -> pl.DataFrame:
    """Connections not live this run: disconnected when every token is revoked, else kept.

    A connection is disconnected when every token it had this run answered 401
    `invalid_token_error`: known from an earlier run, or named only by the token source (on a
    first sync too: the application's own record of a connection is evidence enough). Such a
    row takes what the source kept of `POST /auth/token` (customer, provider, company, the
    first token's issue time as the connection time) where nothing better is known.
    Transient failures keep the previous row, with the reason in `last_error`.
    """
    # What the source kept of each token's connection is read for these tokens only.
    details = inputs.token_source.select("token_fingerprint", *SOURCE_DETAIL_COLUMNS)
    not_live = tokens.filter(
        pl.col("connection_id").is_not_null()
        & ~pl.col("connection_id").is_in(live["connection_id"].implode())
    ).join(details, on="token_fingerprint", how="left")
    # Why the connection was not refreshed: a failed call first, then any other answer
    # that is neither ok nor a revocation (e.g. needs_reauth).
    unrefreshed = ~pl.col("last_outcome").is_in([INVALID_TOKEN, "ok"])
    per_connection = (
        # Aggregations keep each group's rows in frame order: failed calls come first, then
        # the freshest token, whose source details win.
        not_live.sort(
            pl.col("last_outcome") != FAILED,
            "issued_at",
            "token_fingerprint",
            descending=[False, True, False],
            nulls_last=True,
        )
        .group_by("connection_id")
        .agg(
            (pl.col("last_outcome") == INVALID_TOKEN).all().alias("all_revoked"),
            pl.col("last_outcome").filter(unrefreshed).first().alias("failure"),
            pl.col("last_error").filter(unrefreshed).first().alias("why"),
            pl.len().cast(pl.Int32).alias("token_count"),
            pl.col("issued_at").min().alias("source_connected_at"),
            *(
                pl.col(f"source_{name}").drop_nulls().first().alias(f"source_{name}")
                for name in CONNECTION_DETAILS
            ),
        )
        .join(
            providers.rename({"provider_id": "source_provider_id"}),
            on="source_provider_id",
            how="left",
        )
        .rename({"provider_name": "source_provider_name"})
    )
    known = inputs.previous.filter(
        (pl.col("state") != concepts.STAGED)
        & ~pl.col("connection_id").is_in(live["connection_id"].implode())
    )
    revoked = pl.col("all_revoked").fill_null(False)
    departed = _left_source(inputs, tokens)
    # A deferred connection's company name may still have been asked for this run, with
    # the token an earlier run verified; a connection whose tokens were polled and not
    # refreshed (failed, another application's) keeps what it had.
    fetched = companies.select(
        "connection_id",
        pl.col("legal_name").alias("fetched_legal_name"),
        pl.col("company_fetched_at").alias("fetched_company_at"),
    )
    kept = known.join(per_connection, on="connection_id", how="left").join(
        fetched, on="connection_id", how="left"
    )
    deferred = pl.col("token_count_right").is_null()
    named = pl.col("fetched_legal_name").is_not_null() & (pl.col("entity_count") <= 1) & deferred
    kept = kept.with_columns(
        pl.when(revoked).then(pl.lit(concepts.DISCONNECTED)).otherwise("state").alias("state"),
        pl.when(revoked)
        .then(pl.coalesce("disconnected_at", pl.lit(inputs.as_of).cast(UTC_DATETIME)))
        .otherwise("disconnected_at")
        .alias("disconnected_at"),
        pl.when(departed)
        .then(pl.lit(concepts.NO_SOURCE_TOKEN))
        # A connection none of whose tokens was polled this run (deferred) keeps its error.
        .when(pl.col("token_count_right").is_null())
        .then(pl.col("last_error"))
        .when(pl.col("failure").is_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(pl.col("why").is_null())
        .then(pl.format("not refreshed: token answered {}", "failure"))
        .otherwise(pl.format("not refreshed: token answered {} ({})", "failure", "why"))
        .alias("last_error"),
        ((pl.col("failure").is_not_null() & ~revoked) | departed).alias("stale"),
        _left_source_at(inputs, departed),
        pl.coalesce("token_count_right", "token_count").alias("token_count"),
        *_filled_from_source(revoked),
    ).with_columns(
        pl.when(named).then("fetched_legal_name").otherwise("company_name").alias("company_name"),
        (pl.col("company_name_pending").fill_null(False) & ~named).alias("company_name_pending"),
        pl.when(named)
        .then("fetched_company_at")
        .otherwise("company_fetched_at")
        .alias("company_fetched_at"),
    )
    # Known only to the token source: every token the application kept for it is revoked.
    unseen = per_connection.filter(
        pl.col("all_revoked")
        & ~pl.col("connection_id").is_in(inputs.previous["connection_id"].implode())
    ).select(
        pl.col("connection_id").alias("connection_key"),
        pl.lit(concepts.DISCONNECTED).alias("state"),
        "connection_id",
        "token_count",
        pl.lit(inputs.as_of).cast(UTC_DATETIME).alias("disconnected_at"),
        pl.lit(False).alias("stale"),
        *(pl.col(f"source_{name}").alias(name) for name in SOURCE_FILLED),
    )
    return pl.concat(
        [kept.select(known.columns), unseen],
        how="diagonal_relaxed",
    )


def _left_source(inputs: SnapshotInputs, tokens: pl.DataFrame) -> pl.Expr:
    """Whether a known connection not refreshed this run has left the token source: not
    disconnected, and no token the source lists belongs to it.

    A token belongs to a connection by the source's own `connection_id`, by what an
    earlier run learnt of it (`finch_tokens`), or by this run's answer; an unreadable
    source row's token is still listed. Only a complete read of the source can tell
    (a deferred or targeted run's unpolled tokens are still listed, so still belong).
    While any listed token's owner is unknown (a re-authenticated connection's new token
    before it is polled) it may be any connection's, so no new departure is concluded;
    one found earlier stays until a token of it is listed again.
    """
    if not inputs.token_source_complete:
        return pl.lit(False)
    unreadable = pl.DataFrame(
        {"token_fingerprint": sorted(inputs.unreadable_tokens)},
        schema={"token_fingerprint": pl.String},
    )
    listed = pl.concat([inputs.token_source.select("token_fingerprint"), unreadable]).unique()
    learnt = inputs.previous_tokens.join(listed, on="token_fingerprint", how="semi")
    owners = pl.concat(
        [
            inputs.token_source["source_connection_id"],
            learnt["connection_id"],
            tokens["connection_id"],
        ]
    ).drop_nulls()
    # Another application's token answered, for no connection of ours: its owner is known.
    foreign = pl.col("last_outcome") == OTHER_APPLICATION
    resolved = pl.concat(
        frame.filter(pl.col(owner).is_not_null() | also).select("token_fingerprint")
        for frame, owner, also in (
            (inputs.token_source, "source_connection_id", pl.lit(False)),
            (learnt, "connection_id", foreign),
            (tokens, "connection_id", foreign),
        )
    )
    unowned = listed.join(resolved, on="token_fingerprint", how="anti").height > 0
    newly_or_before = pl.lit(not unowned) | pl.col("left_source_at").is_not_null()
    return (
        (pl.col("state") != concepts.DISCONNECTED)
        & ~pl.col("connection_id").is_in(owners.implode())
        & newly_or_before
    )


def _left_source_at(inputs: SnapshotInputs, departed: pl.Expr) -> pl.Expr:
    """When the connection left the token source: the first run that found it gone; null
    once a token of it is listed again. A partial view of the source changes nothing."""
    if not inputs.token_source_complete:
        return pl.col("left_source_at")
    first = pl.coalesce("left_source_at", pl.lit(inputs.as_of).cast(UTC_DATETIME))
    return (
        pl.when(departed)
        .then(first)
        .otherwise(pl.lit(None, dtype=UTC_DATETIME))
        .alias("left_source_at")
    )


# finch_connections columns a disconnected row takes from the token source, from the
# per-connection aggregation's `source_<column>`.
SOURCE_FILLED = (
    "customer_id",
    "customer_name",
    "provider_id",
    "provider_name",
    "company_id",
    "company_name",
    "connected_at",
)


def _filled_from_source(revoked: pl.Expr) -> list[pl.Expr]:
    """A disconnected row's blanks, filled from the token source; what a run once read from
    Finch always stays."""
    return [
        pl.when(revoked)
        .then(pl.coalesce(name, f"source_{name}"))
        .otherwise(pl.col(name))
        .alias(name)
        for name in SOURCE_FILLED
    ]


def _with_session_links(connections: pl.DataFrame, progress: pl.DataFrame) -> pl.DataFrame:
    """Live and disconnected rows carry the id of the Connect session that created them."""
    links = (
        progress.filter(pl.col("connection_id").is_not_null() & (pl.col("kind") == KIND_CONNECT))
        .sort("created_at", descending=True)
        .select("connection_id", pl.col("session_id").alias("linked_session_id"))
        .unique("connection_id", keep="first", maintain_order=True)
    )
    if "session_id" not in connections.columns:
        connections = connections.with_columns(pl.lit(None, dtype=pl.String).alias("session_id"))
    return (
        connections.join(links, on="connection_id", how="left")
        .with_columns(pl.coalesce("session_id", "linked_session_id").alias("session_id"))
        .drop("linked_session_id")
    )


def _with_derived_columns(
    connections: pl.DataFrame, inputs: SnapshotInputs, as_of: pl.Expr
) -> pl.DataFrame:
    state, status = pl.col("state"), pl.col("connection_status")
    return connections.with_columns(
        pl.when(state == concepts.DISCONNECTED)
        .then(pl.lit(concepts.DISCONNECTED_STATUS))
        .otherwise(status)
        .alias("connection_status"),
        rules.status_label(
            pl.when(state == concepts.DISCONNECTED)
            .then(pl.lit(concepts.DISCONNECTED_STATUS))
            .otherwise(status)
        ).alias("connection_status_label"),
        rules.needs_action(state, status).alias("needs_action"),
        rules.expected_refresh_hours(pl.col("connection_type")).alias("expected_refresh_hours"),
        rules.sync_overdue(
            state,
            pl.col("last_synced_at"),
            pl.col("connected_at"),
            rules.expected_refresh_hours(pl.col("connection_type")),
            as_of,
        ).alias("sync_overdue"),
        pl.col("stale").fill_null(False),
        pl.col("company_name_pending").fill_null(False),
        pl.coalesce("first_seen_at", as_of).alias("first_seen_at"),
        # Rows carried from an earlier run keep the time they were last seen working.
        pl.coalesce("last_seen_at", as_of).alias("last_seen_at"),
        pl.lit(inputs.run_id).alias("run_id"),
    )


def _entities(introspections: pl.DataFrame, live: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """One row per entity of each live connection's freshest introspection.

    An entity listed twice is one row. A member without an id (or a null member) is kept,
    with a null entity_id, so validation quarantines it with a reason instead of it
    vanishing.
    """
    working = live.select(pl.col("working_token_fingerprint").alias("token_fingerprint"))
    lists = (
        introspections.select("token_fingerprint", "connection_id", "entities")
        # Exploding an empty or null list would yield a null row, not an entity.
        .filter(pl.col("entities").list.len() > 0)
        .filter(pl.col("token_fingerprint").is_in(working["token_fingerprint"].implode()))
        .select("connection_id", pl.col("entities").alias("entity"))
    )
    entity = pl.col("entity")
    ids = entity.list.eval(pl.element().struct.field("id").drop_nulls())
    repeats = ids.list.n_unique() < ids.list.len()
    rows = pl.concat(
        [
            lists.filter(~repeats).explode("entity"),
            # Only a list naming an entity twice needs de-duplicating (first listing kept).
            lists.filter(repeats)
            .explode("entity")
            .filter(
                entity.struct.field("id").is_null()
                | entity.struct.field("id").is_first_distinct().over("connection_id")
            ),
        ]
    )
    return rows.select(
        "connection_id",
        entity.struct.field("id").alias("entity_id"),
        entity.struct.field("name").alias("entity_name"),
        entity.struct.field("source_id").alias("source_id"),
        entity.struct.field("status").alias("entity_status"),
        pl.lit(run_id).alias("run_id"),
    )


def _conform(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    missing = [pl.lit(None).alias(name) for name in columns if name not in frame.columns]
    return frame.with_columns(missing).select(columns)
