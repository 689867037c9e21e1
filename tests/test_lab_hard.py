"""The lab's hard-negative comparison (relbench.lab.hard) on planted runs whose answers are known:
the shapes baselines stand in for the base, the twin and the hard arm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import relbench

WORLD = ["left of", "right of", "above", "below"]
SPATIAL = {"name": "spatial", "args": {"detector": "shapes"}}


def _bench(runs: list[dict], out: Path, predicates: list[dict]) -> Path:
    relbench.run({"suite": {"kind": "shapes", "triples_per_predicate": 3, "predicates": WORLD}, "seeds": [0, 1],
                  "resolution": 32, "metrics": [SPATIAL], "runs": runs, "predicates": predicates},
                 output_dir=str(out))
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The source: shapes_inverse as the base in relation mode, which draws every relation's
    inverse, so each predicate's most confused one is its inverse. The scores: the twin draws
    every relation right (oracle), the hard arm every inverse, the base ignores the relation."""
    from relbench.lab.hard import SOURCE_RUN
    from relbench.lab.world import WORLDS, world_vocabulary

    tmp = tmp_path_factory.mktemp("hard")
    vocab = world_vocabulary(WORLDS["lab"])
    source = _bench([{"name": SOURCE_RUN, "generator": "shapes_inverse"}], tmp / "source", vocab)
    scores = _bench([{"name": "base_neutral", "generator": "shapes_ignore_relation", "prompt_mode": "neutral"},
                     {"name": "d_neutral", "generator": "shapes_oracle", "prompt_mode": "neutral"},
                     {"name": "d_hard_neutral", "generator": "shapes_inverse", "prompt_mode": "neutral"}],
                    tmp / "scores", vocab)
    return source, scores


def test_world_vocabulary_keeps_the_confusion_to_the_worlds_relations(planted):
    """"near" holds in about half the lab world's own scenes: unless the vocabulary is the
    world's, it is a column of every row and the top confusion of a right answer."""
    source, _ = planted
    m = json.loads((source / "summary.json").read_text())["runs"]["base_relation"]["confusion"]["spatial"]
    assert m["predicates"] == ["above", "below", "left of", "right of"]  # the world's, in vocabulary order
    assert m["rows"]["left of"]["seen"] == {"left of": 0.0, "right of": 1.0, "above": 0.0, "below": 0.0}


def test_hard_figures_pair_the_twin_and_the_hard_arm_on_the_most_confused_cells(planted):
    from relbench.lab.hard import hard_figures, hard_markdown

    source, scores = planted
    f = hard_figures(scores, source, "d", modes=("neutral",), stems=("base", "d"))
    assert f["source"]["most_confused"] == {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    assert set(f["matrices"]["neutral"]) == {"base", "d", "d_hard"}
    assert f["matrices"]["neutral"]["d"]["rows"]["above"]["seen"]["above"] == 1.0
    keys = {d["key"]: d for d in f["paired"]["neutral"]["keys"]}
    # the hard arm (every relation inverted) minus the twin (every relation right): -1 exactly
    assert keys["spatial_pos_acc"]["value"] == -1.0 and keys["spatial_pos_acc"]["run"] == "d_hard_neutral"
    assert keys["spatial_pos_acc"]["p_value"] < 0.01
    cells = {(c["asked"], c["seen"]): c for c in f["paired"]["neutral"]["confusion"]}
    # each asked predicate's own share and its most confused one's, nothing else
    assert set(cells) == {(a, a) for a in WORLD} | {(a, b) for a, b in f["source"]["most_confused"].items()}
    assert cells[("left of", "left of")]["value"] == -1.0 and cells[("left of", "right of")]["value"] == 1.0
    assert cells[("above", "below")]["n"] == 6  # 3 triples x 2 seeds
    text = hard_markdown(f)
    assert "left of -> right of" in text and "| spatial_pos_acc | -1.000" in text


def test_hard_arm_is_its_twin_but_for_the_negatives_and_reads_them_from_the_source(planted, tmp_path):
    """Same seed, steps, batches and objective weights as the twin; g- is the source's most
    confused predicate, as the trainer's negative builder reads it from the file."""
    from relbench.lab.hard import SOURCE_RUN, hard_train_config
    from relbench.lab.run import LabPlan, train_config
    from relbench.results.negative_source import load_negative_source
    from relbench.spec.config import NegativeSourceSpec

    source, _ = planted
    twin = train_config("d_gen_rank_dropout", LabPlan(), Path("base"), {"train": "t.jsonl", "val": "v.jsonl"},
                        tmp_path / "d", [2, 3], 16)
    hard = hard_train_config(twin, source, tmp_path / "d_hard")
    neg = hard["objective"].pop("negatives")
    assert neg == {"kinds": ["hard"], "confusion": str(source), "judge": "spatial", "top_k": 1, "run": SOURCE_RUN, "seed": 0}
    assert twin["objective"].pop("negatives") == {"kinds": ["swap"], "seed": 0}
    assert {**hard, "output_dir": None} == {**twin, "output_dir": None}
    src = load_negative_source(NegativeSourceSpec(**{k: v for k, v in neg.items() if k != "seed"}))
    assert [src.ranked(p, 1)[0] for p in WORLD] == ["right of", "left of", "below", "above"]


def test_hard_needs_a_trained_arm_with_a_rank_term(tmp_path):
    from relbench.errors import UserError
    from relbench.lab.base import BaseConfig, _world_spec
    from relbench.lab.run import LabPlan, run_lab

    base = tmp_path / "base"
    base.mkdir()
    (base / "model_index.json").write_text("{}")
    (base / "lab_base.json").write_text(json.dumps({"config": {"world": "smoke", "num_layers": 4}, "max_sequence_length": 16,
                                                    "world": _world_spec(BaseConfig.smoke())}))
    from dataclasses import replace

    # not trained, or trained without L_rel_rank (whose g- the hard negatives are)
    for arms, hard in ((("a_gen",), "d_gen_rank_dropout"), (("b_gen_dropout",), "b_gen_dropout")):
        with pytest.raises(UserError, match="must be one of the trained arms with a rank term"):
            run_lab(base, tmp_path / "out", replace(LabPlan.smoke(), arms=arms, hard=hard), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_lab_run_scores_the_source_before_the_hard_arm_trains_from_it(tmp_path):
    """The wiring of `lab run --hard`: the base is scored on val first, and the hard arm's
    `relbench train` reads that run's matrix. A base pretrained for 2 steps draws no object, so
    its run has no confusion matrix, and the hard arm is refused in one line naming it, while
    its twin trains."""
    import yaml
    from dataclasses import replace

    from relbench.errors import UserError
    from relbench.lab.base import BaseConfig, build_base
    from relbench.lab.run import LabPlan, run_lab

    base = build_base(tmp_path / "base", replace(BaseConfig.smoke(), images=48, vae_steps=2, clip_steps=2, flux_steps=2,
                                                 vae_batch=4, clip_batch=8, flux_batch=4), progress=False)
    arm = "d_gen_rank_dropout"
    plan = replace(LabPlan.smoke(), n_train=16, steps=2, eval_every=2, seeds=[0], eval_seeds=[0], jobs=1, arms=(arm,), hard=arm)
    out = tmp_path / "lab"
    with pytest.raises(UserError, match=f"lab-{arm}_hard.log"):
        run_lab(base, out, plan, progress=False)
    source = json.loads((out / "hard_source" / "summary.json").read_text())
    assert "spatial" not in (source["runs"]["base_relation"].get("confusion") or {})  # nothing judged
    neg = yaml.safe_load((out / "configs" / f"{arm}_hard.yaml").read_text())["objective"]["negatives"]
    assert neg["kinds"] == ["hard"] and neg["confusion"] == str(out / "hard_source") and neg["run"] == "base_relation"
    assert "run 'base_relation' has no confusion matrix from judge 'spatial'" in (out / f"lab-{arm}_hard.log").read_text()
    assert (out / "arms" / arm / "last").is_dir()  # the twin trained
