"""`connections-pipeline`: the command-line entry point."""

import argparse
import logging
import os
import signal
import sys
import traceback
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn

from connections_pipeline import run_log

DEFAULT_DAGSTER_HOME = Path("data") / "dagster_home"
logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connections-pipeline",
        description="Rebuild Finch's Connections page in your warehouse.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run the sync_connections job once with the settings in the environment "
        "(embedded sandbox and a DuckDB file when none are set), then export the three "
        "states' CSVs in one run",
    )
    run.add_argument(
        "--accept-mass-change",
        action="store_true",
        help="load the sync even if its changes look implausible (a held run): only once you "
        "have checked that the change is real",
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show Dagster's events (debug included) here as they happen, besides the log file",
    )
    run.add_argument(
        "--pool-wait-seconds",
        type=float,
        default=DEFAULT_POOL_WAIT_SECONDS,
        help="how long to wait for the finch_api pool's slot while another run holds it, "
        f"before giving up with exit 4 (default {DEFAULT_POOL_WAIT_SECONDS:.0f})",
    )
    run.set_defaults(handler=_run_sync)
    _add_connect_link(commands)
    _add_webhooks(commands)
    _add_notify(commands)
    return parser


def _add_notify(commands: argparse._SubParsersAction) -> None:
    notify = commands.add_parser(
        "notify", help="notifications: CONNECTIONS_NOTIFY_RUNS, _NEEDS_ACTION and _EXPORTS"
    )
    actions = notify.add_subparsers(dest="action", required=True)
    test = actions.add_parser(
        "test",
        help="send one test message to every configured URL and print, per URL (its secrets "
        "masked), whether it was delivered",
    )
    test.set_defaults(handler=_notify_test)
    _refuse_in_one_line(test, "notify test")


def _notify_test(args: argparse.Namespace) -> int:
    """Exit 0 when every URL took the message, 1 when one did not, 2 for a bad setting."""
    from datetime import UTC, datetime

    from connections_pipeline.notify.delivery import send
    from connections_pipeline.notify.destinations import CHANNEL_SETTINGS
    from connections_pipeline.notify.messages import test_message
    from connections_pipeline.settings import SettingError, notifier_resource

    try:
        notifier = notifier_resource(os.environ)
    except SettingError as exc:
        print(f"notify test: {exc}", file=sys.stderr)
        return EXIT_SETTING
    found = notifier.all_destinations()
    if not found:
        names = ", ".join(CHANNEL_SETTINGS.values())
        print(f"notify test: no notification URL is set ({names})", file=sys.stderr)
        return EXIT_SETTING
    message = test_message(datetime.now(UTC))
    undelivered = 0
    # Apprise explains failures in its own log lines; the outcome per URL is printed here.
    logging.getLogger("apprise").addHandler(logging.NullHandler())
    logging.getLogger("apprise").propagate = False
    for destination in found:
        error = send(
            destination,
            message.subject,
            message.body,
            [],
            timeout_seconds=notifier.timeout_seconds,
            attach_max_mb=notifier.attach_max_mb,
        )
        undelivered += error is not None
        outcome = "delivered" if error is None else f"NOT delivered: {error}"
        print(f"{CHANNEL_SETTINGS[destination.channel]}: {destination.shown}: {outcome}")
    return EXIT_FAILED if undelivered else 0


def _add_webhooks(commands: argparse._SubParsersAction) -> None:
    webhooks = commands.add_parser("webhooks", help="receive Finch webhooks into the warehouse")
    actions = webhooks.add_subparsers(dest="action", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve the webhook receiver (POST /webhooks/finch): verifies each delivery with "
        "FINCH_WEBHOOK_SECRET and stores it in finch_webhook_events; put it behind your "
        "HTTPS ingress",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.set_defaults(handler=_serve_webhooks)
    _refuse_in_one_line(serve, "webhooks serve")


def _serve_webhooks(args: argparse.Namespace) -> int:
    """Serve until stopped; an unusable setting is one line on stderr and exit 2."""
    from connections_pipeline.settings import SettingError, warehouse_resource
    from connections_pipeline.warehouse import WarehouseConnectionError
    from connections_pipeline.webhooks import SECRET_SETTING, WebhookSecretError
    from connections_pipeline.webhooks.server import receiver_app, serve

    try:
        # Opened per delivery: a DuckDB file stays free for the sync runs in between.
        warehouse = warehouse_resource(os.environ).open(hold_connections=False)
        app = receiver_app(warehouse, os.environ.get(SECRET_SETTING))
    except (SettingError, WebhookSecretError, WarehouseConnectionError, ValueError) as exc:
        print(f"webhooks serve: {_one_line(_scrubbed(str(exc)))}", file=sys.stderr)
        return EXIT_SETTING
    # One line per delivery from the receiver, uvicorn's own lines; nothing else.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("connections_pipeline.webhooks").setLevel(logging.INFO)
    try:
        serve(app, args.host, args.port)
    finally:
        warehouse.dispose()
    return 0


def _add_connect_link(commands: argparse._SubParsersAction) -> None:
    link = commands.add_parser(
        "connect-link",
        help="create a Finch Connect link for one employer, record it in the session ledger "
        "(finch_connect_sessions) and print its URL",
    )
    link.add_argument("--customer-id", required=True, help="your id for the employer (1-255)")
    link.add_argument("--customer-name", required=True, help="the employer's name (1-255)")
    link.add_argument(
        "--products", required=True, help="comma-separated Finch products, e.g. company,directory"
    )
    link.add_argument("--redirect-uri", required=True, help="https:// (http:// for localhost)")
    link.add_argument("--customer-email", help="where Finch may email the employer")
    link.add_argument("--minutes-to-expire", type=int, help="1-129600 (default 129600: 90 days)")
    link.add_argument("--provider", help="a provider id from Finch's /providers")
    link.add_argument(
        "--auth-method", help="assisted, credential, api_token, api_credential or oauth"
    )
    link.add_argument("--manual", action="store_true", default=None, help="manual-only flow")
    link.add_argument("--sandbox", help="finch or provider (Finch sandbox applications)")
    link.add_argument(
        "--force",
        action="store_true",
        help="create a link even though the customer has an open one, or an attempt whose "
        "outcome is unknown",
    )
    link.set_defaults(handler=_connect_link)
    _refuse_in_one_line(link, "connect-link")


def _refuse_in_one_line(parser: argparse.ArgumentParser, name: str) -> None:
    """Make `parser` report a bad or unknown argument as one line on stderr, exit 2, like
    every other refusal of the command (argparse would print its usage block first)."""

    def error(message: str) -> NoReturn:
        parser.exit(2, f"{name}: {_one_line(message)}\n")

    parse_known_args = parser.parse_known_args

    def parse_all_known(
        args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = parse_known_args(args, namespace)
        if extras:
            error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    parser.error = error  # type: ignore[method-assign]
    parser.parse_known_args = parse_all_known  # type: ignore[method-assign]


def _connect_link(args: argparse.Namespace) -> int:
    """Create one link; every refusal or failure is one line on stderr and exit 2.

    The traceback of an unexpected error goes to this module's logger at DEBUG only,
    scrubbed of the settings' secrets like the line itself.
    """
    try:
        with _quiet_library_logs():
            link = _create_link(args)
    except Exception as exc:
        from connections_pipeline.connect_links import ConnectLinkError
        from connections_pipeline.finch import FinchConfigError
        from connections_pipeline.warehouse import WarehouseConnectionError

        logger.debug(
            "connect-link failed:\n%s", _scrubbed("".join(traceback.format_exception(exc)))
        )
        # ValueError covers SettingError and an unusable warehouse URL or schema.
        known = (ConnectLinkError, FinchConfigError, WarehouseConnectionError, ValueError)
        reason = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
        print(f"connect-link: {_one_line(_scrubbed(reason))}", file=sys.stderr)
        return 2
    print(link.connect_url)
    return 0


def _create_link(args: argparse.Namespace) -> Any:
    from connections_pipeline.connect_links import ConnectLinkRequest, create_connect_link
    from connections_pipeline.settings import build_resources

    request = ConnectLinkRequest.from_fields(vars(args), created_by="cli")
    resources = build_resources(os.environ)
    finch = resources["finch"].process_config_and_initialize()
    warehouse = resources["warehouse"].process_config_and_initialize().open()
    try:
        return create_connect_link(request, finch, warehouse)
    finally:
        warehouse.dispose()


@contextmanager
def _quiet_library_logs() -> Iterator[None]:
    """Keep the pipeline's log records off stderr unless logging was configured: without
    a handler, Python prints warnings there as extra lines (the reason is in the one line)."""
    package = logging.getLogger("connections_pipeline")
    handler = logging.NullHandler()
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)


def _one_line(message: str) -> str:
    """`message` on one line: a database's multi-line error joined with " | "."""
    lines = [line.strip() for line in message.splitlines()]
    return " | ".join(line for line in lines if line) or "failed"


def _scrubbed(message: str) -> str:
    """`message` without the secrets the environment's settings carry."""
    from connections_pipeline.redaction import scrub, url_secrets
    from connections_pipeline.warehouse.engine import (
        CONNECT_ARGS_SETTING,
        connect_args_secrets,
        parse_connect_args,
    )

    secrets = [os.environ.get("FINCH_CLIENT_SECRET"), os.environ.get("FINCH_WEBHOOK_SECRET")]
    for name in ("CONNECTIONS_WAREHOUSE_URL", "CONNECTIONS_TOKENS_URL"):
        secrets += url_secrets(os.environ.get(name))
    with suppress(ValueError):
        secrets += connect_args_secrets(parse_connect_args(os.environ.get(CONNECT_ARGS_SETTING)))
    return scrub(message, secrets)


# Exit codes of `run`: 2 a setting or input to fix, 3 a held sync, 4 busy (another run holds
# the folder or the Finch pool), 130/143 stopped by Ctrl-C/SIGTERM, 1 any other failure.
EXIT_FAILED, EXIT_SETTING, EXIT_HELD, EXIT_BUSY = 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM
# How long a run waits for the finch_api pool's slot by default before it gives up.
DEFAULT_POOL_WAIT_SECONDS = 600.0


def _run_sync(args: argparse.Namespace) -> int:
    # Runs land in a local Dagster instance (SQLite) that `dagster dev` can show later.
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DEFAULT_DAGSTER_HOME.resolve())))
    from connections_pipeline.definitions import defs
    from connections_pipeline.local_instance import (
        FolderBusy,
        PoolWaitExpired,
        Stopped,
        folder_lock,
        signals_stop,
    )
    from connections_pipeline.settings import SettingError

    try:
        definitions = defs()
    except SettingError as exc:
        # Refused before any run starts: nothing is read or written, not even a folder.
        print(f"run: {_scrubbed(str(exc))}", file=sys.stderr)
        return EXIT_SETTING
    home.mkdir(parents=True, exist_ok=True)
    try:
        with signals_stop(), folder_lock(home):
            return _run_jobs(args, home, definitions)
    except FolderBusy as exc:
        print(f"run: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except (Stopped, PoolWaitExpired) as exc:
        # The run in progress is marked failed; its thread cannot be stopped, so the process
        # ends here (a sync's load is one transaction: nothing half-loaded stays behind).
        print(f"run: {_scrubbed(str(exc))}; the run was marked failed", file=sys.stderr)
        if isinstance(exc, PoolWaitExpired):
            _exit_now(EXIT_BUSY)
        _exit_now(EXIT_INTERRUPTED if exc.signal_name == "SIGINT" else EXIT_TERMINATED)


def _exit_now(code: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_jobs(args: argparse.Namespace, home: Path, definitions: Any) -> int:
    """The sync, then the exports and the report, each a run in the folder's instance."""
    # The terminal as it is now: Dagster's own output is sent to the log file below.
    terminal = sys.stdout
    import dagster as dg

    from connections_pipeline.definitions import EXPORT_JOB_NAME, REPORT_JOB_NAME, SYNC_JOB_NAME
    from connections_pipeline.local_instance import fail_dead_runs, process_tags, run_watched
    from connections_pipeline.partitions import all_states_tags
    from connections_pipeline.pools import FINCH_POOL
    from connections_pipeline.run_progress import progress_bars
    from connections_pipeline.run_summary import print_exports, print_report, print_summary

    (home / "dagster.yaml").touch()  # default SQLite storage, said explicitly
    log_file = run_log.start(home)
    verbose = args.verbose

    def execute(name: str, **options: Any) -> Any:
        job = definitions.resolve_job_def(name)
        run_config = run_log.console(options.pop("run_config", {}), verbose)
        tags = {**options.pop("tags", {}), **process_tags()}
        run_id = str(uuid.uuid4())
        with run_log.output_to(log_file, unless=verbose):
            return run_watched(
                lambda: job.execute_in_process(
                    instance=instance,
                    raise_on_error=False,
                    run_config=run_config,
                    run_id=run_id,
                    tags=tags,
                    **options,
                ),
                instance,
                run_id,
                FINCH_POOL,
                args.pool_wait_seconds,
            )

    with run_log.output_to(log_file, unless=verbose):
        instance = dg.DagsterInstance.get()
    with instance:
        # A run killed earlier (SIGKILL, a crash) stays STARTED and keeps its pool slot.
        for dead in fail_dead_runs(instance):
            print(
                f"Run {dead.run_id} ({dead.job_name}) had stopped without ending (its process "
                "is gone): marked failed, its pool slot freed"
            )
        with progress_bars(terminal):
            result = execute(SYNC_JOB_NAME, run_config=_sync_config(args))
        run_log.append_events(log_file, instance, result.run_id)
        if not result.success:
            return _failed("sync", result, log_file)
        print_summary(definitions.resources, result.run_id)
        # All three states in one run, as a single-run backfill over the partition range.
        exports = execute(EXPORT_JOB_NAME, tags=all_states_tags())
        run_log.append_events(log_file, instance, exports.run_id)
        if not exports.success:
            return _failed("export", exports, log_file)
        print_exports(exports)
        report = execute(REPORT_JOB_NAME)
        run_log.append_events(log_file, instance, report.run_id)
    if not report.success:
        return _failed("report", report, log_file)
    print_report(report)
    print(f"Log: {log_file} (-v shows Dagster's events here)")
    return 0


def _sync_config(args: argparse.Namespace) -> dict:
    from connections_pipeline.assets.sync import SYNC_OP

    if not args.accept_mass_change:
        return {}
    return {"ops": {SYNC_OP: {"config": {"accept_mass_change": True}}}}


def _failed(what: str, result: Any, log_file: Path) -> int:
    """One line saying why the run failed; the whole story is in the log file."""
    from connections_pipeline.assets.failures import (
        BUSY_CAUSE,
        FAILURE_CAUSE,
        HELD_CAUSE,
        SETTING_CAUSE,
    )

    cause, message = run_log.failure_of(result, FAILURE_CAUSE)
    print(
        f"run: {what} {result.run_id} failed: {_scrubbed(message)} (log: {log_file})",
        file=sys.stderr,
    )
    exits = {SETTING_CAUSE: EXIT_SETTING, HELD_CAUSE: EXIT_HELD, BUSY_CAUSE: EXIT_BUSY}
    return exits.get(cause, EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
