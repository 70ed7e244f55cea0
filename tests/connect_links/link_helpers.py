"""Shared pieces of the Connect-link tests: an embedded emulator, a DuckDB ledger, requests."""

from dataclasses import replace
from pathlib import Path
from typing import Any

from connections_pipeline.connect_links import ConnectLinkRequest
from connections_pipeline.resources import FinchResource, TokenSourceResource
from connections_pipeline.warehouse import Warehouse

CONNECTIONS = 40


def embedded(tmp_path: Path, seed: int) -> tuple[FinchResource, TokenSourceResource, Warehouse]:
    """The in-process emulator (one per seed and process: use a seed per test) and a
    DuckDB warehouse in `tmp_path`."""
    finch = FinchResource(sandbox_seed=seed, sandbox_connections=CONNECTIONS)
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'links.duckdb'}", schema="finch")
    return finch, TokenSourceResource(kind="sandbox"), warehouse


def link_request(**changes: Any) -> ConnectLinkRequest:
    base = ConnectLinkRequest(
        customer_id="cust-acme-1",
        customer_name="Acme Widgets",
        products=("company", "directory"),
        redirect_uri="https://app.example.com/finch/callback",
        customer_email="payroll@acme.example",
        created_by="test",
    )
    return replace(base, **changes)
