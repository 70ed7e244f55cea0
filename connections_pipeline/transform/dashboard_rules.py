"""The Dashboard's column rules, as Polars expressions over normalized connection columns."""

import polars as pl

from connections_pipeline.concepts import (
    ASSISTED,
    ASSISTED_AUTH,
    AUTOMATED,
    AUTOMATED_ASSISTED,
    AUTOMATED_AUTH_TYPES,
    CONNECTION_STATUS_LABELS,
    LIVE,
    NEEDS_ACTION_STATUSES,
)

MULTI_ENTITY_NAME = "Multi-entity connection"
# Finch refreshes automated connections every 24 hours and assisted ones every 7 days.
AUTOMATED_REFRESH_HOURS = 24
ASSISTED_REFRESH_HOURS = 168


def connection_type(auth_types: pl.Expr) -> pl.Expr:
    """Automated / Assisted / "Automated, Assisted" from a list of authentication method types.

    Assisted alone means assisted syncs; assisted beside an automated method means syncs are
    automatic while deductions stay assisted.
    """
    assisted = auth_types.list.contains(ASSISTED_AUTH)
    automated = auth_types.list.eval(pl.element().is_in(AUTOMATED_AUTH_TYPES)).list.any()
    return (
        pl.when(assisted & automated)
        .then(pl.lit(AUTOMATED_ASSISTED))
        .when(assisted)
        .then(pl.lit(ASSISTED))
        .when(automated)
        .then(pl.lit(AUTOMATED))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def expected_refresh_hours(connection_type_column: pl.Expr) -> pl.Expr:
    return (
        pl.when(connection_type_column.is_null())
        .then(pl.lit(None, dtype=pl.Int32))
        .when(connection_type_column == ASSISTED)
        .then(pl.lit(ASSISTED_REFRESH_HOURS, dtype=pl.Int32))
        .otherwise(pl.lit(AUTOMATED_REFRESH_HOURS, dtype=pl.Int32))
    )


def status_label(status: pl.Expr) -> pl.Expr:
    """The Dashboard's label of a status code ("reauth" is "Re-auth"); a code Finch adds
    later keeps its own text rather than vanish."""
    return status.replace_strict(CONNECTION_STATUS_LABELS, default=status, return_dtype=pl.String)


def needs_action(state: pl.Expr, status: pl.Expr) -> pl.Expr:
    return ((state == LIVE) & status.is_in(NEEDS_ACTION_STATUSES)).fill_null(False)


def sync_overdue(
    state: pl.Expr,
    last_synced_at: pl.Expr,
    connected_at: pl.Expr,
    refresh_hours: pl.Expr,
    as_of: pl.Expr,
) -> pl.Expr:
    """Live and no sync within the expected refresh since the last sync (or connection)."""
    reference = pl.coalesce(last_synced_at, connected_at)
    overdue = (as_of - reference) > pl.duration(hours=refresh_hours)
    return ((state == LIVE) & overdue).fill_null(False)


def company_name(entity_count: pl.Expr, legal_name: pl.Expr) -> pl.Expr:
    return pl.when(entity_count > 1).then(pl.lit(MULTI_ENTITY_NAME)).otherwise(legal_name)
