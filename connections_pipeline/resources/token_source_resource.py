"""The token and session source as a Dagster resource."""

from dataclasses import replace
from typing import Literal, cast, get_args

import dagster as dg
import polars as pl

from connections_pipeline.redaction import url_secrets
from connections_pipeline.resources.finch_api import FinchResource
from connections_pipeline.resources.redacted_fields import RedactedFields
from connections_pipeline.sources.files import read_session_file, read_token_file
from connections_pipeline.sources.records import SourceBatch, TokenSourceError, tokens_from_records
from connections_pipeline.sources.sandbox_ledgers import read_served_sandbox
from connections_pipeline.sources.sql import read_token_query

SourceKind = Literal["auto", "file", "sql", "sandbox"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)
# The setting that selects each source of the application's own tokens.
EMBEDDED_SOURCE_SETTINGS = {"file": "CONNECTIONS_TOKENS_FILE", "sql": "CONNECTIONS_TOKENS_URL"}


class TokenSourceResource(RedactedFields, dg.ConfigurableResource):
    """Where access tokens and Connect-session records come from.

    `auto` picks the file when CONNECTIONS_TOKENS_FILE is set, the SQL query when
    CONNECTIONS_TOKENS_URL is set, and the embedded emulator's own tokens when FINCH_BASE_URL
    is unset. `sandbox` reads the tokens of an emulator served at FINCH_BASE_URL.
    """

    # A plain str, checked in `resolved_kind`: a Literal field refuses the EnvVar that
    # binds CONNECTIONS_TOKENS_SOURCE, and the code location would not load at all.
    kind: str = "auto"
    tokens_file: str | None = None
    sessions_file: str | None = None
    tokens_url: str | None = None
    tokens_query: str | None = None
    sessions_query: str | None = None

    def secret_values(self) -> list[str]:
        """The token database URL's password, for scrubbing messages."""
        return url_secrets(self.tokens_url)

    def resolved_kind(self, finch: FinchResource) -> SourceKind:
        """The source this configuration means; refuses contradictory or missing settings."""
        if self.kind not in SOURCE_KINDS:
            raise TokenSourceError(
                f"CONNECTIONS_TOKENS_SOURCE must be one of {', '.join(SOURCE_KINDS)}, "
                f"got {self.kind!r}"
            )
        if self.tokens_file and self.tokens_url:
            raise TokenSourceError(
                "CONNECTIONS_TOKENS_FILE and CONNECTIONS_TOKENS_URL are both set; choose one"
            )
        if self.tokens_url and not self.tokens_query:
            raise TokenSourceError(
                "CONNECTIONS_TOKENS_URL is set but CONNECTIONS_TOKENS_QUERY is not"
            )
        if self.tokens_query and not self.tokens_url:
            raise TokenSourceError(
                "CONNECTIONS_TOKENS_QUERY is set but CONNECTIONS_TOKENS_URL is not"
            )
        kind = self._kind()
        if finch.embedded and kind in ("file", "sql"):
            # The embedded emulator knows only its own tokens: real ones would all answer 401
            # and every live connection would look disconnected.
            raise TokenSourceError(
                f"{EMBEDDED_SOURCE_SETTINGS[kind]} is set but FINCH_BASE_URL is not: your "
                "tokens would be sent to the embedded Finch emulator, which knows none of "
                "them; set FINCH_BASE_URL (e.g. https://api.tryfinch.com)"
            )
        if kind is not None:
            return kind
        if finch.embedded:
            return "sandbox"
        raise TokenSourceError(
            "FINCH_BASE_URL is set but no token source is: set CONNECTIONS_TOKENS_FILE or "
            "CONNECTIONS_TOKENS_URL + CONNECTIONS_TOKENS_QUERY "
            "(or CONNECTIONS_TOKENS_SOURCE=sandbox for a served sandbox emulator)"
        )

    def _kind(self) -> SourceKind | None:
        if self.kind != "auto":
            return cast(SourceKind, self.kind)
        if self.tokens_file:
            return "file"
        if self.tokens_url:
            return "sql"
        return None

    def load(self, finch: FinchResource) -> SourceBatch:
        kind = self.resolved_kind(finch)
        if kind == "file":
            if not self.tokens_file:
                raise TokenSourceError(
                    "CONNECTIONS_TOKENS_SOURCE=file needs CONNECTIONS_TOKENS_FILE"
                )
            batch = read_token_file(self.tokens_file)
            if not self.sessions_file:
                return batch
            sessions, locations, unreadable = read_session_file(self.sessions_file)
            batch = batch.with_sessions(sessions, locations)
            return replace(batch, rejected=pl.concat([batch.rejected, unreadable]))
        if kind == "sql":
            if not (self.tokens_url and self.tokens_query):
                raise TokenSourceError(
                    "CONNECTIONS_TOKENS_SOURCE=sql needs CONNECTIONS_TOKENS_URL and "
                    "CONNECTIONS_TOKENS_QUERY"
                )
            return read_token_query(self.tokens_url, self.tokens_query, self.sessions_query)
        if finch.embedded:
            sandbox = finch.sandbox()
            tokens, sessions = sandbox.tokens(), sandbox.sessions()
        else:
            tokens, sessions = read_served_sandbox(str(finch.base_url))
        return tokens_from_records(tokens, "sandbox tokens").with_sessions(sessions)
