"""The embedded default: an in-process Finch emulator when FINCH_BASE_URL is unset.

The only module of the pipeline that imports `finch_sandbox`; everything else reaches the
emulator through these two functions (or over HTTP, as it reaches Finch).
"""

import functools

import httpx

from finch_sandbox import FinchSandbox, SandboxConfig, sandbox_transport

__all__ = ["FinchSandbox", "embedded_sandbox", "embedded_transport"]


@functools.cache
def embedded_sandbox(seed: int, connections: int, time_scale: float) -> FinchSandbox:
    """One emulator per process and dataset, shared by the Finch and token-source resources."""
    return FinchSandbox(SandboxConfig(seed=seed, connections=connections, time_scale=time_scale))


def embedded_transport(sandbox: FinchSandbox) -> httpx.AsyncBaseTransport:
    """An httpx transport that answers from `sandbox` in-process, without a socket."""
    return sandbox_transport(sandbox)
