"""Where a model's files are on this machine: a local directory, or a repo's snapshot already
in the Hugging Face cache.

One place for the rule every loader follows (FLUX pipelines, VLM judges, Grounding DINO):
nothing is downloaded unless the user asked for it, and a missing model is reported by the
caller in one line that says how to provide it. Imports huggingface_hub only when a repo id
has to be looked up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")

#: the command hints tell users to fetch a model with: huggingface_hub >= 1.0 installs ``hf``
#: and no longer the ``huggingface-cli`` script
DOWNLOAD = "hf download"


def local_dir(model: str) -> Path | None:
    """``model`` as an existing directory (``~`` expanded), else None."""
    path = Path(os.path.expanduser(model))
    return path if path.is_dir() else None


def is_repo_id(model: str) -> bool:
    """Looks like ``org/name``: worth asking the cache for."""
    return bool(_HUB_ID.fullmatch(model))


def snapshot(repo: str, revision: str | None = None, allow_patterns: list[str] | None = None,
             download: bool = False) -> Path:
    """The snapshot directory of ``repo`` in the HF cache (fetched only with ``download``).

    Raises the hub's own exception (LocalEntryNotFoundError, GatedRepoError, network errors)
    when it is not there; callers turn that into their one-line UserError.
    """
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, revision=revision, allow_patterns=allow_patterns, local_files_only=not download))


def cache_dir() -> str:
    """The HF cache this process reads (HF_HOME / HF_HUB_CACHE respected), for messages."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except Exception:  # pragma: no cover - huggingface_hub always has it
        return "~/.cache/huggingface/hub"


def weights_sha256(model: str) -> str | None:
    """sha256 of a model's weights and configs (a local directory or its cached snapshot),
    without loading it; None while it is not on this machine (loading then says how to get it)."""
    from relbench.io.content_hash import dir_sha256

    path = local_dir(model)
    if path is None:
        try:
            path = snapshot(model)
        except Exception:  # noqa: BLE001 - not cached (or not a repo id): nothing to hash yet
            return None
    return dir_sha256(path, (".safetensors", ".bin", ".json", ".txt")) or None


def first_line(exc: BaseException) -> str:
    """An exception's first line, for one-line 'model not available' messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
