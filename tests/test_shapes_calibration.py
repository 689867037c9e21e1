"""The spatial metric on the shapes suite brackets the truth: oracle and references at the top,
random placement at its geometric chance level, the inverse generator at the floor."""

import json

import pytest

CONFIG = """\
name: calib
suite: {{kind: shapes, triples_per_predicate: 5}}
seeds: [0, 1, 2]
metrics:
  - {{name: spatial, args: {{detector: shapes, rule_set: relbench}}}}
runs:
  - {{name: oracle, generator: shapes_oracle}}
  - {{name: ignore, generator: shapes_ignore_relation}}
  - {{name: inverse, generator: shapes_inverse}}
output_dir: {out}
"""


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    from conftest import run_cli

    d = tmp_path_factory.mktemp("calib")
    (d / "b.yaml").write_text(CONFIG.format(out=d / "out"))
    res = run_cli("run", "--config", str(d / "b.yaml"))
    assert res.returncode == 0, res.stderr
    return json.loads((d / "out" / "summary.json").read_text())


def value(summary, run, key="spatial_pos_acc"):
    return summary["runs"][run]["metrics"][key]


def test_oracle_and_references_at_the_ceiling(summary):
    for run in ("oracle", "reference"):
        for key in ("spatial_pos_acc", "spatial_neg_acc"):
            assert value(summary, run, key)["value"] >= 0.95


def test_inverse_at_the_floor(summary):
    for key in ("spatial_pos_acc", "spatial_neg_acc", "spatial_pair_acc"):
        assert value(summary, "inverse", key)["value"] <= 0.05


def test_random_placement_at_its_geometric_chance(summary):
    for key in ("spatial_pos_acc", "spatial_neg_acc"):
        e = value(summary, "ignore", key)
        assert e["chance"] is not None and 0.05 < e["chance"] < 0.5
        assert abs(e["value"] - e["chance"]) <= 0.1, e
    # per predicate, the chance comes from each predicate's geometry: 'on' is rarer than 'left of'
    by = summary["runs"]["ignore"]["by_predicate"]
    assert by["on"]["spatial_pos_acc"]["chance"] < by["left of"]["spatial_pos_acc"]["chance"]
    for pred, entries in by.items():
        assert entries["spatial_pos_acc"]["n"] == 15  # 5 triples x 3 seeds


def test_breakdowns_and_seed_consistency(summary):
    run = summary["runs"]["oracle"]
    assert set(run["by_negative_kind"]) <= {"swap", "replace"} and run["by_negative_kind"]
    n = sum(e["spatial_pair_acc"]["n"] for e in run["by_negative_kind"].values())
    assert n == summary["n_cases"]
    sc = summary["runs"]["ignore"]["seed_consistency"]["spatial_pos_acc"]
    # at least 1 of 3 seeds right is more common than all 3 right, for data and for chance alike
    assert sc["k1"]["value"] >= sc["k3"]["value"] and sc["k1"]["chance"] > sc["k3"]["chance"]
    assert sc["k3"]["n"] == summary["n_triples"]


def test_chance_model_symmetries():
    """Random placement is mirror-symmetric, so mirrored predicates share a chance level; a
    relation and its contradiction cannot both hold, so their chances sum to at most 1."""
    from relbench.models.detectors import ShapesDetector
    from relbench.spec.data import Triple
    from relbench.spec.predicates import load_vocabulary

    det, v = ShapesDetector(None), load_vocabulary()

    def c(p):
        return det.chance((Triple("red circle", p, "blue square"),), "relbench", (256, 256), v)

    assert abs(c("left of") - c("right of")) < 0.03 and abs(c("above") - c("below")) < 0.03
    assert c("left of") + c("right of") <= 1.0 and c("near") + c("far from") <= 1.0
    assert c("in") < c("near")  # containment needs the small box inside the big one
    assert det.chance((Triple("red circle", "wearing", "blue square"),), "relbench", (256, 256), v) is None
