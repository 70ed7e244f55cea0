"""Whether a run's snapshot can be trusted enough to publish.

A wrong setting and a real mass change look alike in the data: tokens sent to the wrong Finch
application, or to an emulator, answer 401 exactly as revoked ones do, and an outage fails
every call. So a run is judged against the snapshot it would replace, and held, not loaded,
when its changes are implausible; a person who has checked that the change is real accepts
it (run config `accept_mass_change`).
"""

from dataclasses import dataclass, field

import polars as pl

from connections_pipeline import concepts

OK, FAILED, INVALID_TOKEN = "ok", "failed", "invalid_token"
OTHER_APPLICATION = "other_application"
FINCH_CLIENT_TYPES = ("development", "production", "sandbox")
# The settings behind each threshold, named in the reasons a person reads.
LIVE_DROP_SHARE_SETTING = "CONNECTIONS_HOLD_LIVE_DROP_SHARE"
LIVE_DROP_MIN_SETTING = "CONNECTIONS_HOLD_MIN_COUNT"
TOKEN_FAILURE_SHARE_SETTING = "CONNECTIONS_HOLD_TOKEN_FAILURE_SHARE"
CLIENT_ID_SETTING = "FINCH_CLIENT_ID"
CLIENT_TYPE_SETTING = "CONNECTIONS_FINCH_CLIENT_TYPE"
FINGERPRINTS_SHOWN = 10


@dataclass(frozen=True)
class Application:
    """The Finch application every token must belong to; None checks nothing."""

    client_id: str | None = None
    client_type: str | None = None


@dataclass(frozen=True)
class HoldThresholds:
    """When a run is held rather than loaded.

    Attributes:
        max_live_drop_share: more than this share of the previously live connections
            leaving Live in one run holds it, as does more than this share leaving the
            token source (no token of theirs listed any more)...
        min_count: ...once at least this many leave; the same floor applies to tokens.
        max_token_failure_share: more than this share of the tokens failing after retries,
            newly answering 401 for a connection with no working token, or unreadable in the
            token source holds the run.
    """

    max_live_drop_share: float = 0.2
    min_count: int = 5
    max_token_failure_share: float = 0.2


@dataclass(frozen=True)
class TrustFigures:
    """What the judgement looked at; every count is stored with the run."""

    previous_live: int = 0
    leaving_live: int = 0
    leaving_source: int = 0
    tokens: int = 0
    failed_tokens: int = 0
    newly_invalid_tokens: int = 0
    rejected_source_rows: int = 0
    other_application_tokens: int = 0
    other_application_fingerprints: tuple[str, ...] = ()
    other_application_reasons: tuple[str, ...] = ()
    common_failure: str | None = None

    @property
    def leaving_share(self) -> float:
        return self.leaving_live / self.previous_live if self.previous_live else 0.0

    @property
    def leaving_source_share(self) -> float:
        return self.leaving_source / self.previous_live if self.previous_live else 0.0

    @property
    def unanswered(self) -> int:
        return self.failed_tokens + self.newly_invalid_tokens + self.rejected_source_rows

    @property
    def unanswered_share(self) -> float:
        total = self.tokens + self.rejected_source_rows
        return self.unanswered / total if total else 0.0


@dataclass(frozen=True)
class Verdict:
    figures: TrustFigures
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def held(self) -> bool:
        return bool(self.reasons)

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)


def application_mismatch(introspections: pl.DataFrame, expected: Application) -> pl.Expr:
    """Why an introspection is of another application than `expected` (null when it is
    ours, or when nothing is expected). Needs the `client_id` and `client_type` columns."""
    reason = pl.lit(None, dtype=pl.String)
    if expected.client_type is not None:
        reason = (
            pl.when(pl.col("client_type").fill_null("") != expected.client_type)
            .then(
                pl.format(
                    f"client_type {{}} where {CLIENT_TYPE_SETTING} expects "
                    f"{expected.client_type!r}",
                    pl.col("client_type").fill_null("(none)"),
                )
            )
            .otherwise(reason)
        )
    if expected.client_id is not None:
        reason = (
            pl.when(pl.col("client_id").fill_null("") != expected.client_id)
            .then(pl.lit(f"client_id is not {CLIENT_ID_SETTING}"))
            .otherwise(reason)
        )
    return reason


def split_by_application(
    introspections: pl.DataFrame, expected: Application
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(ours, others): others carry `token_fingerprint` and `reason` and never become
    connections — another application's connection ids mean nothing here."""
    marked = introspections.with_columns(
        application_mismatch(introspections, expected).alias("reason")
    )
    ours = marked.filter(pl.col("reason").is_null()).drop("reason")
    others = marked.filter(pl.col("reason").is_not_null()).select("token_fingerprint", "reason")
    return ours, others


def trust_figures(
    previous: pl.DataFrame,
    connections: pl.DataFrame,
    tokens: pl.DataFrame,
    previous_tokens: pl.DataFrame,
    rejected_source_rows: int = 0,
) -> TrustFigures:
    """Counts that tell a plausible run from a wrong setting or an outage.

    A 401 counts only when it is news: not for a token already known revoked, nor for an old
    token of a connection that another token keeps live (re-authentication revokes the old
    one). A connection leaving Live is one that was live before and is not in `connections`
    as live now; one leaving the source was live and in the token source before and now
    has `left_source_at` set (see `transform.snapshot`).

    Args:
        previous: finch_connections before the run.
        connections: the run's snapshot.
        tokens: the run's token outcomes (token_fingerprint, connection_id, last_outcome).
        previous_tokens: finch_tokens before the run.
        rejected_source_rows: token-source rows that could not be used.
    """
    live_now = connections.filter(pl.col("state") == concepts.LIVE)["connection_key"]
    previous_live = previous.filter(pl.col("state") == concepts.LIVE)["connection_key"]
    known_invalid = previous_tokens.filter(pl.col("last_outcome") == INVALID_TOKEN)
    live_ids = connections.filter(pl.col("state") == concepts.LIVE)["connection_id"].drop_nulls()
    newly_invalid = tokens.filter(
        (pl.col("last_outcome") == INVALID_TOKEN)
        & ~pl.col("token_fingerprint").is_in(known_invalid["token_fingerprint"].implode())
        & ~pl.col("connection_id").is_in(live_ids.implode()).fill_null(False)
    )
    others = tokens.filter(pl.col("last_outcome") == OTHER_APPLICATION)
    failed = tokens.filter(pl.col("last_outcome") == FAILED)
    return TrustFigures(
        previous_live=previous_live.len(),
        leaving_live=(~previous_live.is_in(live_now.implode())).sum(),
        leaving_source=_leaving_source(previous, connections),
        tokens=tokens.height,
        failed_tokens=failed.height,
        newly_invalid_tokens=newly_invalid.height,
        rejected_source_rows=rejected_source_rows,
        other_application_tokens=others.height,
        other_application_fingerprints=tuple(
            others["token_fingerprint"].sort().head(FINGERPRINTS_SHOWN).to_list()
        ),
        other_application_reasons=tuple(sorted(set(others["last_error"].drop_nulls())))
        if "last_error" in others.columns
        else (),
        common_failure=_most_common(failed, "last_error"),
    )


def _leaving_source(previous: pl.DataFrame, connections: pl.DataFrame) -> int:
    """Connections live and listed by the token source before, whose tokens all left it now."""
    listed_before = previous.filter(
        (pl.col("state") == concepts.LIVE) & pl.col("left_source_at").is_null()
    )["connection_key"]
    gone_now = connections.filter(pl.col("left_source_at").is_not_null())["connection_key"]
    return gone_now.is_in(listed_before.implode()).sum()


def _most_common(frame: pl.DataFrame, column: str) -> str | None:
    if column not in frame.columns:
        return None
    values = frame[column].drop_nulls()
    if values.is_empty():
        return None
    counts = values.value_counts(sort=True)
    return counts[column][0]


def judge(figures: TrustFigures, thresholds: HoldThresholds) -> Verdict:
    """Hold the run when any figure passes its threshold; the reasons say which and why."""
    reasons = []
    if figures.other_application_tokens:
        shown = ", ".join(figures.other_application_fingerprints)
        more = figures.other_application_tokens - len(figures.other_application_fingerprints)
        why = "; ".join(figures.other_application_reasons) or "another client_id"
        reasons.append(
            f"{figures.other_application_tokens} of {figures.tokens} tokens belong to another "
            f"Finch application ({why}): token fingerprints {shown}"
            f"{f' and {more} more' if more > 0 else ''}; check {CLIENT_ID_SETTING}, "
            f"{CLIENT_TYPE_SETTING}, FINCH_BASE_URL and the token source"
        )
    if (
        figures.leaving_live >= thresholds.min_count
        and figures.leaving_share > thresholds.max_live_drop_share
    ):
        reasons.append(
            f"{figures.leaving_live} of {figures.previous_live} live connections "
            f"({figures.leaving_share:.0%}) would leave Live in one run; the limit is "
            f"{thresholds.max_live_drop_share:.0%} ({LIVE_DROP_SHARE_SETTING}) once at least "
            f"{thresholds.min_count} do ({LIVE_DROP_MIN_SETTING})"
        )
    if (
        figures.leaving_source >= thresholds.min_count
        and figures.leaving_source_share > thresholds.max_live_drop_share
    ):
        reasons.append(
            f"{figures.leaving_source} of {figures.previous_live} live connections "
            f"({figures.leaving_source_share:.0%}) would be no longer tracked in one run: the "
            f"token source lists no token of theirs any more; the limit is "
            f"{thresholds.max_live_drop_share:.0%} ({LIVE_DROP_SHARE_SETTING}) once at least "
            f"{thresholds.min_count} do ({LIVE_DROP_MIN_SETTING}); is the token source the "
            "right file or query?"
        )
    if (
        figures.unanswered >= thresholds.min_count
        and figures.unanswered_share > thresholds.max_token_failure_share
    ):
        reasons.append(
            f"{figures.unanswered} of {figures.tokens + figures.rejected_source_rows} tokens "
            f"({figures.unanswered_share:.0%}) got no usable answer: "
            f"{figures.failed_tokens} failed after retries, {figures.newly_invalid_tokens} "
            f"newly answered 401 invalid_token, {figures.rejected_source_rows} unreadable in "
            f"the token source; the limit is {thresholds.max_token_failure_share:.0%} "
            f"({TOKEN_FAILURE_SHARE_SETTING}); {_likely_cause(figures)}"
        )
    return Verdict(figures, tuple(reasons))


def _likely_cause(figures: TrustFigures) -> str:
    if figures.failed_tokens >= max(figures.newly_invalid_tokens, figures.rejected_source_rows):
        common = (
            f" (most common failure: {figures.common_failure})" if figures.common_failure else ""
        )
        return f"Finch may be down or unreachable{common}"
    if figures.newly_invalid_tokens >= figures.rejected_source_rows:
        return (
            "tokens answering 401 all at once usually belong to another Finch application or "
            "environment (check FINCH_BASE_URL and the token source), unless they were really "
            "revoked"
        )
    return "is the token source the right file or query?"
