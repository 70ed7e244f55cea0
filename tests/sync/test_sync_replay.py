"""The raw tables hold everything a run learned from Finch: it can be rebuilt without Finch."""

from pathlib import Path

import pytest
from sync_helpers import make_warehouse, served_sandbox

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.sync.run import CONNECTIONS_COLUMNS_NAMES
from connections_pipeline.transform.snapshot import SnapshotInputs, build_snapshot
from connections_pipeline.warehouse import empty_frame

pytestmark = pytest.mark.slow


def test_a_run_rebuilds_from_its_raw_responses(tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse("postgres", tmp_path, postgres_url)
    with served_sandbox(seed=47, connections=50) as (sandbox, finch, source):
        result = sync_with_resources("run-1", finch, source, warehouse)
        batch = source.load(finch)
    stats_before = sandbox.stats()["requests"]

    raw = warehouse.read_raw_responses("run-1")
    replayed = build_snapshot(
        SnapshotInputs(
            run_id="run-1",
            as_of=result.as_of,
            raw=raw,
            token_source=batch.token_frame,
            previous=empty_frame("finch_connections"),
            previous_tokens=empty_frame("finch_tokens"),
            sessions=warehouse.read_sessions(),
        ),
        CONNECTIONS_COLUMNS_NAMES,
    ).connections
    stored = warehouse.read_current()
    assert raw.height == result.request_stats["requests"]
    assert replayed.sort("connection_key").equals(stored.sort("connection_key"))
    assert sandbox.stats()["requests"] == stats_before  # nothing asked of Finch
    warehouse.dispose()
