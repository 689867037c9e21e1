"""One writer per directory: a second run, train, annotate --import, lab or data vg into a
directory another process is writing is refused in one line naming that process's pid."""

import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import pytest

from conftest import ONE_SEED_ORACLE, ROOT
from test_trainer import config, data  # noqa: F401 (data: the tiny model and splits fixture)

HOLD = """
import sys, time
from relbench.io.locks import writer_lock
with writer_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


@contextmanager
def held(directory, command="relbench run"):
    """Another process holding ``directory``'s writer lock, as a running command would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), command], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def refused(capsys, argv, pid, command):
    from relbench.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{command} (pid {pid}) is writing there" in err[0], err
    return err[0]


def test_second_run_is_refused_and_writes_nothing(tmp_path, capsys):
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(ONE_SEED_ORACLE)
    out = tmp_path / "out"
    with held(out) as holder:
        refused(capsys, ["run", "--config", str(cfg), "--out", str(out), "--no-progress", "--no-report"],
                holder.pid, "relbench run")
        assert sorted(p.name for p in out.iterdir()) == [".relbench.lock"]  # the holder's only
    from relbench.cli import main

    # the holder died (killed): the kernel dropped its lock, the next writer is let in
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-progress", "--no-report"]) == 0
    assert (out / "summary.json").is_file() and not (out / ".relbench.lock").exists()


def test_a_killed_holder_never_blocks(tmp_path):
    from relbench.io.locks import writer_lock

    with held(tmp_path / "d") as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with writer_lock(tmp_path / "d", "relbench run"):
            with writer_lock(tmp_path / "d", "relbench run"):  # nested in one process: the same writer
                pass


def test_second_train_is_refused_and_the_log_kept(data, tmp_path):
    from relbench.errors import UserError
    from relbench.trainers.flux_graph_lora import train

    out = tmp_path / "o"
    out.mkdir()
    (out / "train_log.jsonl").write_text('{"step": 10}\n')  # the holder's log
    with held(out, "relbench train") as holder:
        with pytest.raises(UserError, match=f"relbench train \\(pid {holder.pid}\\) is writing there"):
            train(config(data, out))
    assert (out / "train_log.jsonl").read_text() == '{"step": 10}\n'  # a fresh start used to truncate it
    assert not (out / "last").exists()


def test_annotate_import_data_vg_and_lab_are_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with held(run_dir, "relbench run") as holder:
        refused(capsys, ["annotate", str(run_dir), "--import", str(tmp_path / "answers.json")], holder.pid,
                "relbench run")
        refused(capsys, ["annotate", str(run_dir), "--annotator", "a", "--export", str(tmp_path / "page")],
                holder.pid, "relbench run")  # it writes human/exports.json in the run directory
    splits = tmp_path / "splits"
    with held(splits, "relbench data vg") as holder:
        refused(capsys, ["data", "vg", "--relationships", str(tmp_path / "r.json"), "--image-data",
                         str(tmp_path / "i.json"), "--images", str(tmp_path), "--out", str(splits)],
                holder.pid, "relbench data vg")
    lab = tmp_path / "lab"
    with held(lab, "relbench lab run") as holder:
        refused(capsys, ["lab", "run", "--base", str(tmp_path / "base"), "--out", str(lab)], holder.pid,
                "relbench lab run")
    base = tmp_path / "base"
    with held(tmp_path / "base.build", "relbench lab build-base") as holder:
        (tmp_path / "base.build" / ".relbench-scratch").write_text('{"by": "lab build-base"}\n')
        refused(capsys, ["lab", "build-base", "--smoke", "--out", str(base)], holder.pid, "relbench lab build-base")
    assert not base.exists()


def test_leftover_checkpoint_temp_dirs_of_dead_writers_are_removed(data, tmp_path):
    """A writer killed while saving leaves .last.tmp-PID (or .best.tmp-PID); the next writer,
    holding the lock, removes them and nothing else."""
    from relbench.trainers.flux_graph_lora import train

    out = tmp_path / "o"
    for name in (".last.tmp-4242", ".best.tmp-17", ".last.tmp-x", "mine.tmp-1"):
        (out / name).mkdir(parents=True)
    res = train(config(data, out, max_steps=1))
    assert res["step"] == 1
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [".last.tmp-x", "last", "mine.tmp-1"]


def test_an_output_directory_that_is_a_file_is_one_line(tmp_path, capsys):
    from relbench.cli import main

    (tmp_path / "o").write_text("mine\n")
    assert main(["lab", "run", "--base", str(tmp_path / "base"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "o: exists and is not a directory" in err[0], err
    assert (tmp_path / "o").read_text() == "mine\n"
