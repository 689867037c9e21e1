"""One writer per directory: an exclusive flock on DIR/.relbench.lock for as long as a command
writes there.

The kernel drops the lock when its process dies, so a killed writer never blocks the next
one, and a second writer is refused at once (never queued: two runs of one command into one
directory are a mistake, not a schedule). The lock file names the holder's pid and command
for that refusal. It is removed when the lock is released; a writer that locked a file which
was meanwhile removed (its inode is no longer the path's) tries again, so removal never lets
two writers in.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from relbench.errors import UserError

LOCK_NAME = ".relbench.lock"

_held: dict[str, int] = {}  # directories this process holds -> nesting depth


def main_process() -> bool:
    """Whether this is rank 0 (or the only process) of a launch: under `accelerate launch` or
    torchrun the ranks of one job share a directory, and the main one holds its lock."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def _holder(fd: int) -> str:
    try:
        rec = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{rec['command']} (pid {int(rec['pid'])})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another relbench process (pid not yet written)"


ONE_WRITER = "wait for it to finish or choose another directory (one writer per directory)"


def _acquire(path: Path, command: str, hint: str = ONE_WRITER) -> int:
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(f"{path.parent}: {holder} is writing there; {hint}") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a lock file its holder removed on release: lock the path's file
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command}).encode(), 0)
    return fd


@contextmanager
def writer_lock(directory: str | Path, command: str, enabled: bool = True, name: str = LOCK_NAME,
                hint: str = ONE_WRITER):
    """Hold ``directory``'s writer lock (creating the directory) for the ``with`` block, or
    raise UserError naming the process that holds it. ``command`` (e.g. "relbench run") is
    what a refused writer is told. Nested use in one process is a no-op, so a command may
    call code that locks the same directory. A directory this lock created and that the
    block left empty (it failed before writing) is removed again: bad input leaves nothing.
    ``name`` picks another lock file, for writers of one file rather than the whole directory;
    ``hint`` is what a refused writer should do."""
    d = Path(directory)
    key = os.path.join(os.path.realpath(d), name)
    if not enabled:
        yield
        return
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    if d.exists() and not d.is_dir():
        raise UserError(f"{d}: exists and is not a directory (an output directory is needed)")
    created = not d.exists()
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    fd = _acquire(path, command, hint)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        try:
            path.unlink()  # while still locked: a writer that opened it retries on the path
        except FileNotFoundError:
            pass
        os.close(fd)
        if created:
            try:
                d.rmdir()
            except OSError:  # it holds what the block wrote
                pass
