"""A scanner for secrets, and collectors of every place a secret could end up.

The scanner reports which secret it found by a label ("access token #3"), never by value,
so a failing assertion does not print the secret it is complaining about.
"""

import base64
import json
import logging
import re
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import sqlalchemy as sa

# Schemas every database has and that hold no data of ours.
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast", "main"})


UUID_PATTERN = r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}"
UUID_SHAPE = re.compile(UUID_PATTERN, re.IGNORECASE)
# A lookahead, so that matches may overlap: hex just before a token cannot hide it.
UUID_ANYWHERE = re.compile(f"(?=({UUID_PATTERN}))", re.IGNORECASE)


@dataclass
class SecretScanner:
    """Finds any of the registered secrets, in any of the forms they could leak in.

    Matching is case-insensitive. UUID-shaped secrets (the emulator's access tokens) are
    found with or without hyphens, in one pass over the text; every other secret is
    searched as written, URL-encoded, and escaped as repr() and JSON would escape it.
    (`Bearer <token>` contains the token, so it is found as the token.)
    """

    _uuids: dict[str, str] = field(default_factory=dict)
    _others: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, value: str) -> None:
        if not value or len(value) < 8:
            raise ValueError(f"{label}: too short to search for without false positives")
        if UUID_SHAPE.fullmatch(value):
            self._uuids[value.replace("-", "").lower()] = label
            return
        for form in {value, quote(value, safe=""), repr(value)[1:-1], json.dumps(value)[1:-1]}:
            self._others[form.lower()] = label

    def add_basic_auth(self, label: str, client_id: str, client_secret: str) -> None:
        """The `Authorization: Basic` value of a client id and secret (with or without
        padding); the secret alone is registered too."""
        encoded = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        self._others[encoded.rstrip("=").lower()] = f"Basic credentials of {label}"
        self.add(label, client_secret)

    @property
    def count(self) -> int:
        return len({*self._uuids.values(), *self._others.values()})

    def find(self, text: str) -> set[str]:
        """Labels of the secrets in `text`."""
        found = {
            self._uuids[key]
            for match in UUID_ANYWHERE.finditer(text)
            if (key := match.group(1).replace("-", "").lower()) in self._uuids
        }
        lowered = text.lower()
        found |= {label for form, label in self._others.items() if form in lowered}
        return found


@dataclass
class Corpus:
    """Texts to scan, each with the place it came from."""

    texts: list[tuple[str, str]] = field(default_factory=list)

    def add(self, source: str, text: str) -> None:
        self.texts.append((source, text))

    def extend(self, items: Iterable[tuple[str, str]]) -> None:
        self.texts.extend(items)

    def sources(self, prefix: str) -> list[tuple[str, str]]:
        return [(source, text) for source, text in self.texts if source.startswith(prefix)]

    def leaks(self, scanner: SecretScanner, prefix: str = "") -> list[tuple[str, str]]:
        """(source, secret label) for every secret found in the texts under `prefix`."""
        return sorted(
            (source, label) for source, text in self.sources(prefix) for label in scanner.find(text)
        )


class RecordingHandler(logging.Handler):
    """Keeps every log record, formatted with its traceback and stack (like caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.lines.append(f"{text} args={record.args!r}")


def exception_texts(label: str, error: BaseException) -> Iterator[tuple[str, str]]:
    """str(), repr() and every argument of an exception and of its causes and contexts."""
    seen: set[int] = set()
    current: BaseException | None = error
    depth = 0
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield f"{label} [{depth}] {type(current).__name__}", f"{current!s}\n{current!r}"
        yield f"{label} [{depth}] args", repr(current.args)
        current = current.__cause__ or current.__context__
        depth += 1


def representations(label: str, value: Any) -> Iterator[tuple[str, str]]:
    """repr(), str() and format() of `value`."""
    yield f"{label} repr", repr(value)
    yield f"{label} str", str(value)
    yield f"{label} format", f"{value}"


def warehouse_texts(url: str, schemas: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Every column of every row of every table and view in `schemas` (all non-system
    schemas when None), one text per table."""
    engine = sa.create_engine(url)
    texts = []
    try:
        with engine.connect() as connection:
            listed = connection.execute(
                sa.text("select table_schema, table_name from information_schema.tables")
            ).all()
            wanted = set(schemas) if schemas is not None else None
            for schema, name in sorted(listed):
                if (wanted is None and schema in SYSTEM_SCHEMAS) or (
                    wanted is not None and schema not in wanted
                ):
                    continue
                rows = connection.execute(sa.text(f'select * from "{schema}"."{name}"')).mappings()
                cells = [f"{column}={value!s}" for row in rows for column, value in row.items()]
                texts.append((f"warehouse {schema}.{name}", "\n".join(cells)))
    finally:
        engine.dispose()
    return texts


def file_texts(root: Path, label: str, pattern: str = "*") -> list[tuple[str, str]]:
    """Every file under `root` (matching `pattern`) as bytes, decoded as latin-1 so any
    ASCII secret is found as is, and every SQLite database's cells, zlib-compressed blobs
    decompressed."""
    texts = []
    for path in sorted(p for p in root.rglob(pattern) if p.is_file()):
        data = path.read_bytes()
        texts.append((f"{label} file {path.relative_to(root)}", data.decode("latin-1")))
        if data.startswith(b"SQLite format 3"):
            texts += _sqlite_cells(path, f"{label} sqlite {path.relative_to(root)}")
    return texts


def _sqlite_cells(path: Path, label: str) -> list[tuple[str, str]]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in connection.execute("select name from sqlite_master where type = 'table'")
        ]
        texts = []
        for table in tables:
            cells = [
                _cell_text(value)
                for row in connection.execute(f'select * from "{table}"')
                for value in row
            ]
            texts.append((f"{label} table {table}", "\n".join(cells)))
        return texts
    finally:
        connection.close()


def _cell_text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return zlib.decompress(value).decode("utf-8", "replace")
        except zlib.error:
            return value.decode("latin-1")
    return str(value)


def dagster_texts(instance: dg.DagsterInstance) -> tuple[list[tuple[str, str]], int]:
    """Every run (config, tags), its job and plan snapshots, and every event log record,
    serialized whole (metadata and error info included). Also returns the record count."""
    texts = []
    records = 0
    for run in instance.get_runs():
        texts.append((f"dagster run {run.run_id}", f"{dg.serialize_value(run)}\n{run!r}"))
        if run.job_snapshot_id:
            snapshot = instance.get_job_snapshot(run.job_snapshot_id)
            texts.append((f"dagster job snapshot {run.run_id}", dg.serialize_value(snapshot)))
        if run.execution_plan_snapshot_id:
            plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            texts.append((f"dagster plan snapshot {run.run_id}", dg.serialize_value(plan)))
        for number, record in enumerate(instance.all_logs(run.run_id)):
            records += 1
            texts.append(
                (
                    f"dagster event {run.run_id} #{number}",
                    f"{dg.serialize_value(record)}\n{record!r}",
                )
            )
    return texts, records
