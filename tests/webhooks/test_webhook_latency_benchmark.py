"""The latency benchmark still runs: at a tiny size, end to end, in CI. No timing asserted."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).parents[2] / "benchmarks" / "webhook_latency.py"


def test_the_webhook_latency_benchmark_completes_at_a_tiny_size() -> None:
    command = [
        sys.executable, str(SCRIPT),
        "--connections", "30", "--events", "2", "--rounds", "1", "--sensor-interval", "1",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sensor interval 1 s assumed" in done.stdout
    assert "round 1: 2 events" in done.stdout
    assert "event -> warehouse: median" in done.stdout
