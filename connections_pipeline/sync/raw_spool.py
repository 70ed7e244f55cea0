"""A run's raw responses, written to local Parquet files in chunks as the answers arrive.

A first sync of a large fleet receives gigabytes of bodies (a `/jobs/automated` listing is
about 20 KB); holding them until the load would make a run's memory grow with the fleet.
The spool keeps a chunk of rows at a time: once a chunk holds `chunk_bytes` of bodies it is
written to the run's spill folder, in a thread of its own, and only what the snapshot needs
stays in memory: every column but the body, and the few fields it reads from the bodies of
`/providers`, `/jobs/automated` and `/employer/company` (`FollowupBodies`). The load reads
the files back one at a time, so the bodies reach the warehouse byte for byte.
"""

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from connections_pipeline.sync.raw_rows import (
    RAW_SCHEMA,
    answered_connections,
    trusted_fetch_times,
    with_answered,
)
from connections_pipeline.transform.finch_clock import ClockReading
from connections_pipeline.transform.parse import FollowupBodies

DEFAULT_CHUNK_BYTES = 32 * 2**20
# Bounds a chunk of bodiless rows (failures) too, which `chunk_bytes` would never close.
MAX_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class _Chunk:
    path: Path
    rows: pl.DataFrame
    bodies: FollowupBodies


class RawSpool:
    """Collects one run's raw rows (`raw_rows.raw_row`) in Parquet files under `folder`."""

    def __init__(self, folder: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self._folder = folder
        self._chunk_bytes = chunk_bytes
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self._chunks: list[Future[_Chunk]] = []
        # One writer: chunks are written in the order they were filled.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raw-spool")

    def add(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        self._pending_bytes += len(row["body"] or "")
        if self._pending_bytes >= self._chunk_bytes or len(self._pending) >= MAX_CHUNK_ROWS:
            self._flush()

    def finish(self, introspections: pl.DataFrame, clock: ClockReading) -> "RawResponses":
        """Every row added, as the warehouse stores them: `/introspect` rows under the
        connection their decoded answer (`introspections`) names, and fetch times outside
        the trusted window of `clock` replaced by its time."""
        self._flush()
        try:
            chunks = [chunk.result() for chunk in self._chunks]
        finally:
            self._writer.shutdown()
        answered = answered_connections(introspections)
        rows = pl.concat([chunk.rows for chunk in chunks]) if chunks else _empty_rows()
        bodies = FollowupBodies.combined([chunk.bodies for chunk in chunks])
        companies = bodies.companies.rename({"company_fetched_at": "fetched_at"})
        return RawResponses(
            files=tuple(chunk.path for chunk in chunks),
            rows=trusted_fetch_times(with_answered(rows, answered), clock),
            bodies=FollowupBodies(
                bodies.providers,
                trusted_fetch_times(companies, clock).rename({"fetched_at": "company_fetched_at"}),
                bodies.connected_at,
            ),
            answered=answered,
            clock=clock,
        )

    def close(self) -> None:
        """Stop the writer (a run that ends before `finish`)."""
        self._writer.shutdown(cancel_futures=True)

    def _flush(self) -> None:
        if not self._pending:
            return
        path = self._folder / f"raw-{len(self._chunks):06d}.parquet"
        self._chunks.append(self._writer.submit(_write_chunk, self._pending, path))
        self._pending, self._pending_bytes = [], 0


def _write_chunk(rows: list[dict[str, Any]], path: Path) -> _Chunk:
    frame = pl.DataFrame(rows, schema=RAW_SCHEMA)
    try:
        # lz4: cheap on CPU, and JSON bodies still shrink several times.
        frame.write_parquet(path, compression="lz4", statistics=False)
    except OSError as exc:
        raise SpillError(
            f"cannot write Finch's answers to the spill folder {path.parent} "
            f"({exc.strerror or exc}); free space there or point TMPDIR elsewhere"
        ) from None
    return _Chunk(path, frame.drop("body"), FollowupBodies.of(frame))


class SpillError(OSError):
    """The run's answers could not be written to its spill folder (full disk, no right)."""


def _empty_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA).drop("body")


@dataclass(frozen=True)
class RawResponses:
    """One run's raw responses: the bodies in Parquet files, the rest in memory.

    Attributes:
        files: the chunks, in the order their rows arrived.
        rows: every row but its body, as the warehouse stores it.
        bodies: what the snapshot reads from the follow-up bodies.
        answered: token_fingerprint -> the connection its `/introspect` answer names.
        clock: the run's clock reading, whose window the fetch times are kept within.
    """

    files: tuple[Path, ...]
    rows: pl.DataFrame
    bodies: FollowupBodies
    answered: pl.DataFrame
    clock: ClockReading

    @property
    def height(self) -> int:
        return self.rows.height

    @property
    def fetch_window(self) -> tuple[datetime, datetime, datetime]:
        """(earliest, latest) trusted fetch times, and the time that replaces the others."""
        return self.clock.earliest, self.clock.latest, self.clock.as_of

    def frames(self) -> Iterator[pl.DataFrame]:
        """The rows with their bodies, one chunk at a time, as the warehouse stores them."""
        for path in self.files:
            chunk = pl.read_parquet(path)
            yield trusted_fetch_times(with_answered(chunk, self.answered), self.clock)
