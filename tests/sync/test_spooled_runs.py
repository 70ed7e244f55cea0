"""A sync whose answers are spooled to disk in many small chunks loads exactly the tables a
sync holding every answer at once loads, on DuckDB (read from the files by DuckDB) and on
PostgreSQL (a chunk at a time); and its spill folder holds no token and does not outlive it."""

from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from sync_helpers import NAMES_AT_ONCE, make_warehouse, served_sandbox

from connections_pipeline.sources.records import SourceBatch
from connections_pipeline.sync import spill
from connections_pipeline.sync.run import run_sync
from connections_pipeline.warehouse import TABLE_COLUMNS, Warehouse

RUN_ID = "spooled-run"
# Whole-run chunk: every answer held until the end, as before the spool existed.
ONE_CHUNK = 2**40
# A few answers per chunk: dozens of files, /jobs bodies alone exceed it.
SMALL_CHUNKS = 16 * 1024
# Differ between two runs by nature: Finch's request ids, and how long each run took.
RUN_BOUND = {"request_id", "started_at", "finished_at", "duration_seconds"}


def _tables(warehouse: Warehouse) -> dict[str, pl.DataFrame]:
    tables = {}
    for name in TABLE_COLUMNS:
        frame = warehouse.read_table(name)
        frame = frame.drop([column for column in frame.columns if column in RUN_BOUND])
        tables[name] = frame.sort(frame.columns, nulls_last=True)
    return tables


def _sync(
    warehouse: Warehouse, finch: Any, source: Any, chunk_bytes: int, progress: Any = None
) -> None:
    # Only the tokens, as a source that keeps no connection id lists them: every
    # /introspect row's connection comes from its decoded answer.
    listed = source.load(finch)
    batch = SourceBatch([replace(token, connection_id=None) for token in listed.tokens], [])
    with warehouse:
        run_sync(
            RUN_ID,
            finch,
            batch,
            warehouse,
            NAMES_AT_ONCE,
            progress=progress,
            spool_chunk_bytes=chunk_bytes,
        )


@pytest.fixture()
def spill_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The spill root of this test alone (the system's temp folder is shared)."""
    root = tmp_path / "spill"
    monkeypatch.setattr(spill, "default_root", lambda: root)
    return root


def test_chunked_runs_load_the_tables_of_a_whole_run(
    tmp_path: Path, postgres_url: str, spill_root: Path
) -> None:
    with served_sandbox(seed=41, connections=60) as (_, finch, source):
        whole = make_warehouse("duckdb", tmp_path / "whole", postgres_url)
        _sync(whole, finch, source, ONE_CHUNK)
        chunked = make_warehouse("duckdb", tmp_path / "chunked", postgres_url)
        _sync(chunked, finch, source, SMALL_CHUNKS)
        on_postgres = make_warehouse("postgres", tmp_path, postgres_url)
        _sync(on_postgres, finch, source, SMALL_CHUNKS)
        sent = _introspect_bodies_sent(finch.base_url, source.load(finch).tokens[:12])

    expected = _tables(whole)
    raw = expected["finch_raw_responses"]
    assert raw.height > 120
    introspected = raw.filter(endpoint="introspect", outcome="ok")
    assert introspected["connection_id"].null_count() == 0
    assert expected["finch_connections"].height > 40
    for warehouse in (chunked, on_postgres):
        actual = _tables(warehouse)
        for name, frame in expected.items():
            assert actual[name].equals(frame), f"{warehouse.dialect}: {name} differs"
        # Through Parquet files and back, each body is the text Finch sent, byte for byte.
        stored = dict(
            actual["finch_raw_responses"]
            .filter(pl.col("token_fingerprint").is_in(list(sent)), endpoint="introspect")
            .select("token_fingerprint", "body")
            .iter_rows()
        )
        assert stored == sent


def _introspect_bodies_sent(base_url: str, tokens: list[Any]) -> dict[str, str]:
    """What the emulator answers each working token's `/introspect` (its clock stands
    still); the warehouse keeps the bodies of successful answers only."""
    bodies = {}
    for token in tokens:
        answer = httpx.get(
            f"{base_url}/introspect",
            headers={
                "Authorization": f"Bearer {token.access_token}",
                "Finch-API-Version": "2020-09-17",
            },
        )
        if answer.status_code == 200:
            bodies[token.fingerprint] = answer.content.decode("utf-8")
    assert len(bodies) > 4
    return bodies


def test_the_spill_folder_holds_fingerprints_never_tokens_and_is_removed(
    tmp_path: Path, postgres_url: str, spill_root: Path
) -> None:
    spilled: dict[str, pl.DataFrame] = {}

    def read_the_spill_folder(endpoint: str, done: int, total: int) -> None:
        # As the answers come in: each file once it is whole (the writer thread may still
        # be writing the newest one; a later call reads it).
        for path in spill_root.glob("run-*/*.parquet"):
            if path.name not in spilled and (chunk := _read_finished(path)) is not None:
                spilled[path.name] = chunk

    with served_sandbox(seed=43, connections=40) as (_, finch, source):
        tokens = [token.access_token for token in source.load(finch).tokens]
        warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
        _sync(warehouse, finch, source, SMALL_CHUNKS, progress=read_the_spill_folder)

    assert len(spilled) > 3
    rows = pl.concat(spilled.values())
    assert rows["token_fingerprint"].drop_nulls().len() > 40
    text = "\n".join(str(value) for row in rows.iter_rows() for value in row)
    assert not [token for token in tokens if token in text]
    assert list(spill_root.glob("run-*")) == []


def _read_finished(path: Path) -> pl.DataFrame | None:
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError):
        return None
