"""`connections-pipeline run` as a person starts it: a process of its own in a folder, with
the quick start's local instance under `data/dagster_home`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

BIN = Path(sys.executable).parent
T = TypeVar("T")

# The production instance's pool settings (examples/dagster.yaml) on the local SQLite storage:
# every Finch caller waits for the one finch_api slot.
POOL_LIMITED_INSTANCE = """\
concurrency:
  pools:
    default_limit: 1
    granularity: op
    op_granularity_run_buffer: 0
telemetry:
  enabled: false
"""


def home_of(folder: Path) -> Path:
    return folder / "data" / "dagster_home"


def pool_limited_home(folder: Path) -> Path:
    home = home_of(folder)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(POOL_LIMITED_INSTANCE)
    return home


def cli_env(**settings: str) -> dict[str, str]:
    """This environment without any pipeline or Dagster setting, plus `settings`."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DAGSTER_", "CONNECTIONS_", "FINCH_"))
    }
    return {**inherited, "PYTHONUNBUFFERED": "1", **settings}


def start_run(folder: Path, *args: str, **settings: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "connections-pipeline"), "run", *args],
        cwd=folder,
        env=cli_env(**settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 300) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.2)
