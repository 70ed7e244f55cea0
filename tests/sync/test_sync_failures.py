"""Tokens Finch cannot answer for are reflected, never fatal, never invented or leaked."""

from pathlib import Path

import polars as pl
import pytest
from sync_helpers import make_warehouse, served_sandbox

from connections_pipeline.assets.sync import sync_with_resources

pytestmark = pytest.mark.slow


def test_unknown_revoked_token_is_reported_not_invented(tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=43, connections=40) as (sandbox, finch, source):
        result = sync_with_resources("run-1", finch, source, warehouse)
        revoked_live = {
            token["connection_id"] for token in sandbox.tokens() if token["revoked"]
        } - {row["connection_id"] for row in sandbox.truth() if row["state"] == "disconnected"}
    tokens = warehouse.read_table("finch_tokens")
    invalid = tokens.filter(pl.col("last_outcome") == "invalid_token")
    assert invalid.height == result.sync_run["invalid_tokens"] > 0
    current = warehouse.read_current()
    # Old revoked tokens of live connections change nothing: those connections stay live.
    live_ids = set(current.filter(pl.col("state") == "live")["connection_id"].to_list())
    assert revoked_live <= live_ids
    warehouse.dispose()
