"""Tokens and sessions from the application's own database, through a query."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from connections_pipeline.redaction import safe_database_url, scrub, url_secrets
from connections_pipeline.sources.records import SourceBatch, TokenSourceError, tokens_from_records

# Rows fetched from the application's database at a time.
SOURCE_BATCH_ROWS = 10_000


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
            reason = scrub(str(exc.orig), url_secrets(engine.url))
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
                list(_execute(connection, sessions_query, "CONNECTIONS_SESSIONS_QUERY")[1])
                if sessions_query
                else []
            )
    finally:
        engine.dispose()
    locations = [f"CONNECTIONS_SESSIONS_QUERY row {n}" for n in range(1, len(sessions) + 1)]
    return batch.with_sessions(sessions, locations)


def _execute(
    connection: sa.Connection, query: str, setting: str
) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """The query's column names and its rows, fetched `SOURCE_BATCH_ROWS` at a time (a
    server-side cursor where the driver has one), so a million-row source is never held
    whole."""
    with _query_errors(setting):
        result = connection.execution_options(yield_per=SOURCE_BATCH_ROWS).execute(sa.text(query))

    def rows() -> Iterator[dict[str, Any]]:
        with _query_errors(setting):
            for row in result.mappings():
                yield dict(row)

    return list(result.keys()), rows()


@contextmanager
def _query_errors(setting: str) -> Iterator[None]:
    try:
        yield
    except sa.exc.DataError as exc:
        # A value error quotes the offending value, which may be a token: say only its kind.
        raise TokenSourceError(
            f"{setting} failed on a value ({type(exc.orig).__name__}); the database's message "
            "is withheld because it quotes row data"
        ) from None
    except sa.exc.StatementError as exc:
        raise TokenSourceError(f"{setting} failed: {exc.orig}") from None
