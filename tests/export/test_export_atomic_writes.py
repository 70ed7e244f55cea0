"""A write that fails midway leaves the previous file whole, on a real local filesystem."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from connections_pipeline.export import Destination, ExportWriteError

OLD = b"Company Name,Company ID\r\nOld Co,c1\r\n"


class WriterBroke(RuntimeError):
    pass


def _temporary_files(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_writer_failing_after_part_of_the_file_leaves_the_old_file(tmp_path: Path) -> None:
    destination = Destination(str(tmp_path))
    target = tmp_path / "connections_live_latest.csv"
    destination.write(target.name, OLD)
    observed: list[tuple[str, bytes, bytes]] = []

    def chunks() -> Iterator[bytes]:
        yield b"Company Name,Company ID\r\n"
        yield b"New Co,c2\r\n" * 1000
        # What a reader would see right now: the old file, and a hidden partial temp file.
        [partial] = _temporary_files(tmp_path)
        observed.append((partial.name, partial.read_bytes(), target.read_bytes()))
        raise WriterBroke("the data writer failed midway")

    with pytest.raises(WriterBroke):
        destination.write(target.name, chunks())

    [(partial_name, partial_bytes, seen_target)] = observed
    assert partial_name.startswith(".connections_live_latest.csv.")
    # The temp file lives in the same folder (so the rename is atomic) and held the part
    # written before the failure; the real file did not change meanwhile.
    assert partial_bytes.startswith(b"Company Name,Company ID\r\nNew Co,c2\r\n")
    assert seen_target == OLD
    assert target.read_bytes() == OLD
    assert _temporary_files(tmp_path) == []


def test_rename_refused_by_the_filesystem_leaves_the_old_file(tmp_path: Path) -> None:
    # A folder standing where the file goes: os.replace of a file onto it fails for real.
    destination = Destination(str(tmp_path))
    (tmp_path / "connections_live_2026-11-29.csv").mkdir()
    (tmp_path / "connections_live_2026-11-29.csv" / "keep.txt").write_bytes(OLD)
    with pytest.raises(ExportWriteError, match="CONNECTIONS_EXPORT_URL"):
        destination.write("connections_live_2026-11-29.csv", b"new bytes")
    assert (tmp_path / "connections_live_2026-11-29.csv" / "keep.txt").read_bytes() == OLD
    assert _temporary_files(tmp_path) == []


def test_successful_write_replaces_the_file_and_keeps_its_mode(tmp_path: Path) -> None:
    destination = Destination(str(tmp_path))
    target = tmp_path / "connections_staged_latest.csv"
    destination.write(target.name, OLD)
    os.chmod(target, 0o640)
    before = target.stat().st_ino

    location = destination.write(target.name, [b"a,b\r\n", b"1,2\r\n"])

    assert location == str(target)
    assert target.read_bytes() == b"a,b\r\n1,2\r\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert target.stat().st_ino != before  # a new file swapped in, not rewritten in place
    assert _temporary_files(tmp_path) == []


def test_relative_folder_is_created_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    destination = Destination("./data/exports")
    destination.check()
    assert (tmp_path / "data" / "exports").is_dir()
    assert list((tmp_path / "data" / "exports").iterdir()) == []
    assert destination.location("x.csv") == str(tmp_path / "data" / "exports" / "x.csv")


def test_any_fsspec_url_takes_the_single_put_path() -> None:
    # fsspec's in-memory filesystem stands for schemes other than S3 (which has its own test).
    url = f"memory://exports-{os.getpid()}/daily"
    destination = Destination(url)
    destination.check()
    location = destination.write("connections_live_latest.csv", [b"a,b\r\n", b"1,2\r\n"])
    assert location.startswith("memory://")
    assert location.endswith(f"/exports-{os.getpid()}/daily/connections_live_latest.csv")
    assert destination.fs.cat_file(location) == b"a,b\r\n1,2\r\n"
