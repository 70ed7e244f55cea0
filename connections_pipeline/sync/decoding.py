"""Decode `/introspect` answers while the rest of the run's calls are still in flight.

Each body is decoded once, by Polars with the introspection schema (`transform.parse`), in
chunks handed to a worker thread as the answers arrive: the decoding overlaps the waiting
on Finch's rate limits instead of following it, and the snapshot starts from typed columns.
"""

import asyncio
from typing import Any

import polars as pl

from connections_pipeline.sync.raw_rows import RAW_SCHEMA
from connections_pipeline.transform.parse import parse_introspections

CHUNK_ROWS = 2_000


class IntrospectionDecoder:
    """Collects `/introspect` raw rows and decodes every `chunk_rows` of them in a thread."""

    def __init__(self, chunk_rows: int = CHUNK_ROWS) -> None:
        self._chunk_rows = chunk_rows
        self._pending: list[dict[str, Any]] = []
        self._chunks: list[asyncio.Future[tuple[pl.DataFrame, pl.DataFrame]]] = []

    def add(self, row: dict[str, Any]) -> None:
        """Take one raw row (only successful answers have a body to decode)."""
        if row["body"] is None:
            return
        self._pending.append(row)
        if len(self._pending) >= self._chunk_rows:
            self._decode_pending()

    async def decoded(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(introspections, rejected) of every row added, as `parse_introspections`."""
        self._decode_pending()
        parts = await asyncio.gather(*self._chunks)
        if not parts:
            return parse_introspections(pl.DataFrame(schema=RAW_SCHEMA))
        return (
            pl.concat([parsed for parsed, _ in parts]),
            pl.concat([rejected for _, rejected in parts]),
        )

    def _decode_pending(self) -> None:
        if not self._pending:
            return
        chunk = pl.DataFrame(self._pending, schema=RAW_SCHEMA)
        self._pending = []
        self._chunks.append(asyncio.ensure_future(asyncio.to_thread(parse_introspections, chunk)))
