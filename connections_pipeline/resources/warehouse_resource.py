"""The warehouse as a Dagster resource: a SQLAlchemy URL and a schema name."""

from collections.abc import Mapping

import dagster as dg

from connections_pipeline.memory_budget import DEFAULT_MEMORY_LIMIT_MB
from connections_pipeline.redaction import safe_database_url, scrub, url_secrets
from connections_pipeline.resources.redacted_fields import RedactedFields
from connections_pipeline.warehouse import Warehouse, validate_schema_name
from connections_pipeline.warehouse.engine import (
    check_schema_for_url,
    connect_args_secrets,
    parse_connect_args,
    parse_warehouse_url,
)

DEFAULT_WAREHOUSE_URL = "duckdb:///data/connections.duckdb"


class WarehouseResource(RedactedFields, dg.ConfigurableResource):
    """DuckDB file by default; any SQLAlchemy URL (e.g. `postgresql+psycopg://...`) in
    production. The URL may carry a password, so every text form of the resource hides it."""

    url: str = DEFAULT_WAREHOUSE_URL
    schema_name: str = "finch"
    # The driver's own connection arguments as a JSON object (e.g. Snowflake's host and port
    # behind a private link, or a key file's passphrase): shown by key only.
    connect_args: str | None = None
    # CONNECTIONS_MEMORY_LIMIT_MB: see `memory_budget`.
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB

    def _shown(self) -> Mapping[str, str]:
        return {
            "url": repr(safe_database_url(self.url)),
            "connect_args": repr(_keys_only(self.connect_args)),
        }

    def open(self, hold_connections: bool = True) -> Warehouse:
        """The warehouse; ValueError naming the setting when the schema cannot work there
        (checked before anything is connected to or created).

        Args:
            hold_connections: off for a long-lived process that must not keep a DuckDB file
                from the runs (see `Warehouse`).
        """
        check_schema_for_url(parse_warehouse_url(self.url), validate_schema_name(self.schema_name))
        return Warehouse(
            self.url,
            schema=self.schema_name,
            hold_connections=hold_connections,
            connect_args=self.connect_args,
            memory_limit_mb=self.memory_limit_mb,
        )

    def secret_values(self) -> list[str]:
        """The URL's password (user-info or query parameter) and every text value of the
        connection arguments, for scrubbing messages."""
        try:
            arguments = parse_connect_args(self.connect_args)
        except ValueError:
            arguments = {}
        return [*url_secrets(self.url), *connect_args_secrets(arguments)]

    def scrub(self, text: str) -> str:
        """`text` (e.g. an error message) without the URL's password, wherever it sits."""
        return scrub(text, self.secret_values())


def _keys_only(connect_args: str | None) -> str | None:
    """The argument names of a connect-args JSON, never its values."""
    if not connect_args:
        return None
    try:
        return "{" + ", ".join(sorted(parse_connect_args(connect_args))) + "}"
    except ValueError:
        return "(not a JSON object)"
