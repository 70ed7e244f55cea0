"""Snapshot diffs and SCD type 2 planning, as pure Polars functions.

The loader reads the previous snapshot and the open history versions inside its
transaction, asks these functions what changed, and writes only that. Keeping the
comparison here (not in SQL) makes it identical on DuckDB and PostgreSQL and testable
without a database.
"""

import datetime as dt
from dataclasses import dataclass

import polars as pl

from connections_pipeline.warehouse.columns import (
    CONNECTIONS_COLUMNS,
    CONNECTIONS_HISTORY,
    TRACKED_ATTRIBUTES,
    empty_frame,
)

KEY = "connection_key"
_OLD = "__old"
_IN_OLD = "__in_old"
_IN_NEW = "__in_new"
# run_id says which run last changed a row; it is not part of the row's content.
_COMPARED = tuple(
    column.name for column in CONNECTIONS_COLUMNS if column.name not in (KEY, "run_id")
)


def _same(columns: tuple[str, ...]) -> pl.Expr:
    # Null-safe: null equals null, null differs from any value.
    return pl.all_horizontal(pl.col(name).eq_missing(pl.col(f"{name}{_OLD}")) for name in columns)


def _keys(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col(KEY))


@dataclass(frozen=True)
class SnapshotDiff:
    """What replacing the previous snapshot with a new one changes.

    `upserts` are the rows to write (new keys and changed rows, as in the new snapshot);
    `removed_keys` the keys whose stored row goes (changed and vanished keys).
    """

    upserts: pl.DataFrame
    removed_keys: pl.DataFrame
    inserted: int
    updated: int
    deleted: int
    unchanged: int

    @property
    def upserts_every_row(self) -> bool:
        """Every row of the new snapshot is written (e.g. a first load): `upserts` is the
        whole snapshot, so a loader may read the snapshot itself instead."""
        return self.unchanged == 0


def row_hashes(snapshot: pl.DataFrame) -> pl.DataFrame:
    """connection_key, row_hash: a 64-bit hash of each row's compared columns.

    Stable for a given Polars version; after an upgrade every hash may differ, which only
    costs one run that reads every row back (hashes choose what to compare, never what
    changed).
    """
    hashes = snapshot.select(_COMPARED).hash_rows(seed=0x46494E4348)
    return snapshot.select(KEY).with_columns(hashes.reinterpret(signed=True).alias("row_hash"))


def diff_snapshot(
    previous: pl.DataFrame, new: pl.DataFrame, unchanged_elsewhere: int = 0
) -> SnapshotDiff:
    """Compare two snapshots of finch_connections, ignoring run_id.

    Args:
        previous: the stored snapshot (connections schema), or the stored rows of the keys
            that may have changed.
        new: the incoming snapshot (connections schema, unique keys), or its rows of the
            keys that may have changed.
        unchanged_elsewhere: rows of the incoming snapshot left out of both frames because
            they are known unchanged (their row hash matched).
    """
    if previous.is_empty():
        return SnapshotDiff(new, _keys(previous), new.height, 0, 0, unchanged_elsewhere)
    joined = new.join(
        previous.with_columns(pl.lit(True).alias(_IN_OLD)),
        on=KEY,
        how="left",
        suffix=_OLD,
    )
    is_new = pl.col(_IN_OLD).is_null()
    same = _same(_COMPARED)
    flagged = joined.with_columns(
        is_new.alias("__is_new"), (~is_new & same).fill_null(False).alias("__same")
    )
    upserts = flagged.filter(~pl.col("__same")).select(new.columns)
    inserted = int(flagged["__is_new"].sum())
    unchanged = int(flagged["__same"].sum())
    updated = new.height - inserted - unchanged
    unchanged += unchanged_elsewhere
    changed_keys = flagged.filter(~pl.col("__is_new") & ~pl.col("__same")).select(KEY)
    vanished = previous.join(new, on=KEY, how="anti").select(KEY)
    return SnapshotDiff(
        upserts=upserts,
        removed_keys=pl.concat([changed_keys, vanished]),
        inserted=inserted,
        updated=updated,
        deleted=vanished.height,
        unchanged=unchanged,
    )


@dataclass(frozen=True)
class HistoryPlan:
    """The history changes of one run.

    `closing_keys` hold the keys whose open version ends at `as_of`; a version that was
    itself opened at `as_of` (the same run loaded again with different content) is
    replaced instead of closed, so no zero-length version appears. `opened` are the new
    versions in the history table's schema.
    """

    closing_keys: pl.DataFrame
    opened: pl.DataFrame
    closed: int
    replaced: int
    opens_every_row: bool


def plan_history(
    open_versions: pl.DataFrame,
    snapshot: pl.DataFrame,
    as_of: dt.datetime,
    run_id: str,
    history_is_empty: bool | None = None,
) -> HistoryPlan:
    """Decide which versions close and which open when `snapshot` becomes current.

    Args:
        open_versions: the stored open versions: connection_key, valid_from and the
            tracked attributes.
        snapshot: the new snapshot (connections schema).
        as_of: the run's timestamp; new versions start and closed versions end there.
        run_id: recorded on every new version.
        history_is_empty: whether the stored history has no open version at all, when
            `open_versions` holds only those of the keys that may have changed (default:
            `open_versions` is all of them).

    Raises:
        ValueError: if a version that would close started after `as_of` (an older run
            loaded after a newer one).
    """
    current = snapshot.select(KEY, *TRACKED_ATTRIBUTES)
    if open_versions.is_empty():
        opening = current
        closing = open_versions.select(KEY, "valid_from")
    else:
        joined = current.with_columns(pl.lit(True).alias(_IN_NEW)).join(
            open_versions.with_columns(pl.lit(True).alias(_IN_OLD)),
            on=KEY,
            how="full",
            coalesce=True,
            suffix=_OLD,
        )
        in_new = pl.col(_IN_NEW).fill_null(False)
        in_old = pl.col(_IN_OLD).fill_null(False)
        changed = in_new & in_old & ~_same(TRACKED_ATTRIBUTES)
        opening = joined.filter(changed | (in_new & ~in_old)).select(current.columns)
        closing = joined.filter(changed | (in_old & ~in_new)).select(KEY, "valid_from")
    too_late = closing.filter(pl.col("valid_from") > as_of)
    if too_late.height:
        raise ValueError(
            f"as_of {as_of.isoformat()} is earlier than the open history version of "
            f"{too_late.height} connection(s) (e.g. {too_late[KEY][0]!r}); load runs in order"
        )
    replaced = int((closing["valid_from"] == as_of).sum()) if closing.height else 0
    opened = opening.select(
        pl.col(KEY),
        pl.lit(as_of, dtype=pl.Datetime("us", "UTC")).alias("valid_from"),
        pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("valid_to"),
        pl.lit(True).alias("is_current"),
        pl.lit(run_id, dtype=pl.Utf8).alias("run_id"),
        *TRACKED_ATTRIBUTES,
    )
    opened = pl.concat([empty_frame(CONNECTIONS_HISTORY), opened], how="vertical_relaxed")
    return HistoryPlan(
        closing_keys=closing.select(KEY),
        opened=opened,
        closed=closing.height - replaced,
        replaced=replaced,
        opens_every_row=open_versions.is_empty() if history_is_empty is None else history_is_empty,
    )
