"""Token and session files: JSON Lines, or CSV for tokens."""

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from connections_pipeline.sources.records import (
    SourceBatch,
    SourceRecord,
    TokenSourceError,
    session_rejections,
    tokens_from_source,
)

UNDECODABLE = "is not valid UTF-8"


def read_token_file(path: str, setting: str = "CONNECTIONS_TOKENS_FILE") -> SourceBatch:
    """JSON Lines with an `access_token` field, or CSV with an `access_token` column."""
    file = _existing_file(path, setting)
    if file.suffix.lower() == ".csv":
        return tokens_from_source(_csv_records(file, setting))
    return tokens_from_source(_json_lines(file, setting))


def read_session_file(
    path: str, setting: str = "CONNECTIONS_SESSIONS_FILE"
) -> tuple[list[dict[str, Any]], list[str], pl.DataFrame]:
    """Session records of a JSON Lines file, where each is, and the lines that are not
    records (rejected)."""
    records, locations, unreadable = [], [], []
    for record in _json_lines(_existing_file(path, setting), setting):
        if record.values is None:
            unreadable.append((record.location, None, record.problem or "unusable row"))
            continue
        records.append(dict(record.values))
        locations.append(record.location)
    return records, locations, session_rejections(unreadable)


def _existing_file(path: str, setting: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise TokenSourceError(f"{setting}: no such file: {path}")
    return file


def _json_lines(file: Path, setting: str) -> Iterator[SourceRecord]:
    # Bytes that are not UTF-8 cost their line only: they decode to lone surrogates here
    # and the line is rejected.
    with file.open(encoding="utf-8-sig", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"{setting} {file} line {number}"
            if _has_undecodable(line):
                yield SourceRecord(location, None, f"the line {UNDECODABLE}")
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield SourceRecord(location, None, f"not JSON ({exc.msg})")
                continue
            if not isinstance(record, dict):
                yield SourceRecord(location, None, "not a JSON object")
                continue
            yield SourceRecord(location, record)


def _csv_records(file: Path, setting: str) -> Iterator[SourceRecord]:
    with file.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        if "access_token" not in (reader.fieldnames or []):
            raise TokenSourceError(
                f"{setting}: CSV has no access_token column (columns: {reader.fieldnames})"
            )
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield SourceRecord(f"{setting} {file} line {reader.line_num}", None, str(exc))
                continue
            location = f"{setting} {file} line {reader.line_num}"
            if any(_has_undecodable(str(value)) for value in row.values()):
                yield SourceRecord(location, None, f"the line {UNDECODABLE}")
                continue
            yield SourceRecord(location, row)


def _has_undecodable(text: str) -> bool:
    return any("\udc80" <= character <= "\udcff" for character in text)
