"""What `connections-pipeline run` keeps out of the terminal: Dagster's event log and the
pipeline's own log records, appended to one file under DAGSTER_HOME.

The terminal gets the summary, or one line saying why a run failed; tracebacks and debug
events go to the file (and stay in the Dagster instance, for `dagster dev`).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

LOG_FILE = Path("connections-pipeline.log")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _RunLogHandler(logging.FileHandler):
    """The file handler `start` installs; one at a time."""


def start(home: Path) -> Path:
    """Send Python log records (the Finch client's warnings, say) to the log file instead of
    the terminal; returns the file's absolute path."""
    path = (home / LOG_FILE).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RunLogHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _RunLogHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    return path


def console(run_config: dict[str, Any], verbose: bool) -> dict[str, Any]:
    """`run_config` with Dagster's console logger at DEBUG (`-v`) or silenced: its events are
    stored in the instance and copied to the log file by `append_events` either way."""
    level = "DEBUG" if verbose else "CRITICAL"
    return {**run_config, "loggers": {"console": {"config": {"log_level": level}}}}


@contextmanager
def output_to(path: Path, unless: bool = False) -> Iterator[None]:
    """Send whatever is printed while the block runs (Dagster's telemetry notice on a new
    instance, a library's stray output) to the log file instead of the terminal; `unless`
    leaves the terminal alone."""
    if unless:
        yield
        return
    with (
        path.open("a", encoding="utf-8") as handle,
        redirect_stdout(handle),
        redirect_stderr(handle),
    ):
        yield


def append_events(path: Path, instance: Any, run_id: str) -> None:
    """Append every event of a run, errors with their stack, to the log file."""
    with path.open("a", encoding="utf-8") as handle:
        for record in instance.all_logs(run_id):
            step = f" {record.step_key}" if record.step_key else ""
            handle.write(
                f"{_time(record.timestamp)} {logging.getLevelName(record.level)} "
                f"dagster {run_id}{step}: {record.user_message or record.message}\n"
            )
            error = _error_of(record)
            if error is not None:
                handle.write(error.to_string())


def failure_of(result: Any, cause_key: str) -> tuple[str | None, str]:
    """(cause, one-line message) of a failed in-process run: the `cause_key` metadata a
    `dg.Failure` carries, and its description, else the error's first line."""
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        user = data.user_failure_data
        if user is not None and user.description:
            cause = user.metadata.get(cause_key)
            return (cause.value if cause is not None else None), _one_line(user.description)
        return None, _one_line(data.error.message if data.error else "the step failed")
    return None, "the run failed before any step ran"


def _error_of(record: Any) -> Any:
    event = record.dagster_event
    if event is None or not event.is_step_failure:
        return None
    return event.step_failure_data.error


def _time(timestamp: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_line(text: str) -> str:
    return " ".join(text.split())
