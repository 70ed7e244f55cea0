"""Fixtures of the emulator tests: one seeded sandbox per test and an in-process client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sandbox_helpers import Api, make_sandbox

from finch_sandbox import FinchSandbox


@pytest.fixture
def sandbox() -> FinchSandbox:
    return make_sandbox()


@pytest.fixture
def api(sandbox: FinchSandbox) -> Iterator[Api]:
    client = Api(sandbox)
    try:
        yield client
    finally:
        client.close()
