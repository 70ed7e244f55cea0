"""Loading one sync run: every table of the run in one transaction.

Order inside the transaction: lock, read the previous snapshot and the open history
versions, diff in Polars, then write only what changed: new ledger sessions, connections,
history, entities, tokens, quarantine, raw responses, session progress, and last the
sync-run row. A failure anywhere, a killed process included, rolls all of it back, so readers
see the previous run's tables or this run's, never a mix.
"""

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import sqlalchemy as sa

from connections_pipeline.concepts import LIVE
from connections_pipeline.warehouse import bulk, run_records
from connections_pipeline.warehouse.columns import (
    CONNECT_SESSIONS,
    CONNECTION_ENTITIES,
    CONNECTION_ROW_HASHES,
    CONNECTIONS,
    CONNECTIONS_HISTORY,
    QUARANTINE,
    RAW_RESPONSES,
    SYNC_RUNS,
    TOKENS,
    TRACKED_ATTRIBUTES,
    conform,
    duplicated_keys,
    empty_frame,
    polars_schema,
)
from connections_pipeline.warehouse.dialects import dialect_of, duckdb_dialect
from connections_pipeline.warehouse.history import (
    KEY,
    HistoryPlan,
    SnapshotDiff,
    diff_snapshot,
    plan_history,
    row_hashes,
)


@dataclass(frozen=True)
class RunLoad:
    """Everything one sync run writes to the warehouse.

    Frames use the column lists in `columns.py` (build them from `empty_frame(...)` or
    the `*_COLUMNS` constants). run_id columns may be omitted: the loader fills them.
    """

    run_id: str
    as_of: dt.datetime
    connections: pl.DataFrame
    entities: pl.DataFrame = field(default_factory=lambda: empty_frame(CONNECTION_ENTITIES))
    tokens: pl.DataFrame = field(default_factory=lambda: empty_frame(TOKENS))
    quarantine: pl.DataFrame = field(default_factory=lambda: empty_frame(QUARANTINE))
    sync_run: Mapping[str, Any] = field(default_factory=dict)
    # A frame, or chunks read one at a time during the load (a sync's spooled bodies).
    raw_responses: run_records.RawResponseRows | None = None
    new_sessions: pl.DataFrame | None = None
    session_progress: pl.DataFrame | None = None


@dataclass(frozen=True)
class LoadSummary:
    """What a load changed. Current-table counts: inserted + updated + unchanged equals
    the snapshot's rows; deleted rows were in the previous snapshot only."""

    run_id: str
    inserted: int
    updated: int
    deleted: int
    unchanged: int
    history_opened: int
    history_closed: int
    history_replaced: int
    entities: int
    tokens: int
    quarantined: int

    @property
    def changed(self) -> bool:
        return bool(
            self.inserted
            or self.updated
            or self.deleted
            or self.history_opened
            or self.history_closed
            or self.history_replaced
        )


@dataclass(frozen=True)
class _Prepared:
    run_id: str
    as_of: dt.datetime
    connections: pl.DataFrame
    entities: pl.DataFrame
    tokens: pl.DataFrame
    quarantine: pl.DataFrame
    sync_run: pl.DataFrame
    raw_responses: run_records.RawResponseRows | None
    new_sessions: pl.DataFrame | None
    session_progress: pl.DataFrame | None


def _utc(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(dt.UTC)


def _no_duplicates(frame: pl.DataFrame, table: str, keys: tuple[str, ...]) -> None:
    duplicates = duplicated_keys(frame, keys)
    if duplicates:
        raise ValueError(f"{table}: duplicate {', '.join(keys)} {duplicates}")


def prepare(run: RunLoad) -> _Prepared:
    """Validate and conform a run's inputs before any transaction is opened."""
    if not isinstance(run.run_id, str) or not run.run_id:
        raise ValueError(f"run_id must be a non-empty string, got {run.run_id!r}")
    as_of = _utc(run.as_of, "as_of")
    fill = {"run_id": run.run_id}
    # Sorted by key: PostgreSQL btree and DuckDB ART inserts are cheapest in key order, and
    # duplicates become neighbours, which is cheaper to check than hashing every key.
    connections = conform(run.connections, CONNECTIONS, fill)
    if not connections[KEY].is_sorted():
        connections = connections.sort(KEY)
    if connections.height and (connections[KEY] == connections[KEY].shift(1)).any():
        _no_duplicates(connections, CONNECTIONS, (KEY,))
    tokens = conform(run.tokens, TOKENS)
    _no_duplicates(tokens, TOKENS, ("token_fingerprint",))
    sync_frame = sync_run_frame(run.run_id, as_of, run.sync_run)
    return _Prepared(
        run_id=run.run_id,
        as_of=as_of,
        connections=connections,
        entities=conform(run.entities, CONNECTION_ENTITIES, fill),
        tokens=tokens,
        quarantine=conform(run.quarantine, QUARANTINE, fill),
        sync_run=sync_frame,
        raw_responses=run.raw_responses,
        new_sessions=None
        if run.new_sessions is None
        else run_records.conform_sessions(run.new_sessions),
        session_progress=None
        if run.session_progress is None
        else run_records.conform_session_progress(run.session_progress),
    )


def sync_run_frame(run_id: str, as_of: dt.datetime, values: Mapping[str, Any]) -> pl.DataFrame:
    """The finch_sync_runs row of a run from its values; absent columns are null."""
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
    sync_values = dict(values)
    if sync_values.get("run_id", run_id) != run_id:
        raise ValueError(f"sync_run run_id {sync_values['run_id']!r} != {run_id!r}")
    sync_values["run_id"] = run_id
    sync_values.setdefault("as_of", _utc(as_of, "as_of"))
    schema = polars_schema(SYNC_RUNS)
    unknown = sorted(set(sync_values) - set(schema.names()))
    if unknown:
        raise ValueError(f"{SYNC_RUNS}: unexpected fields {unknown}")
    frame = pl.DataFrame(
        {name: [value] for name, value in sync_values.items()},
        schema={name: schema[name] for name in sync_values},
        strict=False,
    )
    return conform(frame, SYNC_RUNS, missing_as_null=True)


def record_unloaded_run(
    connection: sa.Connection,
    tables: Mapping[str, sa.Table],
    sync_run: pl.DataFrame,
    raw_responses: run_records.RawResponseRows | None,
) -> None:
    """Keep what a run that loaded nothing leaves for diagnosis (held or failed): its
    finch_sync_runs row and its raw responses. Every other table stays as it was."""
    run_id = sync_run["run_id"][0]
    if raw_responses is not None:
        run_records.replace_raw_responses(connection, tables[RAW_RESPONSES], run_id, raw_responses)
    _replace_run_rows(connection, tables[SYNC_RUNS], run_id, sync_run)


_SNAPSHOT_SOURCE = "_wh_snapshot"


@contextmanager
def _snapshot_source(
    connection: sa.Connection, run: _Prepared, diff: SnapshotDiff, plan: HistoryPlan
) -> Iterator[sa.TableClause | None]:
    """DuckDB, when the current table or the history takes every snapshot row (a first
    load): the snapshot registered once as Arrow, for both to read. Otherwise None."""
    wanted = diff.upserts_every_row or (plan.opens_every_row and plan.opened.height > 0)
    if connection.dialect.name != "duckdb" or not wanted or run.connections.is_empty():
        yield None
        return
    with duckdb_dialect.registered(connection, run.connections, _SNAPSHOT_SOURCE) as snapshot:
        yield snapshot


def _write_connections(
    connection: sa.Connection,
    table: sa.Table,
    diff: SnapshotDiff,
    snapshot: sa.TableClause | None,
) -> None:
    _delete_keyed(connection, table, diff.removed_keys)
    # New and changed rows go straight into the target table: their old versions are gone.
    if snapshot is not None and diff.upserts_every_row:
        # DuckDB, every snapshot row written (a first load): read the registered snapshot.
        columns = diff.upserts.columns
        connection.execute(
            table.insert().from_select(columns, sa.select(*(snapshot.c[name] for name in columns)))
        )
    else:
        bulk.write_frame(connection, table, diff.upserts)


def _delete_keyed(connection: sa.Connection, table: sa.Table, keys: pl.DataFrame) -> None:
    """Delete the rows of `table` whose value of `keys`' one column is among its rows."""
    if keys.is_empty():
        return
    [name] = keys.columns
    with bulk.staged(connection, keys, table) as staged:
        connection.execute(table.delete().where(table.c[name].in_(sa.select(staged.c[name]))))


def _write_history(
    connection: sa.Connection,
    history: sa.Table,
    current: sa.Table,
    run: _Prepared,
    plan: HistoryPlan,
    snapshot: sa.TableClause | None,
) -> tuple[int, int, int]:
    if plan.closing_keys.height:
        with bulk.staged(connection, plan.closing_keys, history) as keys:
            closing = sa.and_(history.c.is_current, history.c[KEY].in_(sa.select(keys.c[KEY])))
            connection.execute(history.delete().where(closing, history.c.valid_from == run.as_of))
            connection.execute(
                history.update()
                .where(closing, history.c.valid_from < run.as_of)
                .values(valid_to=run.as_of, is_current=False)
            )
    if plan.opens_every_row and plan.opened.height:
        # First load (or history emptied): every snapshot row opens a version. DuckDB reads
        # them from the snapshot already registered for the current table (in key order,
        # as `prepare` sorted it); PostgreSQL copies them from the current table, where the
        # rows already are, instead of sending them again.
        source_table = current if snapshot is None else snapshot
        source = sa.select(
            source_table.c[KEY],
            sa.literal(run.as_of, history.c.valid_from.type),
            sa.null(),
            sa.true(),
            sa.literal(run.run_id, history.c.run_id.type),
            *(source_table.c[name] for name in TRACKED_ATTRIBUTES),
        )
        if snapshot is None:
            source = source.order_by(current.c[KEY])
        connection.execute(history.insert().from_select(plan.opened.columns, source))
    else:
        bulk.write_frame(connection, history, plan.opened)
    return plan.opened.height, plan.closed, plan.replaced


def _diff_and_plan(
    connection: sa.Connection,
    tables: Mapping[str, sa.Table],
    run: _Prepared,
    hashes: pl.DataFrame,
) -> tuple[SnapshotDiff, HistoryPlan, pl.DataFrame | None]:
    """What the run changes in the current table and its history, and the keys whose
    stored hash differs (see `_keys_whose_hash_differs`), None when every row was compared.

    When the stored row hashes cover the current table, only the rows whose hash differs
    (or whose key is new or gone) are read back and compared; otherwise every stored row.
    """
    current, history = tables[CONNECTIONS], tables[CONNECTIONS_HISTORY]
    stored = tables[CONNECTION_ROW_HASHES]
    kept = bulk.read_narrow(connection, stored, polars_schema(CONNECTION_ROW_HASHES))
    if not _hashes_cover(connection, current, kept.height):
        previous = bulk.read_select(connection, sa.select(current), polars_schema(CONNECTIONS))
        open_versions = _read_open_versions(connection, history, None)
        diff = diff_snapshot(previous, run.connections)
        plan = plan_history(open_versions, run.connections, run.as_of, run.run_id)
        return diff, plan, None
    differing = _keys_whose_hash_differs(kept, hashes)
    unsettled = differing.filter(pl.col("stored")).select(KEY)
    with bulk.staged(connection, unsettled, stored) as keys:
        wanted = sa.select(keys.c[KEY])
        previous = bulk.read_select(
            connection,
            sa.select(current).where(current.c[KEY].in_(wanted)),
            polars_schema(CONNECTIONS),
        )
        open_versions = _read_open_versions(connection, history, history.c[KEY].in_(wanted))
    new_or_changed = differing.filter(pl.col("incoming"))
    candidates = run.connections.filter(pl.col(KEY).is_in(new_or_changed[KEY].implode()))
    unchanged = run.connections.height - candidates.height
    diff = diff_snapshot(previous, candidates, unchanged_elsewhere=unchanged)
    plan = plan_history(open_versions, candidates, run.as_of, run.run_id, history_is_empty=False)
    return diff, plan, differing


def _keys_whose_hash_differs(kept: pl.DataFrame, hashes: pl.DataFrame) -> pl.DataFrame:
    """connection_key, stored, incoming: the keys whose stored hash differs from the run's,
    and on which side each is (both when the row changed)."""
    return (
        kept.join(hashes, on=KEY, how="full", coalesce=True, suffix="_incoming")
        .filter(pl.col("row_hash").ne_missing(pl.col("row_hash_incoming")))
        .select(
            KEY,
            pl.col("row_hash").is_not_null().alias("stored"),
            pl.col("row_hash_incoming").is_not_null().alias("incoming"),
        )
    )


def _hashes_cover(connection: sa.Connection, current: sa.Table, hashes: int) -> bool:
    """Whether every current row has a stored hash: false on a first load, on a warehouse
    written before hashes were kept, or after rows were deleted by hand. (Open history
    versions follow the current table; only those of differing rows are needed.)"""
    if hashes == 0:
        return False
    rows = connection.execute(sa.select(sa.func.count()).select_from(current)).scalar_one()
    return rows == hashes


def _read_open_versions(
    connection: sa.Connection, history: sa.Table, keys: sa.ColumnElement[bool] | None
) -> pl.DataFrame:
    open_columns = (KEY, "valid_from", *TRACKED_ATTRIBUTES)
    history_schema = polars_schema(CONNECTIONS_HISTORY)
    query = sa.select(*(history.c[name] for name in open_columns)).where(history.c.is_current)
    if keys is not None:
        query = query.where(keys)
    return bulk.read_select(
        connection, query, pl.Schema([(name, history_schema[name]) for name in open_columns])
    )


def _write_row_hashes(
    connection: sa.Connection,
    table: sa.Table,
    hashes: pl.DataFrame,
    differing: pl.DataFrame | None,
) -> None:
    """The stored hashes become the run's: those of the keys whose hash differed are
    replaced (a row whose hash differed but whose content compared equal, e.g. after a
    Polars upgrade changed the hash, is not flagged again next run); after a full comparison
    (`differing` None) all of them."""
    if differing is None:
        connection.execute(table.delete())
        bulk.write_frame(connection, table, hashes)
        return
    _delete_keyed(connection, table, differing.filter(pl.col("stored")).select(KEY))
    fresh = hashes.filter(pl.col(KEY).is_in(differing.filter(pl.col("incoming"))[KEY].implode()))
    if fresh.height:
        bulk.write_frame(connection, table, fresh)


def _write_entities(
    connection: sa.Connection, table: sa.Table, entities: pl.DataFrame, live_ids: pl.Series
) -> None:
    """Replace the entity set of each connection whose entities changed (run_id aside), so
    an unchanged connection keeps the rows, and run_id, it had; and remove the entities of
    connections that are no longer live (finch_connections_history keeps their count, the
    runs' raw /introspect answers their details)."""
    stored = bulk.read_select(connection, sa.select(table), polars_schema(CONNECTION_ENTITIES))
    compared = [name for name in entities.columns if name != "run_id"]
    changed_rows = pl.concat(
        [
            entities.join(stored, on=compared, how="anti", nulls_equal=True),
            stored.filter(pl.col("connection_id").is_in(entities["connection_id"].implode())).join(
                entities, on=compared, how="anti", nulls_equal=True
            ),
        ]
    )
    departed = stored.filter(~pl.col("connection_id").is_in(live_ids.implode()))
    ids = pl.concat([changed_rows.select("connection_id"), departed.select("connection_id")])
    ids = ids.unique()
    if ids.is_empty():
        return
    entities = entities.join(ids, on="connection_id", how="semi")
    _delete_keyed(connection, table, ids)
    if not entities.is_empty():
        bulk.write_frame(connection, table, entities.sort("connection_id", "entity_id"))


def _later(stored: sa.ColumnElement, new: sa.ColumnElement) -> sa.ColumnElement:
    # GREATEST and LEAST skip nulls on PostgreSQL and DuckDB but not on Snowflake.
    return sa.func.coalesce(sa.func.greatest(stored, new), stored, new)


def _earlier(stored: sa.ColumnElement, new: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.least(stored, new), stored, new)


def _write_tokens(connection: sa.Connection, table: sa.Table, tokens: pl.DataFrame) -> None:
    if tokens.is_empty():
        return

    def merged(new: Any) -> dict[str, sa.ColumnElement]:
        return {
            "connection_id": sa.func.coalesce(new.connection_id, table.c.connection_id),
            "first_seen_at": _earlier(table.c.first_seen_at, new.first_seen_at),
            "last_seen_at": _later(table.c.last_seen_at, new.last_seen_at),
            "last_outcome": new.last_outcome,
            "last_ok_at": _later(table.c.last_ok_at, new.last_ok_at),
            "last_error": new.last_error,
        }

    with bulk.staged(connection, tokens, table) as staged_tokens:
        dialect_of(connection).upsert(connection, table, staged_tokens, "token_fingerprint", merged)


def _replace_run_rows(
    connection: sa.Connection, table: sa.Table, run_id: str, frame: pl.DataFrame
) -> None:
    connection.execute(table.delete().where(table.c.run_id == run_id))
    bulk.write_frame(connection, table, frame)


def _write_sync_run(connection: sa.Connection, table: sa.Table, run: _Prepared) -> None:
    _replace_run_rows(connection, table, run.run_id, run.sync_run)


def load_run(
    connection: sa.Connection, tables: Mapping[str, sa.Table], run: RunLoad
) -> LoadSummary:
    """Load one run inside the caller's transaction (see the module docstring).

    Args:
        connection: a connection with an open transaction; the caller commits.
        tables: the warehouse tables by name (from `tables.build_metadata`).
        run: the run's frames.
    """
    prepared = prepare(run)
    current = tables[CONNECTIONS]
    history = tables[CONNECTIONS_HISTORY]
    dialect_of(connection).lock_for_load(connection, current)
    sessions = tables[CONNECT_SESSIONS]
    if prepared.new_sessions is not None:
        run_records.add_sessions(connection, sessions, prepared.new_sessions)
    hashes = row_hashes(prepared.connections)
    diff, plan, differing = _diff_and_plan(connection, tables, prepared, hashes)
    with _snapshot_source(connection, prepared, diff, plan) as snapshot:
        _write_connections(connection, current, diff, snapshot)
        opened, closed, replaced = _write_history(
            connection, history, current, prepared, plan, snapshot
        )
    _write_row_hashes(connection, tables[CONNECTION_ROW_HASHES], hashes, differing)
    live_ids = prepared.connections.filter(pl.col("state") == LIVE)["connection_id"]
    _write_entities(connection, tables[CONNECTION_ENTITIES], prepared.entities, live_ids)
    _write_tokens(connection, tables[TOKENS], prepared.tokens)
    _replace_run_rows(connection, tables[QUARANTINE], prepared.run_id, prepared.quarantine)
    if prepared.raw_responses is not None:
        run_records.replace_raw_responses(
            connection, tables[RAW_RESPONSES], prepared.run_id, prepared.raw_responses
        )
    if prepared.session_progress is not None:
        run_records.set_session_progress(connection, sessions, prepared.session_progress)
    _write_sync_run(connection, tables[SYNC_RUNS], prepared)
    return LoadSummary(
        run_id=prepared.run_id,
        inserted=diff.inserted,
        updated=diff.updated,
        deleted=diff.deleted,
        unchanged=diff.unchanged,
        history_opened=opened,
        history_closed=closed,
        history_replaced=replaced,
        entities=prepared.entities.height,
        tokens=prepared.tokens.height,
        quarantined=prepared.quarantine.height,
    )
