"""Models named by repo id are read from the Hugging Face cache, offline (relbench.models.hub):
the FLUX generator draws from the cached snapshot what it draws from the same files in a local
directory, the VLM judge and Grounding DINO find their cached snapshots, and an uncached repo is
never fetched."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from relbench.spec.data import Request, Triple
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.spec.predicates import load_vocabulary
from relbench.plugin.registry import GENERATORS

REV = "1" * 40
SEQ = 48


def cache_repo(hub: Path, repo: str, files: Path) -> Path:
    """Lay ``files`` out as huggingface_hub does: snapshots/<rev>/..., refs/main naming it."""
    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(REV)
    snap = root / "snapshots" / REV
    shutil.copytree(files, snap)
    return snap


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a lookup that tried the network would fail here
    return tmp_path / "hub"


def test_flux_reads_a_cached_repo_as_its_local_directory(hub, tmp_path):
    import torch  # noqa: F401

    from relbench.models.flux import FluxArgs
    from relbench.models.pipeline import resolve_model_dir
    from relbench.testing.models.flux import tiny_flux_pipeline

    local = tmp_path / "flux-tiny"
    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(local)
    snap = cache_repo(hub, "org/flux-tiny", local)
    where, ident = resolve_model_dir(FluxArgs(model="org/flux-tiny"))
    assert where == snap and ident == {"source": "hub", "repo": "org/flux-tiny", "commit": REV}

    cls, ctx = GENERATORS.get("flux"), Context(vocab=load_vocabulary())
    req = Request("a dog riding a horse", (Triple("dog", "riding", "horse"),), 0, (32, 32))
    cached = cls(cls.Args(model="org/flux-tiny", max_sequence_length=SEQ), ctx).generate([req])[0]
    plain = cls(cls.Args(model=str(local), max_sequence_length=SEQ), ctx).generate([req])[0]
    assert np.array_equal(cached, plain)
    with pytest.raises(UserError, match="org/other is not in the Hugging Face cache"):
        resolve_model_dir(FluxArgs(model="org/other"))


def test_vlm_judge_finds_its_cached_snapshot(hub, tmp_path):
    from relbench.models.vlm import resolve

    files = tmp_path / "judge"
    files.mkdir()
    (files / "config.json").write_text("{}")
    (files / "model.safetensors").write_bytes(b"0")
    snap = cache_repo(hub, "org/judge", files)
    assert resolve("org/judge") == snap
    with pytest.raises(UserError, match="neither a directory nor in the Hugging Face cache"):
        resolve("org/absent")
    with pytest.raises(UserError, match=r"model directory '\./org/absent' not found"):
        resolve("./org/absent")  # a relative path, not a repo id


def test_grounding_dino_identity_is_its_cached_snapshot(hub, tmp_path):
    from relbench.io.content_hash import dir_sha256
    from relbench.models.detectors import GroundingDinoDetector

    class Options:
        model = "org/dino"

    assert GroundingDinoDetector.identity(Options) is None  # not cached: nothing to hash, nothing fetched
    files = tmp_path / "dino"
    files.mkdir()
    (files / "config.json").write_text('{"a": 1}')
    (files / "model.safetensors").write_bytes(b"weights")
    snap = cache_repo(hub, "org/dino", files)
    ident = GroundingDinoDetector.identity(Options)
    assert ident == dir_sha256(snap, (".safetensors", ".bin", ".json", ".txt")) and ident is not None
    (snap / "model.safetensors").write_bytes(b"other weights")
    assert GroundingDinoDetector.identity(Options) != ident


def test_download_hints_name_the_command_huggingface_hub_installs():
    """huggingface_hub >= 1.0 installs `hf` and no `huggingface-cli`: every hint and doc that
    tells a user how to fetch a model names the script the pinned library really provides."""
    from importlib.metadata import entry_points

    from relbench.models import hub

    scripts = {e.name for e in entry_points(group="console_scripts") if e.dist and e.dist.name == "huggingface_hub"}
    assert hub.DOWNLOAD.split()[0] in scripts and "huggingface-cli" not in scripts
    root = Path(__file__).resolve().parents[1]
    stale = [str(f.relative_to(root)) for f in [root / "README.md", *root.glob("docs/**/*.md"), *root.glob("relbench/**/*.py")]
             if "huggingface-cli download" in f.read_text(encoding="utf-8")]
    assert stale == []
