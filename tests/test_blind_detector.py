"""A detector that finds no object in (nearly) every image of a run says so (terminal,
summary.json flags, report): the shapes detector on photos or FLUX images gives accuracy 0 that
would otherwise read as the generator's failure."""

import json

from relbench.cli import main
from relbench.plugin.context import Context
from relbench.spec.predicates import load_vocabulary
from relbench.plugin.registry import METRICS

BLANK = '''
import numpy as np

from relbench.plugin.generator import Generator
from relbench.plugin.registry import register_generator


@register_generator("blank_grey")
class BlankGrey(Generator):
    """Grey images: what the shapes detector sees in a photo, nothing of its palette."""

    def generate(self, requests):
        return [np.full((r.size[1], r.size[0], 3), 128, np.uint8) for r in requests]
'''

CONFIG = """\
name: blind
suite: {{kind: shapes, triples_per_predicate: 1}}
seeds: [0, 1]
resolution: 64
metrics:
  - {{name: spatial, args: {{detector: shapes}}}}
plugins: [blank_grey_plugin]
runs:
  - {{name: oracle, generator: shapes_oracle}}
  - {{name: grey, generator: blank_grey}}
output_dir: {out}
"""

FLAG = ("run grey: the shapes detector found no object in 100% of its images (36 of 36): it sees only the shapes "
        "world; use detector: grounding_dino")


def test_blind_detector_is_flagged_on_the_terminal_in_summary_and_report(tmp_path, monkeypatch, capsys):
    (tmp_path / "blank_grey_plugin.py").write_text(BLANK)
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(CONFIG.format(out=tmp_path / "out"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--config", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"WARNING spatial: {FLAG}" in out  # 9 triples x 2 seeds x (g+, g-) images
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["metrics"]["spatial"]["flags"] == [FLAG]  # not the oracle, not the reference renders
    assert summary["runs"]["grey"]["metrics"]["spatial_pos_detected"]["value"] == 0
    assert "found no object in 100% of its images" in (tmp_path / "out" / "report.html").read_text()


def test_a_detector_that_sees_most_images_is_not_flagged():
    cls = METRICS.get("spatial")
    m = cls(cls.Args(detector="shapes"), Context(vocab=load_vocabulary()))
    found = '{"red circle":[0,0,4,4,1.0]}'
    rows = [{"pos_boxes": "{}", "neg_boxes": "{}"} for _ in range(47)] + [{"pos_boxes": found, "neg_boxes": "{}"}]
    flags = m.run_flags("r", rows)  # 95 of 96 empty: nearly every image
    assert flags == ["run r: the shapes detector found no object in 98% of its images (95 of 96): it sees only the "
                     "shapes world; use detector: grounding_dino"]
    rows = [{"pos_boxes": found, "neg_boxes": "{}"} for _ in range(10)]  # half found: a weak generator, no flag
    assert m.run_flags("r", rows) == []
    # images the metric did not judge (a reference run's missing g- photo) are not counted
    assert m.run_flags("r", [{"pos_boxes": found, "neg_boxes": None}] * 3) == []
