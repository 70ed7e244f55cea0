"""Create a link against the emulator, let the employer finish or not, and sync."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest
from link_helpers import embedded, link_request

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.connect_links import ConnectLinkError, create_connect_link
from connections_pipeline.resources import FinchResource
from connections_pipeline.warehouse import Warehouse
from finch_sandbox import EndpointFaults, FinchSandbox, serve_in_thread

pytestmark = pytest.mark.slow


def _ledger_rows(warehouse: Warehouse) -> list[tuple]:
    return sorted(warehouse.read_sessions().rows(), key=repr)


def test_completed_link_becomes_a_live_connection_with_its_customer(tmp_path: Path) -> None:
    finch, source, warehouse = embedded(tmp_path, seed=501)
    sandbox = finch.sandbox()
    request = link_request(customer_id="cust-e2e-501", customer_name="Completed Co")
    link = create_connect_link(request, finch, warehouse)
    assert link.connect_url.startswith("https://")
    assert link.created_at == sandbox.now

    first = sync_with_resources("run-1", finch, source, warehouse)
    staged = first.connections.filter(pl.col("session_id") == link.session_id)
    assert staged["state"].to_list() == ["staged"]
    assert staged["customer_name"].to_list() == ["Completed Co"]

    completion = sandbox.complete_session(link.session_id)
    sync_with_resources("run-2", finch, source, warehouse)
    current = warehouse.read_current()
    live = current.filter(pl.col("connection_id") == completion["connection_id"])
    assert live.select("state", "customer_id", "customer_name").rows() == [
        ("live", "cust-e2e-501", "Completed Co")
    ]
    assert current.filter(pl.col("connection_key") == link.session_id).height == 0
    session = warehouse.read_sessions().filter(pl.col("session_id") == link.session_id)
    row = session.row(0, named=True)
    assert (row["status"], row["connection_id"]) == ("completed", completion["connection_id"])
    assert row["time_to_connect_seconds"] >= 0
    # The ledger was written by us, not re-imported from the token source.
    assert row["created_by"] == "test"
    warehouse.dispose()


def test_uncompleted_link_past_its_expiry_leaves_staged_as_expired(tmp_path: Path) -> None:
    finch, source, warehouse = embedded(tmp_path, seed=502)
    sandbox = finch.sandbox()
    request = link_request(customer_id="cust-e2e-502", minutes_to_expire=30)
    link = create_connect_link(request, finch, warehouse)
    first = sync_with_resources("run-1", finch, source, warehouse)
    assert first.connections.filter(pl.col("connection_key") == link.session_id).height == 1

    sandbox.advance(0.05)  # 72 minutes: past the 30-minute expiry
    [emulated] = [s for s in sandbox.sessions() if s["session_id"] == link.session_id]
    assert emulated["status"] != "completed"
    second = sync_with_resources("run-2", finch, source, warehouse)
    assert second.connections.filter(pl.col("connection_key") == link.session_id).height == 0
    assert warehouse.read_current().filter(pl.col("session_id") == link.session_id).height == 0
    session = warehouse.read_sessions().filter(pl.col("session_id") == link.session_id)
    assert session.select("status", "connection_id").rows() == [("expired", None)]
    warehouse.dispose()


def test_second_active_link_for_a_customer_needs_force(tmp_path: Path) -> None:
    finch, _, warehouse = embedded(tmp_path, seed=503)
    first = create_connect_link(link_request(), finch, warehouse)
    before = _ledger_rows(warehouse)
    with pytest.raises(ConnectLinkError, match=f"active Connect session {first.session_id}"):
        create_connect_link(link_request(), finch, warehouse)
    assert _ledger_rows(warehouse) == before
    second = create_connect_link(link_request(force=True), finch, warehouse)
    assert second.session_id != first.session_id
    assert warehouse.read_sessions().height == 2
    # Another customer is not blocked.
    create_connect_link(link_request(customer_id="cust-other"), finch, warehouse)
    assert warehouse.read_sessions().height == 3
    warehouse.dispose()


def test_failed_request_leaves_the_ledger_unchanged(tmp_path: Path) -> None:
    # A 429 is Finch refusing the request unprocessed: retried, and when every attempt is
    # refused, nothing was created and nothing is recorded. (A 5xx may have taken effect:
    # see test_link_outcome_unknown.py.)
    finch, _, warehouse = embedded(tmp_path, seed=504)
    create_connect_link(link_request(customer_id="cust-kept"), finch, warehouse)
    before = _ledger_rows(warehouse)
    sandbox = finch.sandbox()
    sandbox.set_faults({"connect_sessions": EndpointFaults(rate_limit_rate=1.0)})
    try:
        with pytest.raises(ConnectLinkError, match="Finch did not create the Connect session"):
            create_connect_link(link_request(customer_id="cust-failed"), finch, warehouse)
    finally:
        sandbox.set_faults({})
    assert sandbox.stats()["by_endpoint"]["connect_sessions"]["429"] == finch.max_attempts
    assert _ledger_rows(warehouse) == before
    sessions = {s["customer_id"] for s in sandbox.sessions()}
    assert "cust-failed" not in sessions
    warehouse.dispose()


def test_wrong_client_secret_records_nothing_and_shows_no_secret(tmp_path: Path) -> None:
    finch, _, warehouse = embedded(tmp_path, seed=505)
    sandbox = finch.sandbox()
    create_connect_link(link_request(customer_id="cust-kept"), finch, warehouse)
    before = _ledger_rows(warehouse)
    served = _served_with_wrong_secret(sandbox, finch)
    with served as resource, pytest.raises(ConnectLinkError, match="HTTP 401") as error:
        create_connect_link(link_request(customer_id="cust-denied"), resource, warehouse)
    assert "wrong-secret-value" not in str(error.value)
    assert _ledger_rows(warehouse) == before
    ledger_text = warehouse.read_sessions().write_csv()
    assert sandbox.credentials[1] not in ledger_text
    warehouse.dispose()


def test_unknown_provider_is_refused_before_any_session_is_created(tmp_path: Path) -> None:
    finch, _, warehouse = embedded(tmp_path, seed=506)
    sandbox = finch.sandbox()
    sessions_before = len(sandbox.sessions())
    with pytest.raises(ConnectLinkError, match=r"known providers: .*gusto"):
        create_connect_link(link_request(provider="gustoo"), finch, warehouse)
    assert len(sandbox.sessions()) == sessions_before
    assert warehouse.read_sessions().height == 0
    link = create_connect_link(link_request(provider="gusto"), finch, warehouse)
    assert warehouse.read_sessions()["provider_id"].to_list() == ["gusto"]
    assert link.session_id in {s["session_id"] for s in sandbox.sessions()}
    warehouse.dispose()


@contextmanager
def _served_with_wrong_secret(
    sandbox: FinchSandbox, resource: FinchResource
) -> Iterator[FinchResource]:
    """The same emulator over loopback HTTP, with credentials it does not know."""
    with serve_in_thread(sandbox) as base_url:
        yield resource.model_copy(
            update={
                "base_url": base_url,
                "client_id": "x",
                "client_secret": "wrong-secret-value",
                "time_scale": 0.01,
            }
        )
