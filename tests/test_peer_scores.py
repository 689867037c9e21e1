"""peer_scores: GenEval, T2I-CompBench and VISOR as their scoring code computes them.

Boxes are planted (a stub detector answers hand-made boxes by the image's id pixel), so every
expected value below is worked out by hand from the peers' rules (docs/metrics.md, "Peer scores").
"""

from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

from relbench.metrics.peer_scores import (
    PeerScores,
    comparability,
    geneval_correct,
    t2i_compbench_score,
    t2i_frame,
    visor_image,
)
from relbench.models.detectors import Detector, register_detector
from relbench.plugin.context import Context
from relbench.plugin.metric import Sample
from relbench.results.aggregate import _entries
from relbench.spec.data import Case, Triple
from relbench.spec.predicates import load_vocabulary

CTX = Context(vocab=load_vocabulary())

RIGHT = {"dog": [((0, 0, 10, 10), 0.9)], "cat": [((30, 0, 40, 10), 0.7)]}  # dog left of cat
WRONG = {"dog": [((30, 0, 40, 10), 0.9)], "cat": [((0, 0, 10, 10), 0.7)]}  # dog right of cat
MISSING = {"dog": [((0, 0, 10, 10), 0.9)]}  # no cat
SCENES = {1: RIGHT, 2: WRONG, 3: MISSING}


@register_detector("stub_peer_boxes")
class StubBoxes(Detector):
    """Test-only: every planted box of the image's scene, best first."""

    all_boxes = True

    def detect_all_many(self, items):
        return [{n: list(SCENES[int(im[0, 0, 0])].get(n, [])) for n in names} for im, names in items]

    def detect_many(self, items):
        return [{n: (bs[0] if bs else None) for n, bs in found.items()} for found in self.detect_all_many(items)]


@register_detector("stub_peer_best_only")
class StubBestOnly(Detector):
    """Test-only: the best planted box per name (Detector's default detect_all_many)."""

    def detect_many(self, items):
        return [{n: (SCENES[int(im[0, 0, 0])].get(n) or [None])[0] for n in names} for im, names in items]


def image(i, size=(16, 16)):
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[0, 0, 0] = i
    return img


def sample(item, seed, scene, pos=("dog", "left of", "cat"), kind="swap", graph=None):
    graph = graph or (Triple(*pos),)
    neg = (Triple(graph[0].object, graph[0].predicate, graph[0].subject),) + graph[1:]
    case = Case(id=f"{item}-{kind}-s{seed}", item_id=item, pos=graph, neg=neg, negative_kind=kind, seed=seed)
    imgs = {f"k{scene}": image(scene)}
    return Sample(case, "run", "p", "n", f"k{scene}", f"k{scene}", _load=imgs.__getitem__, texts=("p", "n"))


def metric(**kw):
    return PeerScores(PeerScores.Args(detector="stub_peer_boxes", **kw), CTX)


def summary(m, samples):
    """The aggregates as summary.json computes them (relbench.results.aggregate)."""
    rows = [{"item_id": s.case.item_id, "seed": s.case.seed, **r} for s, r in zip(samples, m.score(samples))]
    bench = SimpleNamespace(bootstrap_resamples=200, bootstrap_seed=0)
    aggs = m.aggregates()
    return {a.key: e for a, e in zip(aggs, _entries(rows, aggs, bench))}, rows


# --- GenEval: evaluate_images.py relative_position, threshold 0.3, the most confident box -----


def test_geneval_rule_on_planted_boxes():
    assert geneval_correct("left of", "dog", "cat", RIGHT) == 1.0
    assert geneval_correct("right of", "dog", "cat", RIGHT) == 0.0
    assert geneval_correct("above", "dog", "cat", RIGHT) == 0.0
    assert geneval_correct("left of", "dog", "cat", MISSING) == 0.0
    # a box counts only strictly above 0.3
    assert geneval_correct("left of", "dog", "cat", {**RIGHT, "dog": [((0, 0, 10, 10), 0.3)]}) == 0.0
    assert geneval_correct("left of", "dog", "cat", {**RIGHT, "dog": [((0, 0, 10, 10), 0.31)]}) == 1.0
    # offset (-1, 0) shrunk by 0.1 * (10 + 10) = 2 leaves nothing: no relation at all
    assert geneval_correct("left of", "dog", "cat", {"dog": [((0, 0, 10, 10), 0.9)], "cat": [((1, 0, 11, 10), 0.9)]}) == 0.0
    # offset (10, 9): shrunk (9.6, 8.6) / |(10, 9)| = (0.714, 0.639): both right of and below
    diag = {"dog": [((10, 9, 12, 11), 0.9)], "cat": [((0, 0, 2, 2), 0.7)]}
    assert geneval_correct("right of", "dog", "cat", diag) == geneval_correct("below", "dog", "cat", diag) == 1.0


def test_geneval_judges_the_most_confident_box_only():
    two = {"dog": [((50, 0, 60, 10), 0.9), ((0, 0, 10, 10), 0.5)], "cat": [((30, 0, 40, 10), 0.7)]}
    assert geneval_correct("left of", "dog", "cat", two) == 0.0  # the 0.9 dog is right of the cat
    assert visor_image("left of", "dog", "cat", two) == (1.0, 1.0)  # VISOR: any pair


# --- T2I-CompBench: 2D_spatial_eval.py --------------------------------------------------------


def test_t2i_compbench_score_on_planted_boxes():
    a, b = ((0, 0, 100, 100), 0.9), ((200, 0, 300, 100), 0.8)
    assert t2i_compbench_score("left of", "a", "b", {"a": [a], "b": [b]}, (512, 512)) == pytest.approx(0.925)
    # wrong way round: position 0, 0.25*0.9 + 0.25*0.8 = 0.425 < 0.5 -> 0
    assert t2i_compbench_score("right of", "a", "b", {"a": [a], "b": [b]}, (512, 512)) == 0.0
    # IoU 5000/15000 = 1/3 -> position 0.1/IoU = 0.3 -> 0.425 + 0.15
    over = ((50, 0, 150, 100), 0.8)
    assert t2i_compbench_score("left of", "a", "b", {"a": [a], "b": [over]}, (512, 512)) == pytest.approx(0.575)
    low = {"a": [((0, 0, 100, 100), 0.6)], "b": [((50, 0, 150, 100), 0.6)]}  # 0.3 + 0.15 = 0.45 < 0.5
    assert t2i_compbench_score("left of", "a", "b", low, (512, 512)) == 0.0
    assert t2i_compbench_score("left of", "a", "b", {"a": [a]}, (512, 512)) == 0.0  # 0.25*0.9 alone
    # detectron2 keeps scores > 0.5: a box at exactly 0.5 is not detected
    assert t2i_compbench_score("left of", "a", "b", {"a": [a], "b": [((200, 0, 300, 100), 0.5)]}, (512, 512)) == 0.0


def test_t2i_compbench_near_is_measured_on_their_resized_image():
    """Centres 160 px apart: 150/160 at 479 px (their frame), but 160*479/512 = 149.7 < 150
    on a 512 image, which they resize to 479 before UniDet."""
    found = {"a": [((0, 0, 10, 10), 1.0)], "b": [((160, 160, 170, 170), 1.0)]}
    assert t2i_compbench_score("near", "a", "b", found, (479, 479)) == pytest.approx(0.5 + 0.5 * 150 / 160)
    assert t2i_compbench_score("near", "a", "b", found, (512, 512)) == 1.0
    assert t2i_compbench_score("next to", "a", "b", found, (512, 512)) == 1.0  # their phrase, our alias


@pytest.mark.parametrize("size", [(512, 512), (512, 768), (768, 512), (1024, 600), (300, 200)])
def test_t2i_frame_is_torchvision_resize_479_max_480(size):
    from PIL import Image
    from torchvision import transforms

    w, h = transforms.Resize(size=479, max_size=480)(Image.new("RGB", size)).size
    assert t2i_frame((0, 0, size[0], size[1]), size) == pytest.approx((0, 0, w, h))


# --- VISOR: any pair of boxes above 0.1 ------------------------------------------------------


def test_visor_image_on_planted_boxes():
    assert visor_image("left of", "dog", "cat", RIGHT) == (1.0, 1.0)
    assert visor_image("left of", "dog", "cat", WRONG) == (1.0, 0.0)
    assert visor_image("left of", "dog", "cat", MISSING) == (0.0, 0.0)
    # no margin: centroids 1 px apart are left of (GenEval says no relation)
    near = {"dog": [((0, 0, 10, 10), 0.9)], "cat": [((1, 0, 11, 10), 0.9)]}
    assert visor_image("left of", "dog", "cat", near) == (1.0, 1.0)
    assert visor_image("left of", "dog", "cat", {**RIGHT, "cat": [((30, 0, 40, 10), 0.1)]}) == (0.0, 0.0)


# --- aggregation over images and prompts, as the peers do --------------------------------------

# prompt -> the scene of each of its 4 seeds; VISOR correct per image: P1 1,1,1,0; P2 1,0,0,0; P3 0,0,0,0
PROMPTS = {"P1": (1, 1, 1, 2), "P2": (1, 3, 2, 2), "P3": (3, 3, 2, 2)}


def _samples(prompts=PROMPTS):
    return [sample(item, seed, scene) for item, scenes in prompts.items() for seed, scene in enumerate(scenes)]


def test_aggregates_by_hand():
    got, _ = summary(metric(), _samples())
    value = {k: e["value"] for k, e in got.items()}
    assert value["geneval_position"] == pytest.approx(4 / 12)  # share of correct images
    assert value["geneval_position_prompts"] == pytest.approx(2 / 3)  # any image of the prompt correct: P1, P2
    assert value["t2i_compbench_spatial"] == pytest.approx(4 * 0.9 / 12)  # 0.25*0.9 + 0.25*0.7 + 0.5 on 4 images
    assert value["visor_oa"] == pytest.approx(9 / 12)  # both detected: 4 + 3 + 2
    assert value["visor_cond"] == pytest.approx(4 / 9)
    assert value["visor_uncond"] == pytest.approx(1 / 3)  # = cond * OA, as visor.py computes it
    assert [value[f"visor_{k}"] for k in range(1, 5)] == pytest.approx([2 / 3, 1 / 3, 1 / 3, 0.0])
    assert got["geneval_position"]["n"] == 12 and got["visor_1"]["n"] == 3


def test_an_image_counts_once_whatever_its_negatives():
    """With negatives per_item: all, an item's cases of one seed share one img_pos: P1 with two
    negative kinds must not weigh its images twice (per case, uncond would read 7/16)."""
    extra = [sample("P1", seed, scene, kind="replace") for seed, scene in enumerate(PROMPTS["P1"])]
    got, rows = summary(metric(), _samples() + extra)
    assert len(rows) == 16
    assert got["visor_uncond"]["value"] == pytest.approx(1 / 3)
    assert got["geneval_position"]["value"] == pytest.approx(4 / 12)
    assert got["visor_3"]["value"] == pytest.approx(1 / 3)


def test_visor_k_needs_four_images_per_prompt():
    three = {k: v[:3] for k, v in PROMPTS.items()}
    m = metric()
    got, rows = summary(m, _samples(three))
    assert all(got[f"visor_{k}"]["value"] is None and got[f"visor_{k}"]["n"] == 0 for k in range(1, 5))
    assert got["visor_uncond"]["value"] == pytest.approx(4 / 9)  # per-image numbers stay defined
    flags = m.run_flags("gen", rows)
    assert len(flags) == 1 and "3 of 3 prompts" in flags[0] and "4 seeds" in flags[0]
    assert m.run_flags("gen", summary(metric(), _samples())[1]) == []


def test_only_single_triples_the_peer_judges_are_scored():
    m = metric()
    near, holding = sample("N", 0, 1, pos=("dog", "near", "cat")), sample("H", 0, 1, pos=("dog", "holding", "cat"))
    two = sample("T", 0, 1, graph=(Triple("dog", "left of", "cat"), Triple("cat", "above", "dog")))
    r_near, r_hold, r_two = m.score([near, holding, two])
    assert r_near["t2i_compbench_score"] is not None  # T2I-CompBench judges near / next to
    assert r_near["geneval_correct"] is None and r_near["visor_correct"] is None
    assert all(r_hold[c] is None and r_two[c] is None for c in m.columns())


# --- provenance: which detector, and is it the peer's -----------------------------------------


def test_comparability_names_the_peers_own_detectors():
    assert comparability("visor", "owlvit")["own_detector"] is True
    assert comparability("visor", "grounding_dino")["own_detector"] is False
    assert comparability("visor", "owlvit", "/models/google/owlvit-base-patch32/")["own_detector"] is True
    large = comparability("visor", "owlvit", "google/owlvit-large-patch14")
    assert large["own_detector"] is False and "checkpoint" in large["note"]
    ge = comparability("geneval", "mask2former")
    assert ge["own_detector"] is True and "architecture only" in ge["note"]
    assert all(not comparability("t2i_compbench", d)["own_detector"] for d in ("owlvit", "mask2former", "shapes"))


def test_provenance_records_the_detector_and_its_boxes():
    prov = metric().provenance()["peer_scores"]
    assert set(prov) == {"geneval", "t2i_compbench", "visor"}
    assert prov["visor"]["detector"] == "stub_peer_boxes" and prov["visor"]["threshold"] == 0.1
    assert prov["visor"]["boxes"] == "every box per name"
    best = PeerScores(PeerScores.Args(detector="stub_peer_best_only"), CTX)
    assert best.provenance()["peer_scores"]["visor"]["boxes"] == "the best box per name only"
    # best box only: the any-pair rule sees one pair (the 0.9 dog is right of the cat)
    SCENES[4] = {"dog": [((50, 0, 60, 10), 0.9), ((0, 0, 10, 10), 0.5)], "cat": [((30, 0, 40, 10), 0.7)]}
    try:
        assert best.score([sample("B", 0, 4)])[0]["visor_correct"] == 0.0
        assert metric().score([sample("B", 0, 4)])[0]["visor_correct"] == 1.0
    finally:
        del SCENES[4]


def test_args_refuse_a_detector_threshold_above_a_peers():
    with pytest.raises(ValidationError, match="at most 0.1"):
        PeerScores.Args(box_threshold=0.35)
    assert PeerScores.Args(benchmarks=["geneval"], box_threshold=0.3, text_threshold=0.3).box_threshold == 0.3
    with pytest.raises(ValidationError, match="listed twice"):
        PeerScores.Args(benchmarks=["visor", "visor"])


# --- both prompt modes on the shapes world, whose right answer is exact ------------------------


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_shapes_world_in_both_prompt_modes(mode):
    """img_pos drawing g+ is right for every peer; img_pos drawing g- is wrong, and T2I-CompBench
    still gives it 0.25·1 + 0.25·1 + 0 = 0.5, which its `score < 0.5` zeroing keeps."""
    from relbench.shapes.reference import render_reference
    from relbench.testing.samples import make_sample

    pos, neg = (Triple("red square", "left of", "blue circle"),), (Triple("blue circle", "left of", "red square"),)
    case = Case(id="c", item_id="t", pos=pos, neg=neg, negative_kind="swap", seed=0)
    imgs = {"pos": render_reference(pos, 0, (64, 64))[0], "neg": render_reference(neg, 0, (64, 64))[0]}
    m = PeerScores(PeerScores.Args(detector="shapes"), CTX)
    right, wrong = make_sample(case, "pos", "neg", imgs.__getitem__, mode), make_sample(case, "neg", "pos", imgs.__getitem__, mode)
    r, w = m.score([right, wrong])
    assert (r["geneval_correct"], r["visor_correct"], r["t2i_compbench_score"]) == (1.0, 1.0, 1.0)
    assert (w["geneval_correct"], w["visor_correct"], w["t2i_compbench_score"]) == (0.0, 0.0, 0.5)


# --- a real run: summary.json, the report's "Peer scores" section, no paired test over prompts --

PEER_CONFIG = """\
name: peer-run
suite: {{kind: shapes, triples_per_predicate: 2}}
seeds: [0, 1, 2, 3]
metrics: [{{name: peer_scores, args: {{detector: shapes}}}}]
runs:
  - {{name: oracle, generator: shapes_oracle}}
  - {{name: ignore, generator: shapes_ignore_relation}}
output_dir: {out}
"""


@pytest.fixture(scope="module")
def peer_run(tmp_path_factory):
    from conftest import run_cli

    d = tmp_path_factory.mktemp("peer")
    (d / "bench.yaml").write_text(PEER_CONFIG.format(out=d / "out"))
    res = run_cli("run", "--config", str(d / "bench.yaml"))
    assert res.returncode == 0, res.stderr
    return d / "out"


def test_run_names_each_score_after_its_benchmark(peer_run):
    import json

    s = json.loads((peer_run / "summary.json").read_text())
    oracle = s["runs"]["oracle"]["metrics"]
    keys = ["geneval_position", "geneval_position_prompts", "t2i_compbench_spatial", "visor_oa", "visor_cond",
            "visor_uncond", "visor_1", "visor_2", "visor_3", "visor_4"]
    assert all(k in oracle for k in keys)
    # the oracle draws every g+ right and the shapes detector is exact (score 1): every peer agrees
    assert all(oracle[k]["value"] == 1.0 for k in keys)
    # shapes suite, 2 triples per predicate: 8 items with left/right/above/below x 4 seeds
    assert oracle["geneval_position"]["n"] == 32 and oracle["visor_4"]["n"] == 8
    assert s["metrics"]["peer_scores"]["specs"]["visor_4"]["unit"] == "prompt"
    prov = s["metrics"]["peer_scores"]["provenance"]["peer_scores"]
    assert prov["visor"]["detector"] == "shapes" and prov["visor"]["own_detector"] is False


def test_report_has_a_peer_scores_section(peer_run):
    import re

    html = (peer_run / "report.html").read_text()
    sec = re.search(r'<section id="peers">.*?</section>', html, re.S).group(0)
    assert "<h2>Peer scores</h2>" in sec
    for bench, theirs in (("geneval", "Mask2Former"), ("t2i_compbench", "UniDet"), ("visor", "OWL-ViT")):
        head = re.search(rf"<h4>{bench}: detector shapes, not the peer&#39;s detector \(theirs: {theirs}[^<]*</h4>", sec)
        assert head, bench
    assert "visor_4" in sec and "t2i_compbench_spatial" in sec


def test_no_paired_test_over_prompts(peer_run):
    from relbench.results.compare import compare_paired
    from relbench.results.read import collect_runs, load_run_dir

    runs = {r.name: r for r in collect_runs([load_run_dir(peer_run)])}
    a, b = runs["oracle"], runs["ignore"]
    assert compare_paired(a, b, "visor_2") is None and compare_paired(a, b, "geneval_position") is None


def test_per_prompt_goes_with_unit_prompt():
    from relbench.plugin.metric import Aggregate

    with pytest.raises(ValueError, match="per_prompt"):
        Aggregate("x", "c", unit="prompt")
    with pytest.raises(ValueError, match="per_prompt"):
        Aggregate("x", "c", per_prompt=max)
