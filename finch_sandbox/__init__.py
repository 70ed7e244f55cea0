"""A local, Finch-compatible API with a seeded, evolving dataset and a Dashboard ground truth.

Serves the Finch endpoints the pipeline uses (introspect, automated jobs, company, providers,
Connect sessions, token exchange, disconnect, sandbox connections) with Finch's auth schemes,
error bodies and published rate limits, plus `/_sandbox/` routes to read the ground truth and
move virtual time, and Finch's signed webhooks sent to a configured loopback URL. Use it
in-process through `sandbox_transport`, over HTTP with `serve_in_thread`, or from the command
line with `python -m finch_sandbox serve`.
"""

from .app import create_app
from .config import EndpointFaults, SandboxConfig
from .emulator import FinchSandbox
from .server import serve_in_thread
from .transport import sandbox_transport

__all__ = [
    "EndpointFaults",
    "FinchSandbox",
    "SandboxConfig",
    "create_app",
    "sandbox_transport",
    "serve_in_thread",
]
