"""The warehouse as a Dagster resource: a SQLAlchemy URL and a schema name."""

import dagster as dg
import sqlalchemy as sa

from connections_pipeline.resources.redaction import redacted_repr
from connections_pipeline.warehouse import Warehouse

DEFAULT_WAREHOUSE_URL = "duckdb:///data/connections.duckdb"


class WarehouseResource(dg.ConfigurableResource):
    """DuckDB file by default; any SQLAlchemy URL (e.g. `postgresql+psycopg://...`) in
    production. The URL may carry a password, so the repr hides it."""

    url: str = DEFAULT_WAREHOUSE_URL
    schema_name: str = "finch"

    def __repr__(self) -> str:
        return redacted_repr(self).replace(self.url, _safe(self.url))

    def open(self) -> Warehouse:
        return Warehouse(self.url, schema=self.schema_name)


def _safe(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "<unparsable URL>"
