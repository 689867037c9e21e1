"""The lab's arms must keep g+ and g- apart in the graph tokens while they train.

Measured on the lab (docs/lab-notebook.md, "Why the graph pathway had no effect"): with the text graph
encoder trained by AdamW at the arms' lr 1e-3, its 24 ReLU layers (512 wide) received sign-like
updates from tiny, batch-coherent gradients; the activations grew from 29 to 1e5 within 10 steps
and every graph mapped to one direction, which the injector's LayerNorm turned into the same
tokens for every graph (relative difference 2e-7): L_rel_rank then has nothing to move.
The lab now trains a small encoder (one convolution, 128 wide) at lr 1e-4; this test trains the
tiny random FLUX with the lab's own encoder and optimiser settings and checks the tokens stay apart.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import torch  # noqa: E402

torch.set_num_threads(1)

SEQ = 48
TRIPLES = [("red circle", "left of", "blue square"), ("green triangle", "above", "yellow square"),
           ("blue circle", "right of", "red square"), ("yellow triangle", "below", "green circle")]


def _split(d, n=4):
    from PIL import Image

    rng = np.random.default_rng(0)
    with open(d / "train.jsonl", "w") as f:
        for i in range(n):
            s, p, o = TRIPLES[i % len(TRIPLES)]
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / f"t{i}.png")
            f.write(json.dumps({"id": f"t{i}", "image": f"t{i}.png", "subject": s, "predicate": p, "object": o}) + "\n")
    return d / "train.jsonl"


def _separation(graph_lora, pos, neg) -> float:
    with torch.no_grad():
        tp, _ = graph_lora.tokens(pos)
        tn, _ = graph_lora.tokens(neg)
    return float((tp - tn).norm() / tp.norm())


@pytest.mark.parametrize("arm", ["c_gen_rank"])
def test_lab_arm_keeps_graph_tokens_apart(tmp_path, arm):
    from relbench.lab.run import LabPlan, train_config
    from relbench.testing.models.flux import tiny_flux_pipeline
    from relbench.trainers.flux_graph_lora.config import TrainConfig
    from relbench.trainers.flux_graph_lora import Trainer

    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(tmp_path / "flux-tiny")
    train = _split(tmp_path)
    data = {"train": train, "val": train}
    cfg = train_config(arm, LabPlan(), tmp_path / "flux-tiny", data, tmp_path / "o", [0, 1], SEQ)
    # the tiny model's sizes; the encoder, optimiser and objective stay the lab's
    cfg.update(batch_size=2, max_steps=20, eval=None, progress=False, save_every=1000, log_every=10)
    tr = Trainer(TrainConfig.model_validate(cfg))
    pos = [ex.pos for ex in tr.examples]
    neg = [ex.negs[0][1] for ex in tr.examples]
    start = _separation(tr.graph_lora, pos, neg)
    tr.run()
    end = _separation(tr.graph_lora, pos, neg)
    # a swap changes which object sits in the subject slot, so the triple tokens differ
    # (measured at init: 0.1-0.2); collapsed tokens differ by float rounding only (~1e-7)
    assert start > 0.05, start
    assert end > 0.1 * start, (start, end)
    logged = [json.loads(x) for x in (tmp_path / "o" / "train_log.jsonl").read_text().splitlines()]
    assert all(r["graph_sep"] > 0.1 * start for r in logged), logged


def test_graph_separation_by_hand():
    """||T(g+) - T(g-)|| / ||T(g+)|| over samples with a negative, from one padded tokens() call."""
    from types import SimpleNamespace

    from relbench.trainers.flux_graph_lora import Trainer

    table = {"a": [[3.0, 4.0]], "b": [[3.0, 0.0]], "c": [[0.0, 1.0]], "d": [[5.0, 5.0]]}
    calls = []

    def tokens(graphs):
        calls.append(list(graphs))
        return torch.tensor([table[g] for g in graphs]), None

    fake = SimpleNamespace(graph_lora=SimpleNamespace(tokens=tokens))
    sep = Trainer.graph_separation(fake, ["a", "c"], ["b", "d"], torch.tensor([True, False]))
    assert calls == [["a", "c", "b", "d"]]
    assert float(sep) == pytest.approx(4.0 / 5.0)  # only sample 0: |(3,4) - (3,0)| / |(3,4)|
    both = Trainer.graph_separation(fake, ["a", "c"], ["b", "d"], torch.tensor([True, True]))
    assert float(both) == pytest.approx((16 + 25 + 16) ** 0.5 / (25 + 1) ** 0.5)
    assert torch.isnan(Trainer.graph_separation(fake, ["a"], ["b"], torch.tensor([False])))


@pytest.mark.slow  # trains a tiny arm (~8 s on 2 cores)
def test_collapsing_encoder_is_warned_about(tmp_path, capsys):
    """The same arm with the default text encoder (6 graph convolutions, 512 wide) trained at the
    arms' lr (the lab before the fix) collapses to identical g+ / g- tokens; the trainer says so
    in one warning instead of training on."""
    from relbench.lab.run import LabPlan, train_config
    from relbench.testing.models.flux import tiny_flux_pipeline
    from relbench.trainers.flux_graph_lora.config import TrainConfig
    from relbench.trainers.flux_graph_lora import GRAPH_COLLAPSED, Trainer

    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(tmp_path / "flux-tiny")
    train = _split(tmp_path)
    cfg = train_config("c_gen_rank", LabPlan(), tmp_path / "flux-tiny", {"train": train, "val": train},
                       tmp_path / "o", [0, 1], SEQ)
    cfg.update(batch_size=2, max_steps=20, eval=None, progress=False, save_every=1000, log_every=10,
               encoder={"kind": "text"}, train_encoder=True, optim={"lr": 1e-3})
    Trainer(TrainConfig.model_validate(cfg)).run()
    logged = [json.loads(x) for x in (tmp_path / "o" / "train_log.jsonl").read_text().splitlines()]
    collapsed = [r["step"] for r in logged if r["graph_sep"] < GRAPH_COLLAPSED]
    assert collapsed, [r["graph_sep"] for r in logged]
    warnings = [x for x in capsys.readouterr().err.splitlines() if "graph_sep" in x and x.startswith("WARNING")]
    assert len(warnings) == 1 and warnings[0].startswith(f"WARNING step {collapsed[0]}:"), warnings
