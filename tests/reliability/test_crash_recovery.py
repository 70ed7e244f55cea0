"""A sync killed with SIGKILL anywhere leaves the previous snapshot; the next run converges.

Each test kills a child process running the real sync against the emulator over loopback:
from outside after a random number of Finch answers (extraction), and from inside just
before a random SQL statement of the writing phase (the load). After every kill each
warehouse table must hold exactly what it held before; the run after the kills must
produce the same tables as a run never interrupted.
"""

import random
import secrets
import signal
from pathlib import Path

import pytest
from crash_helpers import (
    Target,
    checksums,
    draw_points,
    exact_tables,
    kill_after_requests,
    kill_at_statement,
    run_whole,
)

from finch_sandbox import FinchSandbox, SandboxConfig, serve_in_thread

pytestmark = pytest.mark.slow

# Fewer for Snowflake only: each sync there (the emulator over HTTP, a login per connection,
# PUT and COPY INTO per frame) is slower, and with 6 per phase its case took about twice as
# long as the others', and the whole suite shares two cores. The file runs on one xdist
# worker (--dist loadfile), so its cases add up.
KILLS_PER_PHASE = {"duckdb": 6, "postgres": 6, "snowflake": 2}
"""Kill points per phase (extraction, load) and warehouse."""
BACKENDS = tuple(KILLS_PER_PHASE)
KILLED = -signal.SIGKILL


def _warehouses(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[Target]:
    """The warehouse that is killed and the uninterrupted reference."""
    if kind == "duckdb":
        return [
            Target(f"duckdb:///{tmp_path / name}.duckdb", "finch") for name in ("killed", "ref")
        ]
    if kind == "snowflake":
        emulator = request.getfixturevalue("snowflake_emulator")
        url = emulator.url(emulator.new_database())
        schemas = (f"crash_{name}_{secrets.token_hex(3)}" for name in ("k", "r"))
        return [Target(url, schema, emulator.connect_args) for schema in schemas]
    postgres_url = request.getfixturevalue("postgres_url")
    return [Target(postgres_url, f"crash_{name}_{secrets.token_hex(3)}") for name in ("k", "r")]


@pytest.mark.parametrize("kind", BACKENDS)
def test_sigkill_leaves_previous_snapshot_and_next_run_converges(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(f"crash-points:{kind}")
    kills = KILLS_PER_PHASE[kind]
    sandbox = FinchSandbox(SandboxConfig(seed=61, connections=40, time_scale=0.01))
    killed, reference = _warehouses(kind, tmp_path, request)

    def answered() -> int:
        return sandbox.stats()["requests"]

    with serve_in_thread(sandbox) as base_url:
        run_whole(base_url, killed, "run-1")
        run_whole(base_url, reference, "run-1")
        changes = sandbox.advance(3)["changes"]
        before_reference = answered()
        whole = run_whole(base_url, reference, "run-2")
        requests_per_run = answered() - before_reference
        before = exact_tables(killed)

        extraction_points = draw_points(rng, kills, 1, requests_per_run - 1)
        for after in extraction_points:
            code = kill_after_requests(base_url, killed, "run-2", answered, after)
            assert code == KILLED, f"run finished before {after} answers"
            assert exact_tables(killed) == before, f"killed after {after} Finch answers"

        load_points = draw_points(rng, kills, whole.load_from + 1, whole.statements)
        for statement in load_points:
            code = kill_at_statement(base_url, killed, "run-2", statement)
            assert code == KILLED, f"no SIGKILL at statement {statement}"
            assert exact_tables(killed) == before, f"killed at statement {statement}"

        run_whole(base_url, killed, "run-2")
        stats = sandbox.stats()

    assert sum(changes.values()) > 0
    assert len(extraction_points) == len(load_points) == kills
    converged, uninterrupted = checksums(killed), checksums(reference)
    assert [name for name in converged if converged[name] != uninterrupted[name]] == []
    # The run after the kills did load something new, so converging was not a no-op.
    assert exact_tables(killed) != before
    assert stats["ip_blocks"] == 0
