"""The GLIGEN layout baseline on a tiny random pipeline (CPU, no network): rule and reference
layouts, boxes that reach the pipeline, graphs without a layout, batching."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# the [models] extra is part of the test install: a missing library must fail, not skip
import diffusers  # noqa: F401,E402
import torch  # noqa: E402

from relbench.spec.data import Case, Reference, Request, Triple, graph_objects  # noqa: E402
from relbench.errors import UserError  # noqa: E402
from relbench.plugin.context import Context  # noqa: E402
from relbench.suites.layouts import RULE_BOXES, reference_layout, rule_layout  # noqa: E402
from relbench.spec.predicates import load_vocabulary  # noqa: E402
from relbench.plugin.registry import GENERATORS  # noqa: E402
from relbench.spec.spatial_rules import relation_holds  # noqa: E402
from relbench.testing import check_generator  # noqa: E402
from relbench.testing.models.gligen import tiny_gligen_pipeline  # noqa: E402

torch.set_num_threads(1)

VOCAB = load_vocabulary()
LEFT = (Triple("dog", "left of", "horse"),)
EATING = (Triple("dog", "eating", "horse"),)
ROOT = Path(__file__).parents[1]


def gligen(**kw):
    kw.setdefault("steps", 4)  # beta 0.3 of 4 steps grounds one
    return GENERATORS.get("gligen").from_pipeline(tiny_gligen_pipeline(), **kw)


def req(graph, prompt="a dog and a horse", seed=0, size=(32, 32), layout=None):
    return Request(prompt, graph, seed, size, layout)


@pytest.fixture
def spy(monkeypatch):
    """Every call of StableDiffusionGLIGENPipeline: its prompts, phrases, boxes and beta."""
    from diffusers import StableDiffusionGLIGENPipeline

    calls = []
    real = StableDiffusionGLIGENPipeline.__call__

    def record(self, **kw):
        calls.append({"prompts": kw["prompt"], "phrases": kw["gligen_phrases"], "boxes": kw["gligen_boxes"],
                      "beta": kw["gligen_scheduled_sampling_beta"]})
        return real(self, **kw)

    monkeypatch.setattr(StableDiffusionGLIGENPipeline, "__call__", record)
    return calls


def scaled(box, size):
    w, h = size
    return (box[0] * w, box[1] * h, box[2] * w, box[3] * h)


@pytest.mark.parametrize("size", [(512, 512), (48, 32)])
def test_rule_boxes_are_judged_as_their_predicate(size):
    """A layout told to GLIGEN must be one the spatial metric accepts: each canonical pair holds
    its predicate under relbench's rules and none of the predicate's declared contrasts."""
    assert set(RULE_BOXES) == {"left of", "right of", "above", "below", "near", "on", "in", "in front of", "behind"}
    for pred, (sub, obj) in RULE_BOXES.items():
        a, b = scaled(sub, size), scaled(obj, size)
        assert relation_holds("relbench", pred, a, b) is True, pred
        for contrast in VOCAB.get(pred).contrast:
            assert relation_holds("relbench", contrast, a, b) is False, (pred, contrast)


def test_rule_layout_reads_aliases_and_refuses_what_it_cannot_place():
    assert rule_layout((Triple("cup", "inside", "box"),), VOCAB) == (("box", RULE_BOXES["in"][1]),
                                                                   ("cup", RULE_BOXES["in"][0]))
    assert rule_layout(EATING, VOCAB) is None  # no geometric rule
    assert rule_layout((Triple("cat", "sitting on", "mat"),), VOCAB) is None  # geometric, but not in the table
    assert rule_layout(LEFT + (Triple("horse", "above", "cart"),), VOCAB) is None  # several triples


def test_a_beta_that_grounds_no_step_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="grounds no step"):
        GENERATORS.get("gligen").Args(steps=2, scheduled_sampling_beta=0.3)
    assert GENERATORS.get("gligen").Args(steps=2, scheduled_sampling_beta=0.0).steps == 2  # 0: no boxes, on purpose


def test_plugin_registers_without_importing_torch():
    code = ("import sys, relbench.generators.gligen; from relbench.plugin.registry import GENERATORS; "
            "assert 'gligen' in GENERATORS.names(); "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(ROOT))


@pytest.mark.parametrize("layout", ["rule", "reference"])
def test_contract(layout):
    images = check_generator(gligen(layout=layout))
    assert images[0].std() > 0  # a decoded image, not a constant


def test_rule_boxes_reach_the_pipeline(spy):
    gen = gligen(scheduled_sampling_beta=0.5)
    inside = (Triple("cup", "inside", "box"),)
    gen.generate([req(LEFT), req(inside, prompt="a cup in a box")])
    assert [c["phrases"] for c in spy] == [["dog", "horse"], ["cup", "box"]]  # the graph's order of mention
    assert spy[0]["boxes"] == [list(RULE_BOXES["left of"][0]), list(RULE_BOXES["left of"][1])]
    assert spy[1]["boxes"] == [list(RULE_BOXES["in"][0]), list(RULE_BOXES["in"][1])]
    assert [c["beta"] for c in spy] == [0.5, 0.5]


def test_boxes_change_the_image_and_a_graph_without_rule_is_drawn_without_them(spy):
    """Without a rule the image is the prompt's plain drawing: the same pixels as a graph whose
    boxes are switched off for every step (beta 0); with boxes it differs."""
    gen = gligen()
    boxed, unboxed = gen.generate([req(LEFT), req(EATING)])
    assert spy[1]["beta"] == 0.0
    plain = gligen(scheduled_sampling_beta=0.0).generate([req(LEFT)])[0]
    assert np.array_equal(unboxed, plain)
    assert (boxed != plain).mean() > 0.01
    info = gen.run_info([req(LEFT), req(EATING), req((Triple("dog", "eats", "horse"),), seed=1)])
    assert info["layout"] == {"mode": "rule", "images_with_boxes": 1, "images_without_boxes": 2,
                              "without_boxes_by_predicate": {"eating": 2}}


def test_reference_layout_from_a_photo_suite():
    """A photo's boxes (pixels of a 200x100 image) become fractions; a swap negative gets them
    exchanged, so its own relation holds; a replaced predicate has no reference layout."""
    ref = Reference("photo.png", {"dog": (10, 20, 50, 60), "horse": (120, 20, 190, 80)}, (200, 100))
    swap = (Triple("horse", "left of", "dog"),)
    replaced = (Triple("dog", "right of", "horse"),)
    case = Case("c", "i", LEFT, swap, "swap", 0, ref)
    assert reference_layout(case, LEFT, (32, 32), "jsonl") == (("dog", (0.05, 0.2, 0.25, 0.6)),
                                                              ("horse", (0.6, 0.2, 0.95, 0.8)))
    neg = dict(reference_layout(case, swap, (32, 32), "jsonl"))
    assert neg == {"horse": (0.05, 0.2, 0.25, 0.6), "dog": (0.6, 0.2, 0.95, 0.8)}
    assert relation_holds("relbench", "left of", neg["horse"], neg["dog"]) is True
    assert reference_layout(Case("c", "i", LEFT, replaced, "replace", 0, ref), replaced, (32, 32), "jsonl") is None
    assert reference_layout(Case("c", "i", LEFT, swap, "swap", 0, None), LEFT, (32, 32), "jsonl") is None


def test_reference_layout_draws_the_suite_boxes(spy):
    gen = gligen(layout="reference")
    suite = (("dog", (0.1, 0.1, 0.3, 0.3)), ("horse", (0.5, 0.5, 0.9, 0.9)))
    gen.generate([req(LEFT, layout=suite), req(LEFT, seed=1)])
    assert spy[0]["boxes"] == [[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9]] and spy[0]["beta"] == 0.3
    assert spy[1]["beta"] == 0.0  # no suite boxes: drawn without boxes, not with the rule's
    assert gen.run_info([req(LEFT, layout=suite), req(LEFT)])["layout"]["images_without_boxes"] == 1
    # the boxes are part of the image's key with layout: reference, and only then
    fp = gen.fingerprint()
    assert req(LEFT, layout=suite).key(fp, gen.uses) != req(LEFT).key(fp, gen.uses)
    rule = gligen()
    assert req(LEFT, layout=suite).key(fp, rule.uses) == req(LEFT).key(fp, rule.uses)


def test_neutral_prompt_images_follow_the_graph():
    """Under one neutral prompt g+ and g- are told different layouts, so they are drawn apart."""
    gen = gligen(scheduled_sampling_beta=1.0)
    pos, neg = gen.generate([req(LEFT), req((Triple("horse", "left of", "dog"),))])
    assert not np.array_equal(pos, neg)  # the tiny random model moves few pixels, but it moves them
    fp = gen.fingerprint()
    assert req(LEFT).key(fp, gen.uses) != req((Triple("horse", "left of", "dog"),)).key(fp, gen.uses)


def test_image_depends_only_on_its_own_request():
    gen = gligen(batch_size=2)
    reqs = [req(LEFT, seed=0), req(EATING, seed=3), req(LEFT, prompt="a dog left of a horse", seed=5),
            req(LEFT, seed=7), req(LEFT, seed=0, size=(48, 32))]
    batch = gen.generate(reqs)
    assert batch[4].shape == (32, 48, 3)
    for r, img in zip(reqs, batch):
        alone = gen.generate([r])[0]
        assert int(np.abs(alone.astype(int) - img.astype(int)).max()) <= gen.batch_tolerance, r


def test_local_dir_and_missing_model(tmp_path):
    ctx = Context(vocab=VOCAB)
    cls = GENERATORS.get("gligen")
    model_dir = tmp_path / "gligen-tiny"
    tiny_gligen_pipeline().save_pretrained(model_dir)
    gen = cls(cls.Args(model=str(model_dir), steps=4), ctx)
    assert len(gen.fingerprint()) == 16 and gen._pipe is None  # fingerprinting loads no weights
    assert np.array_equal(gen.generate([req(LEFT)])[0], gligen().generate([req(LEFT)])[0])

    with pytest.raises(UserError) as err:
        cls(cls.Args(model=str(tmp_path / "nope")), ctx).fingerprint()
    msg = str(err.value)
    assert "does not exist" in msg and "hf download masterful/gligen-1-4-generation-text-box" in msg
    assert "\n" not in msg
    index = json.loads((model_dir / "model_index.json").read_text())
    (model_dir / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(UserError, match="holds a StableDiffusionPipeline .* not a GLIGEN text-box pipeline"):
        cls(cls.Args(model=str(model_dir)), ctx).fingerprint()


def test_run_with_shapes_reference_layout(tmp_path, spy):
    """Through `relbench run`: the shapes suite's reference boxes reach the pipeline for g+ and
    g-, and the manifest says how many images were drawn with boxes."""
    from relbench import cli
    from relbench.shapes.reference import reference_boxes

    model_dir = tmp_path / "gligen-tiny"
    tiny_gligen_pipeline().save_pretrained(model_dir)
    config = tmp_path / "bench.yaml"
    config.write_text("name: tiny\nsuite: {kind: shapes, triples_per_predicate: 1}\nseeds: [0]\nresolution: 32\n"
                      "metrics: [pair_mse]\nreference_run: false\nbatch_size: 1\n"
                      f"runs: [{{name: g, generator: gligen, args: {{model: '{model_dir}', steps: 2, scheduled_sampling_beta: 0.5, layout: reference}}}}]\n")
    out = tmp_path / "out"
    assert cli.main(["run", "--config", str(config), "--limit", "2", "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"]["g"]["layout"] == {"mode": "reference", "images_with_boxes": 4, "images_without_boxes": 0,
                                               "without_boxes_by_predicate": {}}
    from relbench.spec.config import load_benchmark
    from relbench.engine.plan import plan

    bench = load_benchmark(config).model_copy(update={"limit": 2, "output_dir": str(tmp_path / "other")})
    expected = []
    for c in plan(bench, check_output=False).cases:
        for graph in (c.pos, c.neg):
            boxes = reference_boxes(graph, c.seed, (32, 32))
            expected.append(sorted([n, [v / 32 for v in boxes[n]]] for n in graph_objects(graph)))
    seen = sorted(sorted([p, b] for p, b in zip(c["phrases"], c["boxes"])) for c in spy)
    assert seen == sorted(expected)
