"""The SQL token source against a real PostgreSQL and a SQLite file."""

import datetime as dt
import secrets
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sources_helpers import assert_no_token_in, fingerprint, make_token

from connections_pipeline.sources.records import TokenSourceError
from connections_pipeline.sources.sql import read_token_query

UTC = dt.UTC
PASSWORD = "pw-" + secrets.token_hex(8)


@pytest.fixture
def pg_tokens(postgres_url: str) -> Iterator[tuple[str, str, list[str]]]:
    """(url, table, tokens): a table of this test's own in the run's PostgreSQL database."""
    table = f"app_tokens_{secrets.token_hex(6)}"
    tokens = [make_token("pg-a"), make_token("pg-b"), make_token("pg-c")]
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"CREATE TABLE {table} (id serial PRIMARY KEY, token text, conn text, "
                "revoked boolean NOT NULL DEFAULT false, created_at timestamptz)"
            )
        )
        connection.execute(
            sa.text(
                f"INSERT INTO {table} (token, conn, revoked, created_at) VALUES "
                "(:t0, 'conn-a', false, '2026-03-01 10:00:00+00'),"
                "(:t1, NULL, true, '2026-03-01 12:00:00+02'),"
                "(:t2, 'conn-c', false, NULL),"
                "('', 'conn-empty', false, NULL),"
                "(NULL, 'conn-null', false, NULL),"
                "(:t0, 'conn-a-again', false, NULL)"
            ),
            {"t0": tokens[0], "t1": tokens[1], "t2": tokens[2]},
        )
    try:
        yield postgres_url, table, tokens
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


def _query(table: str) -> str:
    return (
        f"SELECT token AS access_token, conn AS connection_id, revoked, created_at "
        f"FROM {table} ORDER BY id"
    )


def test_postgres_query_yields_tokens_with_hints(pg_tokens: tuple[str, str, list[str]]) -> None:
    url, table, (a, b, c) = pg_tokens
    batch = read_token_query(url, _query(table))

    # Token a is listed twice with different connection ids: which is right cannot be known,
    # so neither row is used and both are reported.
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(b), fingerprint(c)]
    second, third = batch.tokens
    assert (second.connection_id, second.disconnected) == (None, True)
    assert second.issued_at == dt.datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert (third.connection_id, third.disconnected, third.issued_at) == ("conn-c", False, None)
    conflict = (
        "the same access_token is listed 2 times with different details (connection_id, "
        "disconnected, issued_at, customer or company) (CONNECTIONS_TOKENS_QUERY row 1, "
        "CONNECTIONS_TOKENS_QUERY row 6); none of them is used"
    )
    assert batch.skipped_rows == [
        "CONNECTIONS_TOKENS_QUERY row 4: empty access_token",
        "CONNECTIONS_TOKENS_QUERY row 5: empty access_token",
        f"CONNECTIONS_TOKENS_QUERY row 1: {conflict}",
        f"CONNECTIONS_TOKENS_QUERY row 6: {conflict}",
    ]
    assert batch.rejected["record_key"].to_list()[2:] == [fingerprint(a)] * 2
    assert batch.sessions == []
    assert_no_token_in(repr(batch), a, b, c)


def test_postgres_sessions_query(pg_tokens: tuple[str, str, list[str]]) -> None:
    url, table, _ = pg_tokens
    sessions_query = (
        "SELECT 'sess-1' AS session_id, 'cust-1' AS customer_id, "
        "TIMESTAMPTZ '2026-03-01 10:00:00+00' AS created_at"
    )
    batch = read_token_query(url, _query(table), sessions_query)
    assert batch.sessions == [
        {
            "session_id": "sess-1",
            "customer_id": "cust-1",
            "created_at": dt.datetime(2026, 3, 1, 10, tzinfo=UTC),
        }
    ]
    assert batch.session_locations == ["CONNECTIONS_SESSIONS_QUERY row 1"]
    assert len(batch.tokens) == 2


def test_postgres_uuid_tokens(postgres_url: str) -> None:
    table = f"app_uuid_tokens_{secrets.token_hex(6)}"
    value = uuid.uuid4()
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE TABLE {table} (access_token uuid)"))
            connection.execute(sa.text(f"INSERT INTO {table} VALUES (:v)"), {"v": value})
        batch = read_token_query(postgres_url, f"SELECT access_token FROM {table}")
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(str(value))]
    assert batch.skipped_rows == []


def test_query_without_access_token_names_the_query_setting(
    pg_tokens: tuple[str, str, list[str]],
) -> None:
    url, table, tokens = pg_tokens
    with pytest.raises(TokenSourceError, match=r"^CONNECTIONS_TOKENS_QUERY returned no access_tok"):
        read_token_query(url, f"SELECT token, conn FROM {table}")
    try:
        read_token_query(url, f"SELECT token, conn FROM {table}")
    except TokenSourceError as error:
        assert "token" in str(error) and "conn" in str(error)
        assert_no_token_in(str(error), *tokens)


@pytest.mark.parametrize(
    "query",
    [
        "SELEC access_token FROM nowhere",
        "SELECT access_token FROM table_that_does_not_exist_here",
        "SELECT 1/0 AS access_token",
    ],
)
def test_failing_postgres_query_names_the_query_setting(postgres_url: str, query: str) -> None:
    with pytest.raises(TokenSourceError, match=r"^CONNECTIONS_TOKENS_QUERY failed"):
        read_token_query(postgres_url, query)


def test_value_errors_do_not_quote_the_value(pg_tokens: tuple[str, str, list[str]]) -> None:
    # Casting a token to a number fails with a message that quotes the token itself.
    url, table, tokens = pg_tokens
    with pytest.raises(
        TokenSourceError, match="CONNECTIONS_TOKENS_QUERY failed on a value"
    ) as error:
        read_token_query(url, f"SELECT token::int AS access_token FROM {table}")
    assert_no_token_in(str(error.value), *tokens)


def test_failing_sessions_query_names_the_sessions_setting(
    pg_tokens: tuple[str, str, list[str]],
) -> None:
    url, table, tokens = pg_tokens
    with pytest.raises(TokenSourceError, match=r"^CONNECTIONS_SESSIONS_QUERY failed: ") as error:
        read_token_query(url, _query(table), "SELECT * FROM no_sessions_table_here")
    assert_no_token_in(str(error.value), *tokens)


def test_unreachable_server_names_the_url_setting_without_the_password() -> None:
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/x"
    with pytest.raises(TokenSourceError, match=r"^CONNECTIONS_TOKENS_URL ") as error:
        read_token_query(url, "SELECT 'x' AS access_token")
    message = str(error.value)
    assert "did not connect" in message
    assert "127.0.0.1:1" in message
    assert PASSWORD not in message
    assert PASSWORD not in repr(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_missing_database_names_the_url_setting_without_the_password(postgres_url: str) -> None:
    url = (
        sa.make_url(postgres_url)
        .set(database=f"cp_missing_{secrets.token_hex(4)}", password=PASSWORD)
        .render_as_string(hide_password=False)
    )
    with pytest.raises(TokenSourceError, match=r"^CONNECTIONS_TOKENS_URL .* did not connect") as e:
        read_token_query(url, "SELECT 'x' AS access_token")
    assert PASSWORD not in str(e.value)


@pytest.mark.parametrize(
    "url",
    [
        f"not a url {PASSWORD}",
        f"nosuchdialect://user:{PASSWORD}@host/db",
        f"postgresql+psycopg://user:{PASSWORD}@host:notaport/db",
    ],
    # Stable ids: the password is random, and parallel workers must collect the same tests.
    ids=["not-a-url", "unknown-dialect", "bad-port"],
)
def test_unusable_url_names_the_url_setting_without_the_password(url: str) -> None:
    with pytest.raises(TokenSourceError, match=r"^CONNECTIONS_TOKENS_URL") as error:
        read_token_query(url, "SELECT 'x' AS access_token")
    assert PASSWORD not in str(error.value)


@pytest.fixture
def sqlite_tokens(tmp_path: Path) -> tuple[str, list[str]]:
    tokens = [make_token("lite-a"), make_token("lite-b")]
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE tokens (access_token TEXT, connection_id TEXT, disconnected INT, "
            "issued_at TEXT)"
        )
        db.executemany(
            "INSERT INTO tokens VALUES (?, ?, ?, ?)",
            [
                (tokens[0], "conn-a", 0, "2026-03-01T10:00:00Z"),
                (tokens[1], "conn-b", 1, None),
                (" ", None, 0, None),
            ],
        )
    db.close()
    return f"sqlite:///{path}", tokens


def test_sqlite_file_source(sqlite_tokens: tuple[str, list[str]]) -> None:
    url, (a, b) = sqlite_tokens
    batch = read_token_query(url, "SELECT * FROM tokens ORDER BY rowid")
    assert [t.fingerprint for t in batch.tokens] == [fingerprint(a), fingerprint(b)]
    assert batch.tokens[0].issued_at == dt.datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert (batch.tokens[1].connection_id, batch.tokens[1].disconnected) == ("conn-b", True)
    assert batch.skipped_rows == ["CONNECTIONS_TOKENS_QUERY row 3: empty access_token"]
    assert_no_token_in(repr(batch), a, b)


@pytest.mark.parametrize(
    "query", ["SELEC access_token FROM tokens", "SELECT access_token FROM no_such_table"]
)
def test_failing_sqlite_query_names_the_query_not_the_url(
    sqlite_tokens: tuple[str, list[str]], query: str
) -> None:
    url, tokens = sqlite_tokens
    with pytest.raises(TokenSourceError, match=r"^CONNECTIONS_TOKENS_QUERY failed: ") as error:
        read_token_query(url, query)
    assert "did not connect" not in str(error.value)
    assert_no_token_in(str(error.value), *tokens)


def test_sqlite_file_in_a_missing_directory_names_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'app.db'}"
    with pytest.raises(TokenSourceError, match=r"^CONNECTIONS_TOKENS_URL .* did not connect"):
        read_token_query(url, "SELECT 'x' AS access_token")
