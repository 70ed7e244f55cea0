"""Command line: `python -m finch_sandbox serve [options]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime

from .config import ALL_ENDPOINTS, EndpointFaults, SandboxConfig
from .emulator import FinchSandbox
from .server import NonLoopbackHostError, base_url_of, bind_loopback, is_loopback, uvicorn_server
from .webhooks import WebhookFaults


def _probability(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _port(text: str) -> int:
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {text}")
    return value


def _start_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from None


def _host(text: str) -> str:
    if not is_loopback(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a loopback address; the sandbox only binds to 127.0.0.1, ::1 "
            "or localhost"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m finch_sandbox",
        description="A local Finch API emulator with a seeded, evolving dataset.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the emulator over HTTP on loopback")
    serve.add_argument("--host", type=_host, default="127.0.0.1", help="loopback address")
    serve.add_argument("--port", type=_port, default=8765, help="0 picks a free port")
    serve.add_argument("--seed", type=int, default=7, help="seed of the generated dataset")
    serve.add_argument(
        "--connections", type=_count, default=200, help="employer connections to generate"
    )
    serve.add_argument(
        "--time-scale",
        type=_positive,
        default=1.0,
        help="multiplies every rate-limit window and the IP block",
    )
    serve.add_argument(
        "--no-rate-limits", action="store_true", help="answer every request, never 429"
    )
    serve.add_argument(
        "--start-time",
        type=_start_time,
        default=None,
        help="virtual clock start, ISO 8601 (default: today 00:00 UTC)",
    )
    faults = serve.add_argument_group("faults (applied to every endpoint)")
    faults.add_argument(
        "--latency-ms", type=_non_negative, default=0.0, help="added to every answer"
    )
    faults.add_argument(
        "--latency-jitter-ms", type=_non_negative, default=0.0, help="random extra latency, up to"
    )
    faults.add_argument(
        "--error-rate", type=_probability, default=0.0, help="share of answers that are a 5xx"
    )
    faults.add_argument(
        "--hang-rate", type=_probability, default=0.0, help="share of requests that hang"
    )
    faults.add_argument(
        "--hang-seconds", type=_non_negative, default=0.0, help="how long a hang lasts"
    )
    faults.add_argument(
        "--drop-rate",
        type=_probability,
        default=0.0,
        help="share of connections closed without an answer",
    )
    faults.add_argument(
        "--malformed-rate",
        type=_probability,
        default=0.0,
        help="share of answers whose body is not valid JSON",
    )
    faults.add_argument(
        "--rate-limit-rate",
        type=_probability,
        default=0.0,
        help="share of answers that are a 429 regardless of the limits",
    )
    faults.add_argument(
        "--extra-fields", action="store_true", help="add fields Finch may add in the future"
    )
    faults.add_argument(
        "--after-effect",
        action="store_true",
        help="delays, hangs and 5xx come after the request took effect (Finch did the work, "
        "the answer was late or lost) instead of before",
    )
    hooks = serve.add_argument_group("webhooks (see POST /_sandbox/webhooks)")
    hooks.add_argument(
        "--webhook-url",
        default=None,
        help="post signed account.updated and job completion events here (a loopback URL); "
        "the secret is webhook_secret in GET /_sandbox/credentials",
    )
    hooks.add_argument(
        "--webhook-duplicate-rate",
        type=_probability,
        default=0.0,
        help="share of events delivered twice",
    )
    hooks.add_argument(
        "--webhook-bad-signature-rate",
        type=_probability,
        default=0.0,
        help="share of deliveries with a wrong signature",
    )
    hooks.add_argument(
        "--webhook-delay-seconds",
        type=_non_negative,
        default=0.0,
        help="delay before each delivery",
    )
    return parser


def webhook_faults_from_args(args: argparse.Namespace) -> WebhookFaults:
    return WebhookFaults(
        duplicate_rate=args.webhook_duplicate_rate,
        bad_signature_rate=args.webhook_bad_signature_rate,
        delay_seconds=args.webhook_delay_seconds,
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    faults = EndpointFaults(
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        error_rate=args.error_rate,
        hang_rate=args.hang_rate,
        hang_seconds=args.hang_seconds,
        drop_rate=args.drop_rate,
        malformed_rate=args.malformed_rate,
        extra_fields=args.extra_fields,
        rate_limit_rate=args.rate_limit_rate,
        after_effect=args.after_effect,
    )
    return SandboxConfig(
        seed=args.seed,
        connections=args.connections,
        time_scale=args.time_scale,
        rate_limits=not args.no_rate_limits,
        start_time=args.start_time,
        faults={ALL_ENDPOINTS: faults} if faults.active else {},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        webhook_faults = webhook_faults_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        sock = bind_loopback(args.host, args.port)
    except NonLoopbackHostError as exc:
        parser.error(str(exc))
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    sandbox = FinchSandbox(config)
    if args.webhook_url:
        try:
            sandbox.webhooks.configure(args.webhook_url, faults=webhook_faults)
        except ValueError as exc:
            parser.error(str(exc))
    server = uvicorn_server(sandbox)
    print(f"Finch sandbox listening on {base_url_of(sock)}", flush=True)
    server.run(sockets=[sock])
    return 0
