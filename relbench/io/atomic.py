"""Atomic file writes: a reader (or a resumed run) never sees a half-written file.

The data is fsynced before the rename and the directory after it, so the rename is the only
moment the file changes, across a power loss too. A full disk or a read-only directory is one
``WriteError`` naming the destination; the temporary file is removed and the old file (if
any) is untouched, so the same command resumes once space is freed.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from relbench.errors import UserError


class WriteError(UserError, OSError):
    """A file could not be written. A UserError, so the CLI prints one line; an OSError, so
    callers that treat an unwritable cache as a mere slowdown keep catching it."""

    def __init__(self, path: Path, cause: OSError):
        super().__init__(cause.errno, f"cannot write {path}: {describe(cause)}; nothing was half-written: free "
                         f"space or make the directory writable, then run the same command again to resume",
                         str(path))

    def __str__(self) -> str:  # OSError's own would prefix "[Errno N]" and append the path again
        return self.strerror


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 would hide results from a group


def describe(exc: OSError) -> str:
    """'No space left on device (ENOSPC)': the words and the errno's name."""
    name = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno is not None else type(exc).__name__
    return f"{exc.strerror or exc} ({name})"


def write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> None:
    """``mode`` (e.g. 0o600 for a file holding a secret) is the file's mode from its creation
    on, never a wider one first; by default what open() would give."""
    write_all([(path, data)], mode)


def write_all(files: Iterable[tuple[str | Path, bytes]], mode: int | None = None) -> None:
    """Several files as one change, as far as a filesystem allows: every file is written and
    fsynced beside its destination before any is renamed into place, so a full disk or an I/O
    error while writing leaves every destination as it was. Only a failing rename (rare: an I/O
    error on the directory) can leave the first files replaced and the rest not; callers that
    write several files make a rerun of the same command complete them."""
    staged: list[tuple[Path, str]] = []
    path = None
    try:
        for path, data in files:
            path = Path(path)
            staged.append((path, _stage(path, data, _MODE if mode is None else mode)))
        while staged:
            path, tmp = staged[0]
            os.replace(tmp, path)
            staged.pop(0)
            _fsync_dir(path.parent)
    except OSError as exc:
        if isinstance(exc, WriteError):
            raise
        raise WriteError(path, exc) from None
    finally:
        for _, tmp in staged:  # not renamed: nothing of them may stay behind
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _stage(path: Path, data: bytes, mode: int) -> str:
    """A fsynced temporary file beside ``path`` holding ``data``. mkstemp creates it 0600 and
    it gets ``mode`` before any rename, so no destination is ever readable wider than asked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return tmp


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; filesystems that cannot fsync a directory are skipped."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str, mode: int | None = None) -> None:
    write_bytes(path, text.encode("utf-8"), mode)


def write_many(files: Iterable[tuple[str | Path, bytes]], threads: int = 8) -> None:
    """``write_bytes`` for each (path, data), several at a time. Why: each write waits for its
    fsyncs, one journal commit each (about 5 ms on a virtual disk: most of a CPU run's time
    over 1,600 images); concurrent fsyncs share commits, about 10x cheaper per file. The first
    error is raised once every write has finished or failed; each file is whole or absent."""
    from concurrent.futures import ThreadPoolExecutor

    files = list(files)
    if len(files) <= 1 or threads <= 1:
        for path, data in files:
            write_bytes(path, data)
        return
    with ThreadPoolExecutor(min(threads, len(files))) as pool:
        futures = [pool.submit(write_bytes, path, data) for path, data in files]
    for f in futures:
        f.result()


def read_json_cache(path: str | Path):
    """A cache file's JSON, or None when it is missing, empty or torn (what a power loss can
    leave despite the fsyncs, on filesystems that reorder writes): the caller recomputes it."""
    try:
        return json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return None
