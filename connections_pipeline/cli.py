"""`connections-pipeline`: the command-line entry point."""

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Sequence

from connections_pipeline.finch import CallOutcome, FinchClient, FinchClientConfig
from connections_pipeline.sandbox import FinchSandbox, SandboxConfig, sandbox_transport

EMBEDDED_TIME_SCALE = 0.01


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connections-pipeline",
        description="Rebuild Finch's Connections page in your warehouse.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="introspect every token of the embedded Finch sandbox and print a summary",
    )
    run.add_argument("--seed", type=int, default=7, help="sandbox dataset seed (default 7)")
    run.add_argument(
        "--connections", type=_positive_int, default=200, help="sandbox connections (200)"
    )
    run.set_defaults(handler=_run_embedded)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _run_embedded(args: argparse.Namespace) -> int:
    sandbox = FinchSandbox(
        SandboxConfig(seed=args.seed, connections=args.connections, time_scale=EMBEDDED_TIME_SCALE)
    )
    tokens = [token["access_token"] for token in sandbox.tokens()]
    print(f"Embedded Finch sandbox: {args.connections} connections, {len(tokens)} tokens")
    config = FinchClientConfig(base_url="http://finch.sandbox.local", time_scale=0.01)
    outcomes, statuses, stats = asyncio.run(_introspect(sandbox, config, tokens))
    print("Introspection outcomes:")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {outcome:<24} {count:>6}")
    print("Connection statuses of working tokens:")
    for status, count in sorted(statuses.items()):
        print(f"  {status:<24} {count:>6}")
    print(
        f"Requests: {stats['requests']} (retries {stats['retries']}, 429s {stats['rate_limited']})"
    )
    return 0


async def _introspect(
    sandbox: FinchSandbox, config: FinchClientConfig, tokens: list[str]
) -> tuple[Counter[str], Counter[str], dict]:
    async with FinchClient(config, transport=sandbox_transport(sandbox)) as client:
        results = await client.introspect_many(tokens)
        stats = client.stats.as_dict()
    outcomes = Counter(result.outcome.value for result in results)
    statuses = Counter(
        result.data["connection_status"]["status"]
        for result in results
        if result.outcome is CallOutcome.OK
    )
    return outcomes, statuses, stats


if __name__ == "__main__":
    sys.exit(main())
