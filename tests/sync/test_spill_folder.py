"""A run's spill folder is removed however the run ends: by the run itself after success or
an error, and by the next run after the process was killed; a live run's folder is kept, and
so is one just made whose run has not taken its lock yet."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connections_pipeline.sync.spill import (
    GRACE_SECONDS,
    LOCK_NAME,
    remove_abandoned,
    spill_folder,
)

HOLD_A_FOLDER = """
import sys, time
from pathlib import Path
from connections_pipeline.sync.spill import spill_folder
with spill_folder(Path(sys.argv[1])) as folder:
    (folder / "raw-000000.parquet").write_bytes(b"spooled answers")
    print(folder, flush=True)
    time.sleep(600)
"""


def test_the_folder_is_removed_after_success(tmp_path: Path) -> None:
    with spill_folder(tmp_path) as folder:
        (folder / "chunk").write_bytes(b"x" * 1000)
        assert folder.is_dir()
    assert not folder.exists()
    assert list(tmp_path.glob("run-*")) == []


def test_the_folder_is_removed_after_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="load failed"), spill_folder(tmp_path) as folder:
        (folder / "chunk").write_bytes(b"x")
        raise RuntimeError("load failed")
    assert not folder.exists()


def test_a_killed_run_s_folder_is_removed_by_the_next_run_and_a_live_one_kept(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_FOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        held = Path(holder.stdout.readline().strip())
        assert (held / "raw-000000.parquet").exists()

        # Another run starting now leaves the live run's folder alone.
        with spill_folder(tmp_path) as folder:
            assert folder != held
        assert remove_abandoned(tmp_path) == []
        assert held.is_dir()

        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        assert held.is_dir()  # a killed process removes nothing itself

        _age(held)
        with spill_folder(tmp_path):
            assert not held.exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_folder_just_made_is_kept_until_it_is_old_enough_to_be_abandoned(
    tmp_path: Path,
) -> None:
    # Another run's folder between its creation and its lock: no lock file, or a free one.
    unlocked = tmp_path / "run-unlocked"
    unlocked.mkdir()
    free_lock = tmp_path / "run-free-lock"
    free_lock.mkdir()
    (free_lock / LOCK_NAME).touch()

    assert remove_abandoned(tmp_path) == []
    assert unlocked.is_dir() and free_lock.is_dir()

    _age(unlocked)
    _age(free_lock)
    assert sorted(remove_abandoned(tmp_path)) == [free_lock, unlocked]
    assert list(tmp_path.iterdir()) == []


def _age(folder: Path) -> None:
    """Set the folder's modification time back past the grace a new folder gets."""
    old = folder.stat().st_mtime - GRACE_SECONDS - 1
    os.utime(folder, (old, old))


def test_an_unwritable_spill_folder_fails_the_run_naming_the_folder(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import polars as pl

    from connections_pipeline.finch import CallOutcome, FinchCallResult
    from connections_pipeline.sync.raw_rows import raw_row
    from connections_pipeline.sync.raw_spool import RawSpool, SpillError
    from connections_pipeline.transform.finch_clock import ClockReading

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    spool = RawSpool(blocked, chunk_bytes=1)
    answer = FinchCallResult(endpoint="providers", outcome=CallOutcome.OK, text="[]")
    spool.add(raw_row("run-1", answer, None, None))
    now = datetime.now(UTC)
    clock = ClockReading(as_of=now, clock="test", earliest=now, latest=now)
    with pytest.raises(SpillError, match=f"spill folder {blocked} .*TMPDIR"):
        spool.finish(
            pl.DataFrame(schema={"token_fingerprint": pl.String, "connection_id": pl.String}), clock
        )
