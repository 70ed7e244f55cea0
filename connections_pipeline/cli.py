"""`connections-pipeline`: the command-line entry point."""

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_DAGSTER_HOME = Path("data") / "dagster_home"


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
    run.set_defaults(handler=_run_sync)
    return parser


def _run_sync(args: argparse.Namespace) -> int:
    # Runs land in a local Dagster instance (SQLite) that `dagster dev` can show later.
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DEFAULT_DAGSTER_HOME.resolve())))
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").touch()  # default SQLite storage, said explicitly
    import dagster as dg

    from connections_pipeline.definitions import EXPORT_JOB_NAME, SYNC_JOB_NAME, defs
    from connections_pipeline.partitions import all_states_tags
    from connections_pipeline.run_summary import print_exports, print_summary

    definitions = defs()
    job = definitions.resolve_job_def(SYNC_JOB_NAME)
    export_job = definitions.resolve_job_def(EXPORT_JOB_NAME)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        if not result.success:
            print(f"Run {result.run_id} failed; see the log above.", file=sys.stderr)
            return 1
        print_summary(definitions.resources["warehouse"], result.run_id)
        # All three states in one run, as a single-run backfill over the partition range.
        exports = export_job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags=all_states_tags(),
        )
    if not exports.success:
        print(f"Export run {exports.run_id} failed; see the log above.", file=sys.stderr)
        return 1
    print_exports(exports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
