"""One hostile body among good tokens, through Dagster: that token's typed failure with its
reason, the run `partial` on its first attempt, every good token loaded.

Regression: a `/introspect` or `/employer/company` body nested ~1,000 levels deep (2 KB)
raised RecursionError in the client's required-field check; the sync asset failed, Dagster
retried it after 330 s and 990 s, and the good tokens beside it loaded nothing.
"""

import json
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from guards.guard_helpers import run_row, write_token_file
from hostile_server import serve_hostile
from sync.sync_helpers import TIME_SCALE, make_warehouse

from connections_pipeline.assets.sync import sync_finch_connections
from connections_pipeline.decoding_limits import MAX_JSON_DEPTH
from connections_pipeline.finch import token_fingerprint
from connections_pipeline.resources import (
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)
from finch_sandbox import FinchSandbox, SandboxConfig

pytestmark = pytest.mark.slow
GOOD_TOKENS = 11
DEPTH = 1_000
ENDPOINT_PATHS = {"introspect": "/introspect", "company": "/employer/company"}


def _nested_body(fields: dict[str, Any]) -> bytes:
    """A body with the endpoint's required fields and an unknown field nested DEPTH deep."""
    head = json.dumps(fields)[:-1]
    return f'{head}, "deep": {"[" * DEPTH}{"]" * DEPTH}}}'.encode()


def _one_token_per_live_connection(sandbox: FinchSandbox, count: int) -> list[dict[str, Any]]:
    live = {row["connection_id"] for row in sandbox.truth() if row["state"] == "live"}
    freshest: dict[str, dict[str, Any]] = {}
    for token in sandbox.tokens():
        if token["revoked"] or token["connection_id"] not in live:
            continue
        best = freshest.get(token["connection_id"])
        if best is None or token["issued_at"] > best["issued_at"]:
            freshest[token["connection_id"]] = token
    tokens = sorted(freshest.values(), key=lambda token: token["connection_id"])
    assert len(tokens) >= count, "the seeded dataset has too few live connections"
    return tokens[:count]


@pytest.mark.parametrize("endpoint", ["introspect", "company"])
@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_a_nested_body_among_good_tokens_fails_that_token_and_the_run_is_partial(
    backend: str, endpoint: str, tmp_path: Path, postgres_url: str
) -> None:
    sandbox = FinchSandbox(SandboxConfig(seed=41, connections=40, time_scale=TIME_SCALE))
    tokens = _one_token_per_live_connection(sandbox, GOOD_TOKENS + 1)
    bad, good = tokens[0], tokens[1:]
    required = (
        {"connection_id": bad["connection_id"], "connection_status": {"status": "connected"}}
        if endpoint == "introspect"
        else {"id": bad["company_id"], "legal_name": "Deep Inc."}
    )
    answers = {(ENDPOINT_PATHS[endpoint], bad["access_token"]): _nested_body(required)}
    token_file = write_token_file(tmp_path / "tokens.jsonl", tokens)
    warehouse = make_warehouse(backend, tmp_path, postgres_url)
    instance = dg.DagsterInstance.ephemeral()
    with serve_hostile(sandbox, answers) as base_url:
        resources = {
            "finch": FinchResource(
                base_url=base_url, time_scale=TIME_SCALE, timeout_seconds=5.0, max_attempts=3
            ),
            "token_source": TokenSourceResource(kind="file", tokens_file=str(token_file)),
            "warehouse": WarehouseResource(
                url=warehouse.url.render_as_string(hide_password=False),
                schema_name=warehouse.schema,
            ),
            "sync_guard": SyncGuardResource(company_share=0.9),
            "notifier": NotifierResource(),
        }
        result = dg.materialize(
            [sync_finch_connections], resources=resources, instance=instance, raise_on_error=False
        )

    # One attempt, no Dagster retry: the asset did not raise.
    assert result.success
    events = instance.all_logs(result.run_id)
    assert not [e for e in events if e.dagster_event and e.dagster_event.is_step_up_for_retry]
    run = run_row(warehouse, result.run_id)
    assert run["status"] == "partial"
    fingerprint = token_fingerprint(bad["access_token"])
    raw = warehouse.read_raw_responses(result.run_id)
    [failed] = raw.filter(
        (pl.col("endpoint") == endpoint) & (pl.col("token_fingerprint") == fingerprint)
    ).to_dicts()
    assert failed["outcome"] == "failed"
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in failed["failure_reason"]
    # No more of the body than a bounded excerpt is kept anywhere.
    assert failed["body"] is None
    assert len(failed["failure_reason"]) < 300
    # A deterministic answer is not worth the retries a transient one gets.
    assert raw.filter(pl.col("outcome") == "failed").height == 1

    current = warehouse.read_current().filter(pl.col("state") == "live")
    good_ids = {token["connection_id"] for token in good}
    if endpoint == "introspect":
        assert run["failed_tokens"] == 1
        assert set(current["connection_id"]) == good_ids
        tokens_table = warehouse.read_tokens().filter(pl.col("token_fingerprint") == fingerprint)
        assert tokens_table["last_outcome"].to_list() == ["failed"]
        assert "nested deeper than" in tokens_table["last_error"][0]
    else:
        assert run["failed_followups"] == 1
        assert set(current["connection_id"]) == good_ids | {bad["connection_id"]}
        [row] = current.filter(pl.col("connection_id") == bad["connection_id"]).to_dicts()
        assert row["company_name"] != "Deep Inc."
        assert "nested deeper than" in row["last_error"]
    warehouse.dispose()
