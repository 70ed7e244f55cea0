"""The pipeline's vocabulary, the emulator's copy of Finch's side and the official SDK agree.

The pipeline declares each term once (`concepts.py`, the column registry); the emulator keeps
its own, as Finch would. These tests are what stops the two, and Finch's published types,
from drifting apart.
"""

import typing
from typing import Any

from finch.types import Introspection
from finch.types.connect.session_new_params import SessionNewParams
from finch.types.introspection import AuthenticationMethod, ConnectionStatus

from connections_pipeline import concepts
from connections_pipeline.export.columns import DASHBOARD_COLUMNS
from connections_pipeline.warehouse.columns import CONNECTIONS_COLUMNS
from finch_sandbox import records as sandbox_records
from finch_sandbox import validation as sandbox_validation
from finch_sandbox.providers import ASSISTED as SANDBOX_ASSISTED
from finch_sandbox.providers import AUTOMATED_AUTH_TYPES as SANDBOX_AUTOMATED
from finch_sandbox.truth import TRUTH_COLUMNS


def _literal_values(annotation: Any) -> set[str]:
    """Every string of the `Literal[...]` inside an SDK annotation (List/Optional/Required)."""
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    values: set[str] = set()
    for argument in typing.get_args(annotation):
        values |= _literal_values(argument)
    return values


def _session_param(name: str) -> set[str]:
    return _literal_values(typing.get_type_hints(SessionNewParams, include_extras=True)[name])


def test_connect_products_are_one_list_everywhere() -> None:
    sdk = _session_param("products")
    assert len(sdk) == 14
    assert set(concepts.CONNECT_PRODUCTS) == sdk
    assert set(sandbox_validation.CONNECT_PRODUCTS) == sdk
    assert len(concepts.CONNECT_PRODUCTS) == len(set(concepts.CONNECT_PRODUCTS))


def test_connect_sandbox_modes_match_the_sdk() -> None:
    assert set(concepts.SANDBOX_MODES) == _session_param("sandbox")


def test_connection_statuses_match_the_emulator_and_the_sdk() -> None:
    sdk = _literal_values(ConnectionStatus.model_fields["status"].annotation)
    assert set(concepts.CONNECTION_STATUSES) == sdk
    assert set(sandbox_records.CONNECTION_STATUSES) == sdk
    assert set(concepts.NEEDS_ACTION_STATUSES) == set(sandbox_records.NEEDS_ACTION_STATUSES)
    # Every status has the label the CSV shows, and so does the pipeline's own "disconnected".
    assert set(concepts.CONNECTION_STATUS_LABELS) == sdk | {concepts.DISCONNECTED_STATUS}


def test_auth_methods_and_client_types_match_the_sdk() -> None:
    sdk_methods = _literal_values(AuthenticationMethod.model_fields["type"].annotation)
    assert set(concepts.AUTH_METHODS) == sdk_methods
    assert set(concepts.AUTOMATED_AUTH_TYPES) == set(SANDBOX_AUTOMATED)
    assert concepts.ASSISTED_AUTH == SANDBOX_ASSISTED
    client_types = _literal_values(Introspection.model_fields["client_type"].annotation)
    assert set(concepts.CLIENT_TYPES) == client_types


def test_the_emulators_connection_types_are_the_pipelines() -> None:
    labels = {
        sandbox_records.connection_type_label(methods)
        for methods in (("credential",), ("assisted",), ("oauth", "assisted"), ())
    }
    assert labels == set(concepts.CONNECTION_TYPES)


def test_the_emulators_session_statuses_are_known_to_the_pipeline() -> None:
    emulator = {
        sandbox_records.SESSION_PENDING,
        sandbox_records.SESSION_COMPLETED,
        sandbox_records.SESSION_EXPIRED,
    }
    assert emulator <= set(concepts.SESSION_STATUSES)
    assert {sandbox_records.KIND_CONNECT, sandbox_records.KIND_REAUTHENTICATE} == {
        concepts.KIND_CONNECT,
        concepts.KIND_REAUTHENTICATE,
    }


def test_the_ground_truth_and_the_csv_use_registry_columns() -> None:
    registry = {column.name for column in CONNECTIONS_COLUMNS}
    assert set(TRUTH_COLUMNS) - registry == set()
    assert {column for _, column in DASHBOARD_COLUMNS} - registry == set()
