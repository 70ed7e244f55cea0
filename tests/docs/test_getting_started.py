"""The getting-started page's commands that run on one machine, run as a reader would."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from connections_pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICK_START = ROOT / "docs" / "getting-started" / "quick-start.md"


def bash_blocks(page: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def test_the_quick_start_page_starts_with_readmes_command() -> None:
    readme = bash_blocks(ROOT / "README.md")
    assert bash_blocks(QUICK_START)[0] == readme[0]


@pytest.mark.slow
def test_the_quick_start_pages_query_reads_what_the_run_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["run"]) == 0  # the page's first command, once installed
    [query] = [block for block in bash_blocks(QUICK_START) if "import duckdb" in block]
    command = shlex.split(query.strip())
    assert command[0] == "python"
    shown = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    for state in ("live", "staged", "disconnected"):
        assert state in shown
