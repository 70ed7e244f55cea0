"""A run's spill folder: local files for what a sync does not keep in memory.

Each run gets a folder of its own under one root (the system's temp folder unless told
otherwise) and holds a lock on it while it runs. The folder is removed when the run ends,
whether it succeeded or failed; a run killed outright cannot remove its own, so every run
first removes the folders whose lock no live process holds (once they are a minute old: a
folder just made is not locked yet, and testing its lock could take it from its run).
Only fingerprints and Finch's answers are written there, never an access token.
"""

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

ROOT_NAME = "connections-pipeline-spill"
LOCK_NAME = ".in-use.lock"
# A folder younger than this may belong to a run that has not taken its lock yet; testing a
# lock takes it for a moment, so a young folder's lock is not even tested.
GRACE_SECONDS = 60


def default_root() -> Path:
    """The spill root under the system's temp folder (TMPDIR and the like move it)."""
    return Path(tempfile.gettempdir()) / ROOT_NAME


@contextmanager
def spill_folder(root: Path | None = None) -> Iterator[Path]:
    """A fresh folder for one run, removed when the block ends, however it ends."""
    root = root or default_root()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    remove_abandoned(root)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    lock = FileLock(folder / LOCK_NAME)
    try:
        with lock:
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_abandoned(root: Path) -> list[Path]:
    """Remove the run folders under `root` that no live run holds; returns them."""
    removed = []
    for folder in sorted(root.glob("run-*")):
        if folder.is_dir() and _abandoned(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _abandoned(folder: Path) -> bool:
    try:
        age = time.time() - folder.stat().st_mtime
    except OSError:
        return False
    if age < GRACE_SECONDS:
        return False
    lock_path = folder / LOCK_NAME
    if not lock_path.exists():
        return True
    try:
        # The lock is the kernel's (flock): a killed process's lock is released with it.
        with FileLock(lock_path, timeout=0):
            return True
    except Timeout:
        return False
