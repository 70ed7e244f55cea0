"""Every benchmark script runs to the end at a tiny size, so none can rot unnoticed.

Figures are not checked here (timing belongs to the benchmarks themselves); a script must
exit 0 and print the line that carries its figure.
"""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"

RUNS = {
    "finch_client-paced": (
        ["finch_client.py", "paced", "--tokens", "60", "--time-scale", "0.01"],
        "client requests",
    ),
    "finch_client-unpaced": (
        ["finch_client.py", "unpaced", "--requests", "200", "--latency-ms", "2"],
        "share of ideal",
    ),
    "finch_client-company": (
        ["finch_client.py", "company", "--calls", "8", "--time-scale", "0.01"],
        "company",
    ),
    "fleet_memory": (["fleet_memory.py", "--tokens", "200"], "peak RSS"),
    "normalize": (["normalize.py", "--rows", "600", "--workers", "1"], "rows/s"),
    "sync_requests": (["sync_requests.py", "--connections", "40"], "steady run"),
    "warehouse_load": (["warehouse_load.py", "--rows", "400", "--repeat", "1"], "ratio"),
    "scale_sync-bound": (
        ["scale_sync.py", "bound", "--connections", "40", "--days", "2"],
        "worst time/bound",
    ),
    "scale_sync-plan": (
        ["scale_sync.py", "plan", "--tokens", "3000"],
        "every token observed after",
    ),
    "scale_sync-coverage": (
        ["scale_sync.py", "coverage", "--connections", "80"],
        "every token observed after",
    ),
    "webhook_latency": (
        [
            "webhook_latency.py",
            *("--connections", "30", "--events", "2", "--rounds", "1"),
            *("--sensor-interval", "1"),
        ],
        "event -> warehouse: median",
    ),
}


def test_every_benchmark_script_is_covered() -> None:
    scripts = {path.name for path in BENCHMARKS.glob("*.py") if not path.name.startswith("_")}
    covered = {arguments[0] for arguments, _ in RUNS.values()}
    assert scripts - covered == set(), "add the new benchmark to RUNS"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_benchmark_runs_at_a_tiny_size(name: str, tmp_path: Path) -> None:
    arguments, figure = RUNS[name]
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / arguments[0]), *arguments[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    assert figure in completed.stdout, completed.stdout[-2000:]
