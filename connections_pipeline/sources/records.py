"""Source rows to tokens: one per distinct access token, and every unusable row rejected.

Tokens are held in memory only, inside `SourceToken` objects whose repr hides them; anything
that leaves this module refers to a token by its fingerprint.

A row the pipeline cannot use (no token, a token that could not travel in an HTTP header, an
unparseable time, the same token listed twice with different details, a line that is not a
record) costs that row only: it is returned in `SourceBatch.rejected`, in the shape of
`finch_quarantine`, with the file and line (or query row) and the reason, and never the token.
"""

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import polars as pl

from connections_pipeline.finch import token_fingerprint
from connections_pipeline.redaction import is_secret_name
from connections_pipeline.transform.parse import MAX_ID_CHARS
from connections_pipeline.transform.token_frame import CONNECTION_DETAILS, TOKEN_FRAME_SCHEMA

# The shape of a rejected source row: the columns of finch_quarantine a run does not fill.
REJECTED_SCHEMA = {
    "record_kind": pl.String,
    "record_key": pl.String,
    "reason": pl.String,
    "payload": pl.String,
}
TOKEN_ROW = "token_source_row"
SESSION_ROW = "session_source_row"
TRUE_TEXT = frozenset({"1", "true", "t", "yes", "y"})
# A token goes out as `Authorization: Bearer <token>`: visible ASCII only.
HEADER_SAFE = frozenset(chr(code) for code in range(0x21, 0x7F))
MAX_PAYLOAD_VALUE_CHARS = 1_000


class TokenSourceError(ValueError):
    """The token or session source is unusable; names the setting at fault."""


@dataclass(frozen=True, slots=True)
class SourceToken:
    access_token: str = field(repr=False)
    fingerprint: str
    connection_id: str | None = None
    disconnected: bool = False
    issued_at: datetime | None = None
    details: tuple[tuple[str, str], ...] = ()

    def detail(self, name: str) -> str | None:
        """One of CONNECTION_DETAILS, as the source gave it (None when it gave none)."""
        return next((value for key, value in self.details if key == name), None)

    def hints(self) -> tuple[Any, ...]:
        """What the source says about the token besides the token itself."""
        return (self.connection_id, self.disconnected, self.issued_at, self.details)


@dataclass(frozen=True)
class SourceRecord:
    """One row of a source: where it is, and its values (None when it is not a record)."""

    location: str
    values: Mapping[str, Any] | None
    problem: str | None = None


def _empty_rejected() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTED_SCHEMA)


@dataclass(frozen=True)
class SourceBatch:
    """What the source holds right now: tokens, sessions, and the rows it could not use.

    Attributes:
        tokens: one per distinct access token.
        sessions: Connect-session records as the source gave them.
        rejected: unusable rows (record_kind, record_key, reason, payload), reason first
            naming where the row is.
        duplicate_rows: token rows that repeated an earlier row exactly and were merged.
        session_locations: where each of `sessions` is, for reasons naming it.
    """

    tokens: list[SourceToken]
    sessions: list[dict[str, Any]]
    rejected: pl.DataFrame = field(default_factory=_empty_rejected)
    duplicate_rows: int = 0
    session_locations: list[str] | None = None

    @cached_property
    def token_frame(self) -> pl.DataFrame:
        """One row per token, built column by column (no dict per token), once: the run and
        its extraction both read it."""
        tokens = self.tokens
        columns: dict[str, list[Any]] = {
            "token_fingerprint": [token.fingerprint for token in tokens],
            "source_connection_id": [token.connection_id for token in tokens],
            "source_disconnected": [token.disconnected for token in tokens],
            "issued_at": [token.issued_at for token in tokens],
            **{
                f"source_{name}": [token.detail(name) for token in tokens]
                for name in CONNECTION_DETAILS
            },
        }
        return pl.DataFrame(columns, schema=TOKEN_FRAME_SCHEMA)

    @property
    def skipped_rows(self) -> list[str]:
        """The reasons of the rejected rows, each naming its row."""
        return self.rejected["reason"].to_list()

    def with_sessions(
        self, sessions: list[dict[str, Any]], locations: list[str] | None = None
    ) -> "SourceBatch":
        return SourceBatch(self.tokens, sessions, self.rejected, self.duplicate_rows, locations)


def tokens_from_records(records: Iterable[Mapping[str, Any]], setting: str) -> SourceBatch:
    """Build tokens from row mappings with an `access_token` field (plus optional hints:
    `connection_id`, `disconnected` or `revoked`, `issued_at` or `created_at`); rows are
    named `<setting> row <n>`."""
    return tokens_from_source(
        SourceRecord(f"{setting} row {number}", record)
        for number, record in enumerate(records, start=1)
    )


def tokens_from_source(records: Iterable[SourceRecord]) -> SourceBatch:
    """Tokens from source records: unusable rows rejected with their reason, rows repeating a
    token with the same details merged, rows repeating it with other details rejected (which
    of them is right cannot be known).

    `records` is read once, as it comes (a SQL source streams it in batches): only each
    token and where it was listed are kept, never the row itself.
    """
    rejected: list[dict[str, Any]] = []
    listed: dict[str, tuple[str, SourceToken]] = {}
    repeats: dict[str, list[tuple[str, SourceToken]]] = {}
    for record in records:
        token = _token_of(record)
        if isinstance(token, RowProblem):
            rejected.append(_rejection(TOKEN_ROW, record, token))
        elif token.fingerprint in listed:
            repeats.setdefault(token.fingerprint, []).append((record.location, token))
        else:
            listed[token.fingerprint] = (record.location, token)
    tokens, duplicates = [], 0
    for fingerprint, first in listed.items():
        copies = [first, *repeats.get(fingerprint, ())]
        if len({token.hints() for _, token in copies}) == 1:
            tokens.append(copies[-1][1])
            duplicates += len(copies) - 1
            continue
        where = ", ".join(location for location, _ in copies)
        problem = RowProblem(
            f"the same access_token is listed {len(copies)} times with different details "
            f"(connection_id, disconnected, issued_at, customer or company) ({where}); none "
            "of them is used",
            fingerprint,
        )
        rejected += [
            _rejection(TOKEN_ROW, SourceRecord(location, _hints_of(token)), problem)
            for location, token in copies
        ]
    return SourceBatch(tokens, [], _rejected_frame(rejected), duplicates)


def _hints_of(token: SourceToken) -> dict[str, Any]:
    """What a row said besides its token: the details two conflicting rows disagree on."""
    return {
        "connection_id": token.connection_id,
        "disconnected": token.disconnected,
        "issued_at": token.issued_at,
        **dict(token.details),
    }


@dataclass(frozen=True)
class RowProblem:
    """Why a source row cannot be used, and its token's fingerprint when it had one."""

    reason: str
    fingerprint: str | None = None


def _token_of(record: SourceRecord) -> SourceToken | RowProblem:
    """The token of one row, or why the row cannot be used."""
    values = record.values
    if values is None:
        return RowProblem(record.problem or "unusable row")
    if "access_token" not in values:
        return RowProblem("no access_token field")
    raw = values.get("access_token")
    if isinstance(raw, uuid.UUID):  # a database column of type uuid
        raw = str(raw)
    if raw is not None and not isinstance(raw, str):
        return RowProblem(f"access_token is not text ({type(raw).__name__})")
    access_token = (raw or "").strip()
    if not access_token:
        return RowProblem("empty access_token")
    fingerprint = token_fingerprint(access_token)
    if not set(access_token) <= HEADER_SAFE:
        return RowProblem(
            "access_token holds characters an HTTP header cannot carry "
            "(NUL or other control characters, spaces or non-ASCII)",
            fingerprint,
        )
    texts = {name: _text(values.get(name)) for name in ("connection_id", *CONNECTION_DETAILS)}
    for name, text in texts.items():
        if text is not None and ("\x00" in text or len(text) > MAX_ID_CHARS):
            return RowProblem(
                f"{name} holds a NUL character or more than {MAX_ID_CHARS} characters",
                fingerprint,
            )
    issued = values.get("issued_at", values.get("created_at"))
    issued_at = _timestamp(issued)
    if issued_at is None and not _blank(issued):
        name = "issued_at" if "issued_at" in values else "created_at"
        return RowProblem(f"{name} is not an ISO 8601 time", fingerprint)
    disconnected = _flag(values.get("disconnected", values.get("revoked")))
    details = tuple((name, texts[name]) for name in CONNECTION_DETAILS if texts[name] is not None)
    return SourceToken(
        access_token, fingerprint, texts["connection_id"], disconnected, issued_at, details
    )


def _rejection(kind: str, record: SourceRecord, problem: RowProblem) -> dict[str, Any]:
    return {
        "record_kind": kind,
        "record_key": problem.fingerprint or record.location,
        "reason": f"{record.location}: {problem.reason}",
        "payload": _payload(record.values, problem.fingerprint),
    }


def _payload(values: Mapping[str, Any] | None, fingerprint: str | None) -> str | None:
    """The row as JSON for diagnosis: the token replaced by its fingerprint, and any field
    whose name says it holds a secret left out."""
    if values is None:
        return None
    kept: dict[str, Any] = {} if fingerprint is None else {"token_fingerprint": fingerprint}
    for name, value in values.items():
        if is_secret_name(str(name)):
            continue
        text = value if value is None or isinstance(value, bool | int | float) else str(value)
        if isinstance(text, str):
            text = text[:MAX_PAYLOAD_VALUE_CHARS]
        kept[str(name)] = text
    # json.dumps escapes NUL and lone surrogates, which PostgreSQL text cannot hold.
    return json.dumps(kept, default=str)


def session_rejections(
    rows: Iterable[tuple[str, Mapping[str, Any] | None, str]],
) -> pl.DataFrame:
    """Rejected session rows from (location, values, reason); keyed by session id."""
    return _rejected_frame(
        [
            {
                **_rejection(SESSION_ROW, SourceRecord(location, values), RowProblem(reason)),
                "record_key": _text((values or {}).get("session_id")) or location,
            }
            for location, values, reason in rows
        ]
    )


def _rejected_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=REJECTED_SCHEMA) if rows else _empty_rejected()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_TEXT if value is not None else False


def _timestamp(value: Any) -> datetime | None:
    if _blank(value):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
