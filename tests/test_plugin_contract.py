"""The plugin contract over EVERY registered plugin (torchmetrics' MetricTester, diffusers'
PipelineTesterMixin): each runs on tiny inputs through relbench.testing.check_generator /
check_metric, model-backed ones on tiny random models saved to disk in the real layout.

A plugin added to the registry without a tiny configuration here fails this file."""

from __future__ import annotations

import pytest

from relbench.plugin.registry import GENERATORS, METRICS
from relbench.testing import check_generator, check_metric, tiny_context

SEQ = 48  # T5 tokens of the tiny FLUX (character-level tokenizers)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-models")


def _flux_dir(root):
    d = root / "flux-tiny"
    if not d.is_dir():
        from relbench.testing.models.flux import tiny_flux_pipeline

        tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(d)
    return d


def _gligen_dir(root):
    d = root / "gligen-tiny"
    if not d.is_dir():
        from relbench.testing.models.gligen import tiny_gligen_pipeline

        tiny_gligen_pipeline().save_pretrained(d)
    return d


def _clip(root):
    from relbench.testing.models.clip import make_tiny_checkpoint

    model, ckpt = make_tiny_checkpoint(root / "clip")
    return {"model": model, "checkpoint": ckpt}


def _gdino(root):
    from relbench.testing.models.grounding_dino import save_tiny_grounding_dino

    d = root / "gdino" / "model"
    return {"detector": "grounding_dino", "model": str(d if d.is_dir() else save_tiny_grounding_dino(root / "gdino"))}


def _vlm(root):
    from relbench.testing.models.vlm import make_tiny_vlm

    d = root / "vlm"
    return {"model": str(d) if (d / "config.json").is_file() else make_tiny_vlm("idefics3", d)}


def _images(root):
    """A folder an outside tool filled for check_generator's requests (its default sizes)."""
    import json

    from PIL import Image

    from relbench.spec.data import graph_to_json
    from relbench.spec.prompts import build_prompt
    from relbench.shapes.world import layout, render, scene_rng
    from relbench.testing.contract import tiny_cases

    d = root / "images"
    if not d.is_dir():
        d.mkdir()
        cases, vocab = tiny_cases(2)
        lines = [{"relbench_export": 1, "uses": ["graph", "prompt"]}]
        for size in ((32, 32), (48, 32)):
            for c in cases:
                for g in (c.pos, c.neg):
                    name = f"{len(lines):05d}.png"
                    objs = layout(g, scene_rng(c.noise_seed, g, "outside"), size, "random")
                    Image.fromarray(render(objs, size)).save(d / name)
                    lines.append({"file": name, "prompt": build_prompt(g, "relation", vocab), "graph": graph_to_json(g),
                                  "seed": c.noise_seed, "width": size[0], "height": size[1]})
        (d / "requests.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return {"dir": str(d)}


def _pipeline(family):
    """Args for `diffusers` on the tiny ``family`` pipeline, saved once in the hub layout."""
    def args(root):
        from relbench.testing.models.pipelines import TINY_PIPELINES, save_tiny_pipeline

        d = root / family
        if not d.is_dir():
            save_tiny_pipeline(family, d)
        return {"model": str(d), "steps": 2, "pipeline_kwargs": TINY_PIPELINES[family][1]}
    return args


# plugin name -> tiny configurations (functions of the fixture directory giving plugin args)
GENERATOR_CASES = {
    "shapes_oracle": [lambda root: {}],
    "shapes_ignore_relation": [lambda root: {}],
    "shapes_inverse": [lambda root: {}],
    "images": [_images],
    "flux": [lambda root: {"model": str(_flux_dir(root)), "max_sequence_length": SEQ, "steps": 2}],
    "flux_graph_lora": [lambda root: {"model": str(_flux_dir(root)), "max_sequence_length": SEQ, "steps": 2}],
    "gligen": [lambda root: {"model": str(_gligen_dir(root)), "steps": 4, "layout": layout} for layout in ("rule", "reference")],
    "diffusers": [_pipeline(f) for f in ("sd15", "sdxl", "sd3", "pixart_sigma")],
}
METRIC_CASES = {
    "pair_mse": [lambda root: {}],
    "spatial": [lambda root: {}, _gdino],
    "peer_scores": [lambda root: {}, _gdino],
    "clip_alignment": [_clip],
    "lpips": [lambda root: {"allow_random_backbone": True}],
    "vlm_judge": [_vlm],
}


def _registered(registry) -> list[str]:
    """Built-in and installed (entry-point) plugins; not those a test's `plugins:` module added."""
    return [n for n, e in registry.entries().items() if not e.origin.startswith("plugins: ")]


def _params(registry, cases):
    return [pytest.param(name, i, id=f"{name}-{i}") for name in _registered(registry)
            for i in range(max(1, len(cases.get(name, ()))))]


def _build(registry, cases, name, i, root):
    assert name in cases, f"{registry.kind} {name!r} has no tiny configuration in tests/test_plugin_contract.py"
    cls = registry.get(name)
    return cls(cls.Args(**cases[name][i](root)), tiny_context())


@pytest.mark.parametrize("name,i", _params(GENERATORS, GENERATOR_CASES))
def test_generator_contract(name, i, tiny_dir):
    gen = _build(GENERATORS, GENERATOR_CASES, name, i, tiny_dir)
    try:
        fp = gen.fingerprint()
        assert len(fp) == 16 and fp == gen.fingerprint()
        images = check_generator(gen)
        assert len(images) == 8
    finally:
        gen.close()


@pytest.mark.parametrize("name,i", _params(METRICS, METRIC_CASES))
def test_metric_contract(name, i, tiny_dir):
    metric = _build(METRICS, METRIC_CASES, name, i, tiny_dir)
    try:
        rows = check_metric(metric)
        assert len(rows) == 7
        # the sample whose g- image is missing (a reference photo) scores without an error
        assert set(rows[-1]) == set(metric.columns())
    finally:
        metric.close()


def test_every_builtin_is_declared_and_covered():
    """Every module under generators/ and metrics/ is named in the registry's table, and every
    registered plugin has a tiny configuration above."""
    import pkgutil

    import relbench.generators
    import relbench.metrics
    from relbench.plugin.registry import BUILTIN_GENERATORS, BUILTIN_METRICS

    for pkg, table in ((relbench.generators, BUILTIN_GENERATORS), (relbench.metrics, BUILTIN_METRICS)):
        files = {f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")}
        declared = {e.target.partition(":")[0] for e in table.values()}
        assert files == declared
    assert set(_registered(GENERATORS)) <= set(GENERATOR_CASES)
    assert set(_registered(METRICS)) <= set(METRIC_CASES)
