"""Nothing of the user's is overwritten or deleted: `relbench run` writes only into an empty or
missing directory or a run's own, and `lab build-base` clears only scratch space it marked."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import ONE_SEED_ORACLE
from relbench.errors import UserError


def run(tmp_path, out, capsys):
    from relbench.cli import main

    cfg = tmp_path / "bench.yaml"
    if not cfg.exists():
        cfg.write_text(ONE_SEED_ORACLE)
    rc = main(["run", "--config", str(cfg), "--out", str(out), "--no-progress", "--no-report"])
    return rc, capsys.readouterr().err.strip().splitlines()


def tree(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_run_refuses_a_folder_of_the_users_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("summary.json", "samples.csv", "report.html"):
        (mine / name).write_text(f"the user's own {name}\n")
    before = tree(mine)
    rc, err = run(tmp_path, mine, capsys)
    assert rc == 2 and len(err) == 1, err
    assert "holds files no relbench run wrote (report.html, samples.csv, summary.json)" in err[0]
    assert tree(mine) == before and sorted(p.name for p in mine.iterdir()) == sorted(before)  # nothing written


def test_root_home_and_working_directory_are_refused(tmp_path, capsys, monkeypatch):
    from relbench.spec.config import parse_benchmark
    from relbench.engine.plan import plan

    import yaml

    with pytest.raises(UserError, match="output_dir: / is the root directory"):
        plan(parse_benchmark({**yaml.safe_load(ONE_SEED_ORACLE), "output_dir": "/"}, "bench.yaml", {}))
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for out, what in ((home, "the home directory"), (Path("."), "the working directory")):  # refused though empty
        rc, err = run(tmp_path, out, capsys)
        assert rc == 2 and len(err) == 1 and f"is {what}" in err[0], err
    assert not any(home.iterdir()) and not any(work.iterdir())


def test_runs_resume_and_rerun_in_their_own_directory(tmp_path, capsys):
    out = tmp_path / "out"
    assert run(tmp_path, out, capsys)[0] == 0
    assert (out / ".relbench-run").is_file()
    first = (out / "summary.json").read_bytes()
    # a run killed before its results: images and marker only
    for name in ("summary.json", "samples.csv", "manifest.json"):
        (out / name).unlink()
    assert run(tmp_path, out, capsys)[0] == 0
    assert (out / "summary.json").read_bytes() == first
    # a run directory written before the marker existed is known by its manifest
    (out / ".relbench-run").unlink()
    assert run(tmp_path, out, capsys)[0] == 0
    # an empty directory the user made is a run's to fill
    (tmp_path / "empty").mkdir()
    assert run(tmp_path, tmp_path / "empty", capsys)[0] == 0


def test_manifest_of_another_tool_does_not_pass(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"name": "my package", "version": 3}))
    rc, err = run(tmp_path, d, capsys)
    assert rc == 2 and "holds files no relbench run wrote (manifest.json)" in err[0]


# ---------------------------------------------------------------------------- lab build-base

def test_build_base_refuses_scratch_it_did_not_make(tmp_path, capsys):
    from relbench.cli import main

    scratch = tmp_path / "base.build"
    scratch.mkdir()
    (scratch / "notes.txt").write_text("the user's\n")
    assert main(["lab", "build-base", "--smoke", "--out", str(tmp_path / "base")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "base.build exists and was not made by relbench" in err[0], err
    assert tree(scratch) == {"notes.txt": b"the user's\n"} and not (tmp_path / "base").exists()
    # a non-empty --out that holds no pipeline is refused before anything is built, too
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["lab", "build-base", "--smoke", "--out", str(tmp_path / "full")]) == 2
    assert "is not an empty directory" in capsys.readouterr().err


def test_build_and_continue_leave_the_users_paths_alone(tmp_path):
    from relbench.lab import base as lab_base
    from relbench.lab.base import BaseConfig, build_base

    cfg = replace(BaseConfig.smoke(), images=16, vae_steps=1, clip_steps=1, flux_steps=1, vae_batch=4, clip_batch=4,
                  flux_batch=4, save_every=1)
    (tmp_path / "a.tmp").mkdir()  # paths the old build removed whatever they held
    (tmp_path / "a.tmp" / "keep.txt").write_text("mine\n")
    build_base(tmp_path / "a", cfg, progress=False)
    assert (tmp_path / "a" / "model_index.json").is_file() and not (tmp_path / "a.build").exists()
    assert tree(tmp_path / "a.tmp") == {"keep.txt": b"mine\n"}
    (tmp_path / "b.build").mkdir()
    (tmp_path / "b.build" / "keep.txt").write_text("mine\n")
    with pytest.raises(UserError, match="b.build exists and was not made by relbench"):
        lab_base.continue_base(tmp_path / "a", tmp_path / "b", 1, progress=False)
    assert tree(tmp_path / "b.build") == {"keep.txt": b"mine\n"} and not (tmp_path / "b").exists()
