"""Off a terminal (a log file, CI), long steps say how far they are in plain lines at most every
10 s (done of total, rate, time left), never in ``\\r`` bars; --no-progress silences them and
the libraries' model-loading bars."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from relbench.io import progress
from relbench.io.progress import Progress, format_duration, library_bars


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_plain_lines_at_most_every_ten_seconds_with_rate_and_eta():
    out, clock = io.StringIO(), Clock()  # a StringIO is no terminal
    with Progress(100, "oracle: generating", stream=out, clock=clock) as p:
        for _ in range(10):  # 10 images in 9 s: not yet 10 s since the start, nothing said
            clock.t += 0.9
            p.update(1)
        assert out.getvalue() == ""
        clock.t += 1.0  # 11 images at 10 s: 1.1 images/s, 89 left -> 81 s
        p.update(1)
        assert out.getvalue() == "oracle: generating: 11/100 images (1.1 images/s, ETA 1m21s)\n"
        clock.t += 5.0
        p.update(39)  # 5 s after the last line: still silent
        assert out.getvalue().count("\n") == 1
        clock.t += 5.0  # 20 s in all, 50 done: 2.5 images/s, 50 left -> 20 s
        p.update(0)
        assert out.getvalue().splitlines()[-1] == "oracle: generating: 50/100 images (2.5 images/s, ETA 20s)"
        clock.t += 5.0
        p.update(50)
        assert out.getvalue().count("\n") == 2
    # the end is said when the step closes, since it said something before: 100 in 25 s
    assert out.getvalue().splitlines()[-1] == "oracle: generating: 100/100 images (4 images/s, took 25s)"
    assert "\r" not in out.getvalue()


def test_a_short_step_or_no_progress_says_nothing():
    out, clock = io.StringIO(), Clock()
    with Progress(5, "quick", stream=out, clock=clock) as p:
        clock.t += 9.0
        p.update(5)
    with Progress(5, "muted", stream=out, clock=clock, enabled=False) as p:
        clock.t += 60.0
        p.update(5)
    assert out.getvalue() == ""


def test_rate_leaves_out_the_steps_done_before_a_resume():
    out, clock = io.StringIO(), Clock()
    p = Progress(1000, "train", "steps", initial=900, stream=out, clock=clock)
    clock.t += 10.0
    p.update(10)  # 10 steps in 10 s, not 910
    p.set_postfix(loss="0.0123")
    clock.t += 10.0
    p.update(10)
    assert out.getvalue().splitlines() == ["train: 910/1000 steps (1 steps/s, ETA 1m30s)",
                                           "train: 920/1000 steps (1 steps/s, ETA 1m20s)  loss 0.0123"]


def test_format_duration():
    assert [format_duration(s) for s in (0, 44.6, 60, 187, 3599, 3600, 7500)] == \
        ["0s", "45s", "1m00s", "3m07s", "59m59s", "1h00m", "2h05m"]


def test_run_off_a_terminal_prints_progress_lines_and_no_progress_silences_them(small_config, tmp_path, monkeypatch,
                                                                              capsys):
    from relbench.cli import main

    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # every update says a line, whatever the machine's speed
    cfg = small_config(tpp=1)  # 9 triples x 2 seeds = 18 cases, 36 images per run
    assert main(["run", "--config", str(cfg), "--no-report"]) == 0
    err = capsys.readouterr().err.splitlines()
    for run in ("oracle", "inverse"):
        assert any(line.startswith(f"{run}: generating: 36/36 images (") for line in err), err
        assert any(line.startswith(f"{run}: scoring: 18/18 cases (") for line in err), err
    assert any(line.startswith("reference: scoring: 18/18 cases (") for line in err)
    assert main(["run", "--config", str(cfg), "--no-report", "--no-progress", "--out", str(tmp_path / "quiet")]) == 0
    assert capsys.readouterr().err == ""


def test_library_bars_follow_the_switch_and_are_restored():
    tf_logging = pytest.importorskip("transformers.utils.logging")
    tf_logging.enable_progress_bar()
    with library_bars(False, ("transformers",)):
        assert not tf_logging.is_progress_bar_enabled()
    assert tf_logging.is_progress_bar_enabled()


def test_a_vlm_judge_loads_without_bars_under_no_progress(monkeypatch, tmp_path):
    """transformers' "Loading weights" bars are on by default: a metric's model loaded with
    ctx.progress False (--no-progress, or stderr not a terminal) must switch them off."""
    from transformers.utils import logging as tf_logging

    from relbench.plugin.context import Context
    from relbench.models import vlm as _vlm
    from relbench.spec.predicates import load_vocabulary
    from relbench.plugin.registry import METRICS

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")  # resolve() checks names only; the model is not loaded
    seen = []
    monkeypatch.setattr(_vlm, "VLM", lambda *a, **k: seen.append(tf_logging.is_progress_bar_enabled()))
    tf_logging.enable_progress_bar()
    cls = METRICS.get("vlm_judge")
    for show in (False, True):
        metric = cls(cls.Args(model=str(tmp_path)), Context(vocab=load_vocabulary(), progress=show))
        metric.vlm
    assert seen == [False, True] and tf_logging.is_progress_bar_enabled()


def test_lab_build_base_writes_plain_lines_not_bars(tmp_path, monkeypatch, capsys):
    from relbench.lab.base import BaseConfig, build_base

    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    cfg = replace(BaseConfig.smoke(), images=16, vae_steps=2, clip_steps=2, flux_steps=2, vae_batch=4, clip_batch=4,
                  flux_batch=4)
    build_base(tmp_path / "base", cfg, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    for stage in ("vae", "clip", "transformer"):
        assert f"lab base: {stage}: 2/2 steps (" in err and "  loss " in err


def test_training_lines_end_with_the_time_left():
    from relbench.trainers.flux_graph_lora.log import log_line

    rec = {"step": 40, "epoch": 0.5, "stage": "joint", "loss": 0.25, "l_gen": 0.25, "steps_per_s": 2.0}
    assert log_line(rec, 100, eta_s=95.0) == \
        "step 40/100  epoch 0.50  joint  loss 0.25  l_gen 0.25  2.00 steps/s  ETA 1m35s"
