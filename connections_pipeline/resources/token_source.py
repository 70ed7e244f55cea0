"""Where access tokens and Connect-session records come from.

Tokens are held in memory only, inside `SourceToken` objects whose repr hides them; anything
that leaves this module refers to a token by its fingerprint.
"""

import csv
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from connections_pipeline.finch import token_fingerprint
from connections_pipeline.resources.redaction import database_url_secrets, safe_database_url, scrub

TOKEN_FRAME_SCHEMA = {
    "token_fingerprint": pl.String,
    "source_connection_id": pl.String,
    "source_disconnected": pl.Boolean,
    "issued_at": pl.Datetime("us", "UTC"),
}
TRUE_TEXT = frozenset({"1", "true", "t", "yes", "y"})


class TokenSourceError(ValueError):
    """The token or session source is unusable; names the setting at fault."""


@dataclass(frozen=True)
class SourceToken:
    access_token: str = field(repr=False)
    fingerprint: str
    connection_id: str | None = None
    disconnected: bool = False
    issued_at: datetime | None = None


@dataclass(frozen=True)
class SourceBatch:
    """What the source holds right now: tokens, sessions, and rows it could not use."""

    tokens: list[SourceToken]
    sessions: list[dict[str, Any]]
    skipped_rows: list[str] = field(default_factory=list)

    def token_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    "token_fingerprint": token.fingerprint,
                    "source_connection_id": token.connection_id,
                    "source_disconnected": token.disconnected,
                    "issued_at": token.issued_at,
                }
                for token in self.tokens
            ],
            schema=TOKEN_FRAME_SCHEMA,
        )


def tokens_from_records(records: Iterable[Mapping[str, Any]], setting: str) -> SourceBatch:
    """Build tokens from row mappings with an `access_token` field (plus optional hints:
    `connection_id`, `disconnected` or `revoked`, `issued_at` or `created_at`)."""
    tokens: dict[str, SourceToken] = {}
    skipped: list[str] = []
    for number, record in enumerate(records, start=1):
        if "access_token" not in record:
            raise TokenSourceError(f"{setting}: row {number} has no access_token field")
        raw = record.get("access_token")
        if isinstance(raw, uuid.UUID):  # a database column of type uuid
            raw = str(raw)
        if raw is not None and not isinstance(raw, str):
            skipped.append(
                f"{setting} row {number}: access_token is not text ({type(raw).__name__})"
            )
            continue
        access_token = (raw or "").strip()
        if not access_token:
            skipped.append(f"{setting} row {number}: empty access_token")
            continue
        fingerprint = token_fingerprint(access_token)
        tokens[fingerprint] = SourceToken(
            access_token=access_token,
            fingerprint=fingerprint,
            connection_id=_text(record.get("connection_id")),
            disconnected=_flag(record.get("disconnected", record.get("revoked"))),
            issued_at=_timestamp(record.get("issued_at", record.get("created_at"))),
        )
    return SourceBatch(tokens=list(tokens.values()), sessions=[], skipped_rows=skipped)


def read_token_file(path: str, setting: str = "CONNECTIONS_TOKENS_FILE") -> SourceBatch:
    """JSON Lines with an `access_token` field, or CSV with an `access_token` column."""
    file = Path(path)
    if not file.is_file():
        raise TokenSourceError(f"{setting}: no such file: {path}")
    if file.suffix.lower() == ".csv":
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if "access_token" not in (reader.fieldnames or []):
                raise TokenSourceError(
                    f"{setting}: CSV has no access_token column (columns: {reader.fieldnames})"
                )
            return tokens_from_records(list(reader), setting)
    return tokens_from_records(_json_lines(file, setting), setting)


def read_session_file(path: str, setting: str = "CONNECTIONS_SESSIONS_FILE") -> list[dict]:
    file = Path(path)
    if not file.is_file():
        raise TokenSourceError(f"{setting}: no such file: {path}")
    return list(_json_lines(file, setting))


def read_token_query(url: str, query: str, sessions_query: str | None = None) -> SourceBatch:
    """Run the configured query against the application database (any SQLAlchemy URL)."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise TokenSourceError(f"CONNECTIONS_TOKENS_URL is not usable: {exc}") from None
    except ValueError:  # e.g. a port that is not a number; the text may hold secrets
        raise TokenSourceError("CONNECTIONS_TOKENS_URL is not a valid database URL") from None
    safe_url = safe_database_url(engine.url)
    try:
        try:
            connection = engine.connect()
        except sa.exc.DBAPIError as exc:
            reason = scrub(str(exc.orig), database_url_secrets(engine.url))
            raise TokenSourceError(
                f"CONNECTIONS_TOKENS_URL ({safe_url}) did not connect: {reason}"
            ) from None
        # Errors past this point are the queries' (SQLite reports even a syntax error as an
        # OperationalError, so the exception class cannot tell connection and query apart).
        with connection:
            columns, rows = _execute(connection, query, "CONNECTIONS_TOKENS_QUERY")
            if "access_token" not in columns:
                raise TokenSourceError(
                    f"CONNECTIONS_TOKENS_QUERY returned no access_token column (got {columns})"
                )
            batch = tokens_from_records(rows, "CONNECTIONS_TOKENS_QUERY")
            sessions = (
                _execute(connection, sessions_query, "CONNECTIONS_SESSIONS_QUERY")[1]
                if sessions_query
                else []
            )
    finally:
        engine.dispose()
    return SourceBatch(batch.tokens, sessions, batch.skipped_rows)


def _execute(
    connection: sa.Connection, query: str, setting: str
) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        result = connection.execute(sa.text(query))
        return list(result.keys()), [dict(row) for row in result.mappings()]
    except sa.exc.DataError as exc:
        # A value error quotes the offending value, which may be a token: say only its kind.
        raise TokenSourceError(
            f"{setting} failed on a value ({type(exc.orig).__name__}); the database's message "
            "is withheld because it quotes row data"
        ) from None
    except sa.exc.StatementError as exc:
        raise TokenSourceError(f"{setting} failed: {exc.orig}") from None


def _json_lines(file: Path, setting: str) -> Iterable[dict[str, Any]]:
    with file.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TokenSourceError(
                    f"{setting}: line {number} is not JSON ({exc.msg})"
                ) from None
            if not isinstance(record, dict):
                raise TokenSourceError(f"{setting}: line {number} is not a JSON object")
            yield record


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_TEXT if value is not None else False


def _timestamp(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
