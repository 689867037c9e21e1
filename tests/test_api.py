"""The notebook API: relbench.run / relbench.load_run as pandas DataFrames; `import relbench`
stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import relbench
from relbench.errors import UserError

CONFIG = {
    "suite": {"kind": "shapes", "triples_per_predicate": 1, "predicates": ["left of", "above"]},
    "seeds": [0, 1],
    "resolution": 32,
    "metrics": ["pair_mse", {"name": "spatial", "args": {"detector": "shapes"}}],
    "runs": [{"name": "oracle", "generator": "shapes_oracle"}, {"name": "inverse", "generator": "shapes_inverse"}],
}


def test_import_relbench_is_light():
    code = "import sys, relbench; print(sorted(m for m in ('numpy', 'pandas', 'pydantic', 'relbench.api') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_run_and_load_run_give_the_files_as_frames(tmp_path, cli):
    out = tmp_path / "nb"
    res = relbench.run(CONFIG, output_dir=str(out), seeds=[0])  # overrides replace top-level keys
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0]
    # samples: one row per case x run (the reference run included), columns as in samples.csv
    n_cases = summary["n_cases"]
    assert len(res.samples) == n_cases * 3 and set(res.samples["run"]) == {"oracle", "inverse", "reference"}
    assert res.samples.loc[res.samples.run == "oracle", "pair_correct"].tolist() == [1.0] * n_cases
    assert res.samples.loc[res.samples.run == "inverse", "pair_correct"].tolist() == [0.0] * n_cases
    # the tidy summary holds exactly summary.json's numbers
    s = res.summary
    assert list(s.columns) == ["run", "metric", "breakdown", "value", "ci_low", "ci_high", "n", "chance"]
    row = s[(s.run == "oracle") & (s.metric == "mse_mean") & (s.breakdown == "all")].iloc[0]
    entry = summary["runs"]["oracle"]["metrics"]["mse_mean"]
    assert (row.value, row.ci_low, row.ci_high, row.n) == (entry["value"], entry["ci_low"], entry["ci_high"], entry["n"])
    assert set(s[s.run == "inverse"].breakdown) >= {"all", "predicate:left of", "predicate:above", "negative_kind:swap"}
    n_rows = sum(len(r["metrics"]) + sum(len(v) for v in r["by_predicate"].values())
                 + sum(len(v) for v in r["by_negative_kind"].values())
                 + sum(len(v) for v in r["seed_consistency"].values()) for r in summary["runs"].values())
    assert len(s) == n_rows
    # the same frames from a run directory written by the command line
    cfg = tmp_path / "b.yaml"
    cfg.write_text(json.dumps({**CONFIG, "seeds": [0], "output_dir": str(tmp_path / "cli")}))
    assert cli("run", "--config", str(cfg), "--no-report").returncode == 0
    again = relbench.load_run(tmp_path / "cli")
    assert again.summary.equals(res.summary) and again.samples.equals(res.samples)


def test_bad_override_and_missing_dir_are_one_line(tmp_path):
    with pytest.raises(UserError, match=r"^<config>: seeds: at least one seed is needed$"):
        relbench.run(CONFIG, seeds=[], output_dir=str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="not a finished run directory"):
        relbench.load_run(tmp_path)


def test_missing_pandas_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(UserError, match=r"pip install 'relbench\[notebook\]'"):
        relbench.run(CONFIG)


def test_each_item_is_drawn_with_its_own_noise_shared_by_its_pair(tmp_path):
    """Generators get noise_seed(seed, item), not the bare seed: every item of seed 0 drawn from
    the same noise made all their outcomes move together (docs/lab-notebook.md, round 5). g+ and g- of a
    case share it (the pair isolates the graph), and the samples.csv says which it was."""
    import numpy as np
    from PIL import Image

    from relbench.spec.data import noise_seed
    from tests.plugins.seed_echo import read_seed

    out = tmp_path / "nb"
    cfg = {**CONFIG, "plugins": ["tests.plugins.seed_echo"], "metrics": ["pair_mse"],
           "runs": [{"name": "echo", "generator": "seed_echo"}]}
    res = relbench.run(cfg, output_dir=str(out), seeds=[0, 1])
    rows = res.samples[res.samples.run == "echo"]
    assert len(rows) == 4 and rows.item_id.nunique() == 2  # 2 items x seeds 0, 1

    def drawn(key):
        return read_seed(np.asarray(Image.open(out / "images" / key[:2] / f"{key}.png")))

    seeds = []
    for r in rows.itertuples():
        assert r.noise_seed == noise_seed(r.seed, r.item_id)
        assert drawn(r.image_pos) == drawn(r.image_neg) == r.noise_seed
        seeds.append(r.noise_seed)
    assert len(set(seeds)) == 4  # no two items, no two seeds share noise
    # a function of (seed, item id) alone: an item keeps its noise whatever else is in the suite
    assert noise_seed(0, "a") == noise_seed(0, "a") != noise_seed(0, "b") != noise_seed(1, "b")


def test_run_dir_written_before_the_item_id_rename_reads_the_same(tmp_path, cli):
    """A samples.csv whose suite-item column is still called triple_id loads, compares and plans
    an annotation study exactly as the same directory with item_id does."""
    import shutil

    from relbench.annotate.plan import build_plan
    from relbench.results.read import load_run_dir

    new, old = tmp_path / "new", tmp_path / "old"
    relbench.run(CONFIG, output_dir=str(new), seeds=[0, 1])
    # ids that read as numbers: a reader that forgets the old column is text would make them 7 and 8
    csv = (new / "samples.csv").read_text(encoding="utf-8")
    csv = csv.replace("shapes-left_of-000", "007").replace("shapes-above-000", "008")
    (new / "samples.csv").write_text(csv, encoding="utf-8")
    shutil.copytree(new, old)
    header, rest = csv.split("\n", 1)
    assert ",item_id," in header
    (old / "samples.csv").write_text(header.replace(",item_id,", ",triple_id,") + "\n" + rest, encoding="utf-8")

    fresh = relbench.load_run(new)
    assert set(fresh.samples.item_id) == {"007", "008"}
    assert relbench.load_run(old).samples.equals(fresh.samples)
    rd_old, rd_new = load_run_dir(old), load_run_dir(new)
    assert rd_old.columns == rd_new.columns and rd_old.rows == rd_new.rows
    res = cli("compare", str(old), str(new), "--out", str(tmp_path / "cmp"))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert build_plan([old], n=8).items == build_plan([new], n=8).items
