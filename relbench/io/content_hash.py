"""Content identity of weight files: sha256 of the bytes, cached by (path, size, mtime_ns).

Why the content and not the name and size: a fine-tuned or re-downloaded file copied over the
original keeps both, and every cached score would silently survive. Hashing reads the file
once (about 1 s per GB); the cache, one small JSON file written atomically, makes reruns free.
Like git's index, a file modified within the last few seconds is hashed but not cached, so a
same-size replacement within one timestamp tick of a coarse filesystem is still noticed. The
same cache, one file per kind, holds the code digests of relbench.io.code_identity.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

#: directory of the cache; default $XDG_CACHE_HOME/relbench, else ~/.cache/relbench
CACHE_ENV = "RELBENCH_CACHE_DIR"
_MAX_ENTRIES = 1024
_RACY_NS = 3_000_000_000  # files changed this recently are not cached
#: a Hugging Face cache link points to blobs/<sha256 of the bytes> (LFS files): no need to read it
_BLOB_NAME = re.compile(r"^[0-9a-f]{64}$")


def cache_file(name: str = "sha256") -> Path:
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "relbench")
    return Path(root) / f"{name}.json"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: start over, the entries are only a shortcut
    return data if isinstance(data, dict) else {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the file's bytes (cached while its size and mtime_ns stay the same; a link
    into the Hugging Face cache is named by it already)."""
    return files_sha256([path])[0]


def files_sha256(paths) -> list[str]:
    """file_sha256 of each path, reading and writing the cache once for all of them (a suite's
    reference photos: thousands of small files)."""
    todo = [Path(p) for p in paths]
    named = {i: p.resolve().name for i, p in enumerate(todo) if p.is_symlink() and _BLOB_NAME.match(p.resolve().name)}
    rest = cached_digests([p for i, p in enumerate(todo) if i not in named], "sha256", _sha256)
    return [named[i] if i in named else next(rest) for i in range(len(todo))]


def _sha256(fh) -> str:
    return hashlib.file_digest(fh, "sha256").hexdigest()


def cached_digests(paths, kind: str, digest):
    """digest(open binary file) of each path, cached in RELBENCH_CACHE_DIR/<kind>.json by (path,
    size, mtime_ns) with one read and at most one write of the cache; an iterator, in order."""
    from relbench.io.atomic import write_text

    where = cache_file(kind)
    cache = _read(where)
    new: dict[str, dict] = {}
    out = []
    for path in paths:
        p = Path(path).resolve()
        st = p.stat()
        hit = cache.get(str(p))
        if isinstance(hit, dict) and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            out.append(str(hit["sha256"]))
            continue
        with open(p, "rb") as fh:
            value = digest(fh)
        after = p.stat()
        stable = (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
        if stable and time.time_ns() - st.st_mtime_ns > _RACY_NS:
            new[str(p)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": value}
        out.append(value)
    if new:
        cache = _read(where)  # re-read: another process may have added entries meanwhile
        for k in new:
            cache.pop(k, None)  # re-inserted last: the newest entries survive the trim
        cache.update(new)
        for old in list(cache)[: max(0, len(cache) - _MAX_ENTRIES)]:
            del cache[old]
        try:
            write_text(where, json.dumps(cache, indent=0))
        except OSError:
            pass  # a read-only cache directory costs speed, never correctness
    return iter(out)


def dir_sha256(path: str | os.PathLike, suffixes: tuple[str, ...]) -> dict[str, str]:
    """{file name: sha256} of a model directory's files with these suffixes (weights, configs,
    tokenizer files), so a score cache never mixes two models kept under one path."""
    return {p.name: file_sha256(p) for p in sorted(Path(path).iterdir()) if p.is_file() and p.suffix in suffixes}
