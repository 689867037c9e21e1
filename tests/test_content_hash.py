"""Content hashes of weight files: right digest, cached by (path, size, mtime_ns), recent files
not cached (a same-size replacement within one clock tick is still noticed), damaged cache ignored."""

import hashlib
import json
import os

import pytest

from relbench.io import content_hash
from relbench.io.content_hash import file_sha256


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RELBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def reads(monkeypatch):
    calls = []
    real = hashlib.file_digest

    def counting(fh, name):
        calls.append(fh.name)
        return real(fh, name)

    monkeypatch.setattr(content_hash.hashlib, "file_digest", counting)
    return calls


def settled(path, age_s=60):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - age_s * 10**9))


def test_digest_and_cache(tmp_path, cache_dir, reads):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    settled(f)
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc"), FIPS 180-2
    assert file_sha256(f) == expected and len(reads) == 1
    assert file_sha256(str(f)) == expected and len(reads) == 1  # cached: not read again
    entry = json.loads((cache_dir / "sha256.json").read_text())[str(f.resolve())]
    assert entry == {"size": 3, "mtime_ns": os.stat(f).st_mtime_ns, "sha256": expected}
    assert [p.name for p in cache_dir.iterdir()] == ["sha256.json"]  # no temporary file left behind

    f.write_bytes(b"abd")  # same size, new bytes
    settled(f, 30)
    assert file_sha256(f) == hashlib.sha256(b"abd").hexdigest() and len(reads) == 2


def test_recent_file_is_hashed_every_time(tmp_path, cache_dir, reads):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    st = os.stat(f)
    assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    f.write_bytes(b"xyz")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: a coarse clock's view
    assert file_sha256(f) == hashlib.sha256(b"xyz").hexdigest()
    assert len(reads) == 2 and not (cache_dir / "sha256.json").exists()


def test_damaged_or_unwritable_cache_costs_only_time(tmp_path, cache_dir, reads):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    settled(f)
    cache_dir.mkdir()
    (cache_dir / "sha256.json").write_text("{not json")
    assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    assert json.loads((cache_dir / "sha256.json").read_text())  # rewritten whole
    (cache_dir / "sha256.json").unlink()
    cache_dir.chmod(0o500)
    try:
        assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    finally:
        cache_dir.chmod(0o700)


def test_hugging_face_cache_link_is_named_by_its_digest(tmp_path, cache_dir, reads):
    """huggingface_hub keeps LFS files in blobs/<sha256> behind a link: the name is the digest."""
    data = b"weights"
    blob = tmp_path / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir()
    blob.write_bytes(data)
    link = tmp_path / "snapshots" / "main" / "model.safetensors"
    link.parent.mkdir(parents=True)
    link.symlink_to(blob)
    assert file_sha256(link) == hashlib.sha256(data).hexdigest() and reads == []
    assert file_sha256(blob) == hashlib.sha256(data).hexdigest() and len(reads) == 1  # a plain file is read
    assert content_hash.dir_sha256(link.parent, (".safetensors",)) == {"model.safetensors": blob.name}
