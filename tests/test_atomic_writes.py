"""Writes survive a full disk, a read-only directory and a power loss: one line naming the
path and the errno, nothing half-written, and a rerun resumes to the same results."""

import errno
import json
import os
import re
import stat
import threading

import pytest

from relbench.io import atomic
from relbench.cli import main


def _run(config) -> int:
    return main(["run", "--config", str(config), "--no-progress"])


def _results(out) -> tuple[str, str]:
    return (out / "samples.csv").read_text(), json.dumps(json.loads((out / "summary.json").read_text())["runs"])


def _clean_results(small_config, tmp_path):
    assert _run(small_config(out="clean")) == 0
    return _results(tmp_path / "clean")


def test_disk_full_mid_run_is_one_line_and_a_rerun_resumes(small_config, tmp_path, monkeypatch, capsys):
    config = small_config(out="full")
    out = tmp_path / "full"
    real_replace, calls, lock = os.replace, [], threading.Lock()

    def replace(src, dst):  # the disk fills up after 20 files were written (images are written concurrently)
        with lock:
            calls.append(str(dst))
            if len(calls) > 20:
                raise OSError(errno.ENOSPC, "No space left on device")
            real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert _run(config) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    named = re.fullmatch(r"relbench: error: cannot write (\S+): No space left on device \(ENOSPC\); nothing was "
                         r"half-written: .* run the same command again to resume", err[0])
    assert named and named.group(1) in calls[20:]
    assert not list(out.rglob("*.tmp"))  # the temporary file is gone, no final name holds a torn file
    assert not (out / "summary.json").exists()

    monkeypatch.setattr(os, "replace", real_replace)
    assert _run(config) == 0
    stored = sum(f"{os.sep}images{os.sep}" in c for c in calls[:20])  # the others: the run directory's marker
    assert stored >= 18
    assert f"{144 - stored} images generated, {stored} reused" in capsys.readouterr().out
    assert _results(out) == _clean_results(small_config, tmp_path)


def test_read_only_output_is_one_line(small_config, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ro"
    real_mkdir = os.mkdir

    def mkdir(path, mode=0o777, **kw):  # root ignores chmod, so the read-only filesystem is simulated
        if str(path).startswith(str(out)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real_mkdir(path, mode, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir)
    assert _run(small_config(out="ro")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"relbench: error: cannot write {out}: Read-only file system (EROFS); free space or make the "
                   f"directory writable, then run the same command again to resume"]


def test_write_error_keeps_the_old_file_and_stays_an_oserror(tmp_path, monkeypatch):
    target = tmp_path / "keep.json"
    atomic.write_text(target, "old")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OSError) as caught:  # content_hash's cache write treats an OSError as a slowdown
        atomic.write_text(target, "new")
    assert isinstance(caught.value, atomic.WriteError) and caught.value.errno == errno.EIO
    assert str(caught.value).startswith(f"cannot write {target}: Input/output error (EIO)")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["keep.json"]


def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else f"fsync file {os.fstat(fd).st_size}")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic.write_bytes(tmp_path / "sub" / "x.bin", b"12345")
    assert events == ["fsync file 5", "rename", "fsync dir"]  # the file holds all 5 bytes when synced
    assert (tmp_path / "sub" / "x.bin").read_bytes() == b"12345"


def test_write_many_writes_every_file_and_raises_the_first_error(tmp_path, monkeypatch):
    files = [(tmp_path / f"{i % 3}" / f"{i}.bin", bytes([i]) * (i + 1)) for i in range(20)]
    atomic.write_many(files)
    assert all(p.read_bytes() == data for p, data in files)
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(("/7.bin", "/12.bin")):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    again = [(p, b"new") for p, _ in files]
    with pytest.raises(atomic.WriteError, match=rf"^cannot write {tmp_path / '1' / '7.bin'}: No space"):
        atomic.write_many(again)
    assert [p.read_bytes() == b"new" for p, _ in files] == [i not in (7, 12) for i in range(20)]
    assert (tmp_path / "1" / "7.bin").read_bytes() == bytes([7]) * 8  # untouched, not torn
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("damage", ["empty", "torn"])
def test_a_damaged_cache_file_is_recomputed(small_config, tmp_path, damage):
    config = small_config(out="hit")
    out = tmp_path / "hit"
    assert _run(config) == 0
    expected = _results(out)
    damaged = sorted((out / "cache" / "scores").rglob("*.json"))[:3] + sorted((out / "cache" / "aggregates").glob("*.json"))
    assert len(damaged) == 4
    for path in damaged:  # what a power loss can leave: an empty file or the first part of one
        text = path.read_text()
        path.write_text("" if damage == "empty" else text[: len(text) // 2])
    assert _run(config) == 0
    assert _results(out) == expected
    for path in damaged:
        assert json.loads(path.read_text())  # rewritten whole


@pytest.mark.parametrize("command", ["report", "compare"])
def test_disk_full_in_report_and_compare_is_one_line(small_config, tmp_path, monkeypatch, capsys, command):
    out = tmp_path / "done"
    assert _run(small_config(out="done")) == 0
    before = (out / "report.html").read_bytes()
    capsys.readouterr()

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    args = [str(out), "-o", str(tmp_path / "cmp")] if command == "compare" else [str(out)]
    assert main([command, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    written = tmp_path / "cmp.csv" if command == "compare" else out / "report.html"
    assert err == [f"relbench: error: cannot write {written}: No space left on device (ENOSPC); nothing was "
                   f"half-written: free space or make the directory writable, then run the same command again to "
                   f"resume"]
    assert (out / "report.html").read_bytes() == before and not list(tmp_path.rglob("*.tmp"))


def test_a_write_error_outside_relbench_atomic_is_one_line_and_others_still_raise(monkeypatch, capsys):
    import relbench.cli as cli

    def appended_to_a_full_disk(args):  # what a failed write() to an open log raises: no file name
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(cli.COMMANDS, "run", appended_to_a_full_disk)
    assert main(["run"]) == 2
    assert capsys.readouterr().err.strip() == ("relbench: error: cannot write: No space left on device (ENOSPC); "
                                               "free space or make the directory writable, then run the same command "
                                               "again to resume")

    def a_bug(args):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setitem(cli.COMMANDS, "run", a_bug)
    with pytest.raises(OSError, match="Bad file descriptor"):  # not the environment: a traceback, not hidden
        main(["run"])
