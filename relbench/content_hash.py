"""Content identity of weight files: sha256 of the bytes, cached by (path, size, mtime_ns).

Why the content and not the name and size: a fine-tuned or re-downloaded file copied over the
original keeps both, and every cached score would silently survive. Hashing reads the file
once (about 1 s per GB); the cache, one small JSON file written atomically, makes reruns free.
Like git's index, a file modified within the last few seconds is hashed but not cached, so a
same-size replacement within one timestamp tick of a coarse filesystem is still noticed.
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


def cache_file() -> Path:
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "relbench")
    return Path(root) / "sha256.json"


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
    from relbench.atomic import write_text

    where = cache_file()
    cache = _read(where)
    new: dict[str, dict] = {}
    out = []
    for path in paths:
        p = Path(path).resolve()
        if Path(path).is_symlink() and _BLOB_NAME.match(p.name):
            out.append(p.name)
            continue
        st = p.stat()
        hit = cache.get(str(p))
        if isinstance(hit, dict) and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            out.append(str(hit["sha256"]))
            continue
        with open(p, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        after = p.stat()
        stable = (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
        if stable and time.time_ns() - st.st_mtime_ns > _RACY_NS:
            new[str(p)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        out.append(digest)
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
    return out


def dir_sha256(path: str | os.PathLike, suffixes: tuple[str, ...]) -> dict[str, str]:
    """{file name: sha256} of a model directory's files with these suffixes (weights, configs,
    tokenizer files), so a score cache never mixes two models kept under one path."""
    return {p.name: file_sha256(p) for p in sorted(Path(path).iterdir()) if p.is_file() and p.suffix in suffixes}
