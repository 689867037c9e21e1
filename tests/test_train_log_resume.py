"""--resume reads train_log.jsonl before the model loads: a torn last line (what a killed
writer leaves) is dropped with a note, a damaged line elsewhere is one line naming it."""

from __future__ import annotations

import json

import pytest

import torch  # noqa: F401 - the [models] extra is part of the test install

from relbench.errors import UserError
from test_trainer import config, data  # noqa: F401 - the tiny FLUX fixture


def _steps(out) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]


def _cut(data, out):  # noqa: F811
    from relbench.trainers.flux_graph_lora import train

    train(config(data, out, epochs=2), stop_after=2)
    assert _steps(out) == [1, 2]


def test_a_torn_last_line_is_dropped_and_resume_continues(data, tmp_path, capsys):  # noqa: F811
    from relbench.trainers.flux_graph_lora import train

    out = tmp_path / "cut"
    _cut(data, out)
    with open(out / "train_log.jsonl", "a") as fh:
        fh.write('{"step": 3, "loss": 0.4')  # killed mid-write, after the checkpoint at step 2
    capsys.readouterr()
    assert train(config(data, out, epochs=2), resume=True)["step"] == 4
    assert _steps(out) == [1, 2, 3, 4]  # the torn step 3 was redone, once
    assert (f"note: {out / 'train_log.jsonl'}: dropped a torn last line (line 3, what a killed writer leaves)"
            in capsys.readouterr().err)


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]"])
def test_a_damaged_line_before_the_last_stops_resume_before_the_model_loads(data, tmp_path, monkeypatch,  # noqa: F811
                                                                            bad):
    import relbench.models.flux as flux_models
    from relbench.trainers.flux_graph_lora import train

    out = tmp_path / "cut"
    _cut(data, out)
    log = out / "train_log.jsonl"
    first, second = log.read_text().splitlines()
    log.write_text(f"{first}\n{bad}\n{second}\n")

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded before the log was checked")

    monkeypatch.setattr(flux_models, "load_pipeline", no_loading)
    with pytest.raises(UserError, match=rf"^{log}:2: not a log record \(.+\); only an unterminated last line may "
                                        r"be torn; fix or delete the line, then --resume again$"):
        train(config(data, out, epochs=2), resume=True)
    assert log.read_text() == f"{first}\n{bad}\n{second}\n"  # the user's log is left as it was
