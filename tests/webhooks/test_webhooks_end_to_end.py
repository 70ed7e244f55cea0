"""Finch webhooks end to end: the emulator over HTTP posts signed events to the receiver,
the sensor asks for a targeted sync, the run loads — and the Connections page shows the
change without the scheduled sync, having asked Finch once per changed connection."""

import collections
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import polars as pl
import pytest
from webhook_helpers import account_updated, delivery

from connections_pipeline.assets.sync import SYNC_GROUP, sync_finch_connections
from connections_pipeline.definitions import SYNC_JOB_NAME
from connections_pipeline.resources import (
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)
from connections_pipeline.webhook_sensor import WEBHOOK_SENSOR_NAME, webhook_sensor
from connections_pipeline.webhooks import WEBHOOK_PATH
from connections_pipeline.webhooks.server import receiver_app
from connections_pipeline.webhooks.server import serve_in_thread as serve_receiver
from finch_sandbox import EndpointFaults, FinchSandbox, SandboxConfig, serve_in_thread

pytestmark = pytest.mark.slow
TIME_SCALE = 0.01


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_resource(request: pytest.FixtureRequest, tmp_path: Path) -> WarehouseResource:
    if request.param == "duckdb":
        return WarehouseResource(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    url = request.getfixturevalue("postgres_url")
    return WarehouseResource(url=url, schema_name=f"wh_{secrets.token_hex(4)}")


@pytest.fixture
def finch() -> Iterator[tuple[FinchSandbox, str]]:
    sandbox = FinchSandbox(SandboxConfig(seed=43, connections=40, time_scale=TIME_SCALE))
    with serve_in_thread(sandbox) as base_url:
        yield sandbox, base_url


def definitions(base_url: str, warehouse: WarehouseResource) -> dg.Definitions:
    """The sync job and the webhook sensor as the code location has them, on test resources."""
    job = dg.define_asset_job(
        SYNC_JOB_NAME,
        selection=dg.AssetSelection.groups(SYNC_GROUP),
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions(
        assets=[sync_finch_connections],
        jobs=[job],
        sensors=[webhook_sensor(SYNC_JOB_NAME)],
        resources={
            "finch": FinchResource(base_url=base_url, time_scale=TIME_SCALE, max_attempts=3),
            "token_source": TokenSourceResource(kind="sandbox"),
            "warehouse": warehouse,
            "sync_guard": SyncGuardResource(),
            "notifier": NotifierResource(),
        },
    )


def single_token_connections(sandbox: FinchSandbox, count: int) -> list[str]:
    tokens = collections.Counter(token["connection_id"] for token in sandbox.tokens())
    return [
        connection.connection_id
        for connection in sandbox.data.connections.values()
        if connection.status == "connected"
        and not connection.disconnected
        and tokens[connection.connection_id] == 1
    ][:count]


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    sensor = next(s for s in defs.sensors or [] if s.name == WEBHOOK_SENSOR_NAME)
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        sensor_name=WEBHOOK_SENSOR_NAME,
        resources={"warehouse": defs.resources["warehouse"]},
    )
    return sensor(context)


def by_key(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["connection_key"]: row for row in frame.iter_rows(named=True)}


def test_a_reauth_and_a_disconnection_reach_the_warehouse_through_webhooks(
    finch: tuple[FinchSandbox, str],
    warehouse_resource: WarehouseResource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox, base_url = finch
    defs = definitions(base_url, warehouse_resource)
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    store = warehouse_resource.open(hold_connections=False)
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance).success  # yesterday's full sync
        before = by_key(store.read_current())
        history_before = store.read_table("finch_connections_history")
        sandbox.advance(1 / 24)  # an hour later, before any webhook is configured
        reauth_id, gone_id = single_token_connections(sandbox, 2)
        with (
            serve_receiver(receiver_app(store, sandbox.webhooks.secret)) as receiver_url,
            httpx.Client(base_url=base_url) as admin,
        ):
            # Every event's first attempt is signed wrong, and every event is delivered twice.
            faults = {"bad_signature_rate": 1.0, "duplicate_rate": 1.0}
            configured = admin.post(
                "/_sandbox/webhooks", json={"url": receiver_url + WEBHOOK_PATH, "faults": faults}
            )
            assert configured.status_code == 200
            admin.post("/_sandbox/stats/reset")
            for connection_id, status in ((reauth_id, "reauth"), (gone_id, "disconnected")):
                answer = admin.post(
                    f"/_sandbox/connections/{connection_id}/status", json={"status": status}
                )
                assert answer.status_code == 200
            assert sandbox.webhooks.wait_until_delivered()
            # An event for a connection the token source has no token of, signed as Finch would.
            body, headers = delivery(
                account_updated("conn-nobody-knows"), secret=sandbox.webhooks.secret
            )
            assert httpx.post(receiver_url + WEBHOOK_PATH, content=body, headers=headers).is_success

            first = tick(defs, instance, None)
            [request] = first.run_requests
            run = job.execute_in_process(
                instance=instance, run_config=request.run_config, tags=request.tags
            )
            assert run.success
            stats = admin.get("/_sandbox/stats").json()
            deliveries = admin.get("/_sandbox/webhooks").json()["deliveries"]
        again = tick(defs, instance, first.cursor)
        events = [str(record) for run_id in (run.run_id,) for record in instance.all_logs(run_id)]

    # The secret is in no log line, run event or table.
    secret = sandbox.webhooks.secret
    texts = [*events, *(r.getMessage() for r in caplog.records)]
    assert texts and not [text for text in texts if secret in text]
    for table in store.tables:
        assert secret not in str(store.read_table(table).rows())

    # One /introspect per changed connection, and no call about any other connection.
    assert sum(stats["by_endpoint"]["introspect"].values()) == 2
    asked = store.read_raw_responses(run.run_id)["connection_id"].drop_nulls().unique()
    assert set(asked.to_list()) == {reauth_id, gone_id}
    assert not again.run_requests

    after = by_key(store.read_current())
    reauth, gone = after[reauth_id], after[gone_id]
    assert (reauth["state"], reauth["connection_status"], reauth["needs_action"]) == (
        "live",
        "reauth",
        True,
    )
    assert reauth["connection_status_label"] == "Re-auth"
    assert (gone["state"], gone["connection_status"]) == ("disconnected", "disconnected")
    assert reauth["run_id"] == gone["run_id"] == run.run_id
    # Every other connection keeps what Finch last said of it, not marked stale (staged rows
    # come from the session ledger, not from Finch). A run recomputes, for every row, what
    # follows from Finch's clock (sync_overdue) and stamps its run_id.
    untouched = {
        key: row
        for key, row in after.items()
        if key not in (reauth_id, gone_id) and row["state"] != "staged"
    }
    assert len(untouched) >= 30
    changed_cells = {
        (key, column)
        for key, row in untouched.items()
        for column, value in row.items()
        if before[key][column] != value and column not in ("sync_overdue", "run_id")
    }
    assert changed_cells == set()
    assert "conn-nobody-knows" not in after
    truth = {row["connection_key"]: row for row in sandbox.truth()}
    assert truth[reauth_id]["connection_status"] == "reauth"
    assert truth[gone_id]["state"] == "disconnected"

    history = store.read_table("finch_connections_history")
    opened = history.join(history_before, on=["connection_key", "valid_from"], how="anti")
    assert sorted(opened["connection_key"].to_list()) == sorted([reauth_id, gone_id])
    assert set(opened["run_id"].to_list()) == {run.run_id}
    assert opened.filter(pl.col("connection_key") == reauth_id)["connection_status"][0] == "reauth"
    assert opened.filter(pl.col("connection_key") == gone_id)["state"][0] == "disconnected"
    closed = history.filter(
        pl.col("connection_key").is_in([reauth_id, gone_id]), ~pl.col("is_current")
    )
    assert closed.height == 2

    # Refused once (bad signature), stored on the retry, acknowledged again as a duplicate.
    answers = collections.defaultdict(list)
    for attempt in deliveries:
        answers[attempt["connection_id"]].append(attempt["status_code"])
    assert dict(answers) == {reauth_id: [401, 200, 200], gone_id: [401, 200, 200]}
    inbox = store.read_table("finch_webhook_events")
    outcomes = {row["connection_id"]: row for row in inbox.iter_rows(named=True)}
    assert inbox.height == 3  # each event once
    assert set(outcomes) == {reauth_id, gone_id, "conn-nobody-knows"}
    assert {cid: row["outcome"] for cid, row in outcomes.items()} == {
        reauth_id: "synced",
        gone_id: "synced",
        "conn-nobody-knows": "unknown_connection",
    }
    assert set(inbox["processed_by_run"].to_list()) == {run.run_id}
    store.dispose()


def test_a_job_completion_asks_for_the_connections_jobs_again(
    finch: tuple[FinchSandbox, str], tmp_path: Path
) -> None:
    sandbox, base_url = finch
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    defs = definitions(base_url, warehouse)
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    store = warehouse.open(hold_connections=False)
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance).success
        automated = [
            row["connection_id"]
            for row in store.read_current().iter_rows(named=True)
            if row["state"] == "live" and row["connection_type"] == "Automated"
        ]
        tokens = collections.Counter(token["connection_id"] for token in sandbox.tokens())
        connection_id = next(cid for cid in automated if tokens[cid] == 1)
        with serve_receiver(receiver_app(store, sandbox.webhooks.secret)) as receiver_url:
            payload = {
                **account_updated(connection_id),
                "event_type": "job.data_sync_all.completed",
                "data": {"job_id": "job-1", "job_url": "https://api.tryfinch.com/jobs/job-1"},
            }
            body, headers = delivery(payload, secret=sandbox.webhooks.secret)
            assert httpx.post(receiver_url + WEBHOOK_PATH, content=body, headers=headers).is_success
        httpx.post(f"{base_url}/_sandbox/stats/reset")
        [request] = tick(defs, instance, None).run_requests
        run = job.execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags
        )
        assert run.success
    stats = httpx.get(f"{base_url}/_sandbox/stats").json()["by_endpoint"]
    assert {endpoint: sum(counts.values()) for endpoint, counts in stats.items()} == {
        "providers": 1,
        "introspect": 1,
        "jobs": 1,
    }
    [event] = store.read_table("finch_webhook_events").iter_rows(named=True)
    assert (event["outcome"], event["processed_by_run"]) == ("synced", run.run_id)
    store.dispose()


def test_an_event_whose_connection_finch_did_not_answer_for_waits(
    finch: tuple[FinchSandbox, str], tmp_path: Path
) -> None:
    sandbox, base_url = finch
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    defs = definitions(base_url, warehouse)
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    store = warehouse.open(hold_connections=False)
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance).success
        [connection_id] = single_token_connections(sandbox, 1)
        before = by_key(store.read_current())[connection_id]
        with serve_receiver(receiver_app(store, sandbox.webhooks.secret)) as receiver_url:
            sandbox.webhooks.configure(receiver_url + WEBHOOK_PATH)
            sandbox.set_connection_status(connection_id, "reauth")
            assert sandbox.webhooks.wait_until_delivered()
        sandbox.set_faults({"introspect": EndpointFaults(error_rate=1.0)})
        [request] = tick(defs, instance, None).run_requests
        run = job.execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags
        )
        assert run.success
        metadata = next(
            event.step_materialization_data.materialization.metadata
            for event in run.get_asset_materialization_events()
            if event.asset_key == dg.AssetKey("finch_webhook_events")
        )
    row = by_key(store.read_current())[connection_id]
    assert (row["connection_status"], row["stale"]) == (before["connection_status"], True)
    [event] = store.read_table("finch_webhook_events").iter_rows(named=True)
    assert (event["processed_at"], event["outcome"]) == (None, None)
    assert metadata["webhook_events"].value == {"left_waiting": 1}
    store.dispose()
