"""Where CSV files go: a local folder, or any fsspec URL (`s3://bucket/prefix`, `gs://`, ...).

Writes are atomic, so a reader sees the previous file or the new one, never half of one,
and a failed write leaves the previous file as it was:

- local folder: the bytes go to a hidden temporary file in the same folder, are flushed to
  disk, and `os.replace` swaps it in (a rename within one filesystem is atomic on POSIX);
- anything else: one `pipe_file` of the complete bytes. Object stores (S3, GCS, Azure Blob)
  make an object visible only once its upload completed, multipart uploads included.
"""

import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from connections_pipeline.export.errors import (
    OPTIONS_SETTING,
    URL_SETTING,
    ExportSettingError,
    ExportWriteError,
)
from connections_pipeline.redaction import nested_strings, redact_url, scrub


def parse_storage_options(text: str | None) -> dict[str, Any]:
    """The JSON object of CONNECTIONS_EXPORT_STORAGE_OPTIONS ({} when unset)."""
    if text is None or not text.strip():
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportSettingError(f"{OPTIONS_SETTING} is not valid JSON: {exc.msg}") from None
    if not isinstance(options, dict):
        raise ExportSettingError(f"{OPTIONS_SETTING} must be a JSON object")
    return options


class Destination:
    """A folder or URL that CSV files are written to.

    Args:
        url: a local path (relative paths are resolved against the working directory) or an
            fsspec URL (setting CONNECTIONS_EXPORT_URL).
        storage_options: keyword arguments for the fsspec filesystem, e.g.
            `{"endpoint_url": "https://minio.internal:9000"}`
            (setting CONNECTIONS_EXPORT_STORAGE_OPTIONS). Credentials come from these or
            from the filesystem's usual sources (for S3: AWS_* variables, profiles, roles).

    Raises:
        ExportSettingError: the URL is empty, its scheme is unknown, or its fsspec package
            is not installed.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        if not isinstance(url, str) or not url.strip():
            raise ExportSettingError(f"{URL_SETTING} is empty; set a folder or a URL")
        self.display_url = redact_url(url)
        self._secrets = list(nested_strings(storage_options or {}))
        try:
            # A fresh filesystem object: fsspec's instance cache would keep credentials and
            # endpoints from an earlier run of the same process.
            fs, root = fsspec.core.url_to_fs(
                url, skip_instance_cache=True, **dict(storage_options or {})
            )
        except Exception as exc:
            raise ExportSettingError(
                f"{URL_SETTING} ({self.display_url}) cannot be used: {self._scrub(exc)}"
            ) from None
        self.fs = fs
        self.is_local = isinstance(fs, LocalFileSystem)
        self.root = root.rstrip("/") or root

    def __repr__(self) -> str:
        return f"Destination({self.display_url!r})"

    def location(self, name: str) -> str:
        """Where the file `name` is (or will be): an absolute path or a full URL."""
        path = f"{self.root}/{name}"
        return path if self.is_local else redact_url(self.fs.unstrip_protocol(path))

    def names(self, pattern: str) -> list[str]:
        """Names of the files here matching the glob `pattern`, e.g. `connections_*.csv`."""
        try:
            found = self.fs.glob(f"{self.root}/{pattern}")
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise ExportWriteError(
                f"listing {self.display_url} ({URL_SETTING}) failed: {self._scrub(exc)}"
            ) from None
        return sorted(str(path).rsplit("/", 1)[-1] for path in found)

    def check(self) -> None:
        """Make sure files can be written here, before anything is exported.

        A local folder is created if missing and must accept a new file; a remote URL must
        answer with the credentials at hand, and its bucket must exist (it is never created).

        Raises:
            ExportSettingError: naming CONNECTIONS_EXPORT_URL.
        """
        if self.is_local:
            folder = Path(self.root)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                raise ExportSettingError(
                    f"{URL_SETTING} ({folder}) is not a writable folder: "
                    f"{exc.strerror or exc.__class__.__name__}"
                ) from None
            return
        try:
            if self.fs.exists(self.root):
                return
            split_path = getattr(self.fs, "split_path", None)
            if split_path is None:
                self.fs.makedirs(self.root, exist_ok=True)
                return
            bucket = split_path(self.root)[0]
            found = self.fs.exists(bucket)
        except Exception as exc:
            raise ExportSettingError(
                f"{URL_SETTING} ({self.display_url}) cannot be reached: {self._scrub(exc)}. "
                f"Check the credentials for this URL (for s3://: AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role) and {OPTIONS_SETTING}"
            ) from None
        if not found:
            raise ExportSettingError(
                f"{URL_SETTING} ({self.display_url}): bucket {bucket!r} does not exist or is "
                "not visible with these credentials"
            )

    def write(self, name: str, data: bytes | Iterable[bytes]) -> str:
        """Replace the file `name` atomically with `data` (bytes, or chunks of bytes).

        Returns:
            The file's location, as `location(name)`.

        Raises:
            ExportWriteError: the write failed; the previous file is untouched. An error
                raised by the `data` iterable itself propagates unchanged, with the same
                guarantee.
        """
        if self.is_local:
            self._write_local(name, [data] if isinstance(data, bytes) else data)
        else:
            payload = data if isinstance(data, bytes) else b"".join(data)
            try:
                self.fs.pipe_file(f"{self.root}/{name}", payload)
            except Exception as exc:
                raise ExportWriteError(
                    f"writing {self.location(name)} ({URL_SETTING}) failed: {self._scrub(exc)}"
                ) from None
        return self.location(name)

    def _write_local(self, name: str, chunks: Iterable[bytes]) -> None:
        folder = Path(self.root)
        target = folder / name
        temporary = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            # O_EXCL: never reuse a file someone else made; 0o666 lets the umask decide, as
            # for any new file, unless the file being replaced had its own mode.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(descriptor, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            if target.is_file():
                os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise ExportWriteError(
                f"writing {target} ({URL_SETTING}) failed: {exc.strerror or exc}"
            ) from None
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _sync_folder(folder)

    def _scrub(self, exc: BaseException) -> str:
        return scrub(f"{exc.__class__.__name__}: {exc}", self._secrets)


def _sync_folder(folder: Path) -> None:
    # Persist the rename itself; some filesystems cannot open a folder, which is harmless.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
