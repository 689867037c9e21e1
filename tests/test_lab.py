"""The lab (docs/lab.md): snapping detector, mini base pipeline, exact resume, curves and the
real-FLUX example. The smoke lab (a reduced base and one arm beating chance in neutral mode) is
tests/test_lab_smoke.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from relbench.spec.data import Triple
from relbench.lab.world import WORLDS, Scene, render_scene
from relbench.shapes.detect import detect_objects, detect_objects_snapped, snap_to_palette
from relbench.shapes.world import BACKGROUND, COLOURS


def _scene():
    return Scene((Triple("red circle", "left of", "blue square"),), seed=3)


def test_snapping_recovers_exact_boxes_from_perturbed_pixels():
    clean = render_scene(_scene(), WORLDS["lab"])
    rng = np.random.default_rng(0)
    noisy = np.clip(clean.astype(int) + rng.integers(-20, 21, clean.shape), 0, 255).astype(np.uint8)
    names = ["red circle", "blue square", "green circle"]
    # exact matching finds nothing once no pixel has a palette colour exactly
    assert detect_objects(noisy, names)["red circle"] is None
    snapped = detect_objects_snapped(noisy, names)
    exact = detect_objects(clean, names)
    assert snapped["red circle"] == exact["red circle"] and snapped["blue square"] == exact["blue square"]
    assert snapped["green circle"] is None and exact["green circle"] is None


def test_snapping_rejects_ambiguous_pixels_and_stray_specks():
    img = np.full((32, 32, 3), BACKGROUND, np.uint8)
    img[4:10, 4:10] = COLOURS["red"]
    img[20:26, 20:26] = (128, 128, 128)  # grey: 86 from purple, its nearest entry (radius 67)
    img[12:18, 20:26] = (200, 60, 50)  # 28 from red, 82 from orange: red
    px = snap_to_palette(img)
    assert (px[20:26, 20:26] == BACKGROUND).all() and (px[4:10, 4:10] == COLOURS["red"]).all()
    assert (px[12:18, 20:26] == COLOURS["red"]).all()
    img[12:18, 20:26] = BACKGROUND
    img[30, 30] = COLOURS["red"]  # a one-pixel speck far away must not stretch the box
    assert detect_objects_snapped(img, ["red square"])["red square"] == ((4.0, 4.0, 10.0, 10.0), 1.0)
    assert detect_objects(img, ["red square"])["red square"][0] == (4.0, 4.0, 31.0, 31.0)


def test_pipeline_roundtrip_and_relation_in_text(tmp_path):
    """The written directory loads as a FluxPipeline, and the text encoders' conditioning of a
    relation prompt differs from its swap's (word order reaches the transformer)."""
    import torch
    from diffusers import FluxPipeline

    from relbench.lab.base import T5_LEN, BaseConfig, build_pipeline

    pipe = build_pipeline(BaseConfig.smoke())
    pipe.save_pretrained(tmp_path / "p")
    back = FluxPipeline.from_pretrained(tmp_path / "p", local_files_only=True)
    a = "a photo of a red circle left of a blue square"
    with torch.no_grad():
        e1, p1, _ = back.encode_prompt(a, prompt_2=None, device="cpu", max_sequence_length=T5_LEN)
        e0, p0, _ = pipe.encode_prompt(a, prompt_2=None, device="cpu", max_sequence_length=T5_LEN)
        e2, _, _ = back.encode_prompt("a photo of a blue square left of a red circle", prompt_2=None, device="cpu",
                                      max_sequence_length=T5_LEN)
    assert torch.equal(e0, e1) and torch.equal(p0, p1)
    assert e1.shape == (1, T5_LEN, 64) and not torch.allclose(e1, e2)
    assert back.tokenizer_2.convert_ids_to_tokens(back.tokenizer_2(a)["input_ids"])[:3] == ["a", "photo", "of"]


def _weights(path):
    from safetensors.torch import load_file

    return {k: v for k, v in sorted(load_file(str(path / "transformer" / "diffusion_pytorch_model.safetensors")).items())}


def test_build_is_deterministic_and_resumes_exactly(tmp_path, monkeypatch):
    import torch

    from relbench.lab import base as lab_base, pretrain
    from relbench.lab.base import BaseConfig, build_base

    cfg = replace(BaseConfig.smoke(), images=48, vae_steps=3, clip_steps=3, flux_steps=4, vae_batch=4, clip_batch=8,
                  flux_batch=4, save_every=2, ema_decay=0.995)  # the moving average resumes too
    build_base(tmp_path / "a", cfg, progress=False)
    real = pretrain._save_state

    def interrupted_then_resumed(name: str, at_stage: str) -> None:
        """Build into ``name``, killed right after the state at step 2 of ``at_stage`` is saved,
        then rerun to completion."""
        def interrupt(path, stage, step, *a, **k):
            real(path, stage, step, *a, **k)
            if stage == at_stage and step == 2:
                raise KeyboardInterrupt

        monkeypatch.setattr(pretrain, "_save_state", interrupt)
        with pytest.raises(KeyboardInterrupt):
            build_base(tmp_path / name, cfg, progress=False)
        assert not (tmp_path / name / "model_index.json").exists() and (tmp_path / f"{name}.build" / at_stage).is_dir()
        monkeypatch.setattr(pretrain, "_save_state", real)
        build_base(tmp_path / name, cfg, progress=False)

    from safetensors.torch import load_file

    def clip(name):
        return load_file(str(tmp_path / name / "text_encoder" / "model.safetensors"))

    wa, ca = _weights(tmp_path / "a"), clip("a")
    for name, stage in (("b", "flux"), ("c", "clip")):
        interrupted_then_resumed(name, stage)
        w, c = _weights(tmp_path / name), clip(name)
        assert w.keys() == wa.keys() and all(torch.equal(wa[k], w[k]) for k in wa)
        assert c.keys() == ca.keys() and all(torch.equal(ca[k], c[k]) for k in ca)
    assert json.loads((tmp_path / "a" / "lab_base.json").read_text())["max_sequence_length"] == 16
    # continuing a written base: more steps on the transformer, recorded in lab_base.json
    lab_base.continue_base(tmp_path / "a", tmp_path / "a2", 2, progress=False)
    meta = json.loads((tmp_path / "a2" / "lab_base.json").read_text())
    assert meta["continued"] == [{"steps": 2, "lr": 3e-4, "seed": cfg.seed + 1000}]
    assert any(not torch.equal(wa[k], v) for k, v in _weights(tmp_path / "a2").items())


def test_pipeline_holds_the_moving_average_of_the_transformer_not_its_last_weights(tmp_path, monkeypatch):
    """Two transformer steps with state saved after each: diffusers' EMAModel takes the first
    step's weights p1 (decay 0 at step 1), then decay min(ema_decay, 2/11) at step 2, so the
    pipeline must hold 2/11 p1 + 9/11 p2, where p1 and p2 are the raw weights in the two states."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from relbench.lab import pretrain
    from relbench.lab.base import BaseConfig, build_base

    cfg = replace(BaseConfig.smoke(), images=48, vae_steps=1, clip_steps=1, flux_steps=2, vae_batch=4, clip_batch=8,
                  flux_batch=4, save_every=1, ema_decay=0.995, warmup=1)
    real, raw = pretrain._save_state, {}

    def keep(path, stage, step, *a, **k):
        real(path, stage, step, *a, **k)
        if stage == "flux":
            raw[step] = {n[len("transformer."):]: v for n, v in load_file(str(path / "weights.safetensors")).items()
                         if n.startswith("transformer.")}

    monkeypatch.setattr(pretrain, "_save_state", keep)
    build_base(tmp_path / "ema", cfg, progress=False)
    w = _weights(tmp_path / "ema")
    d = 2 / 11
    assert set(raw) == {1, 2} and w.keys() == raw[2].keys()
    assert all(torch.allclose(w[k], d * raw[1][k] + (1 - d) * raw[2][k], atol=1e-6) for k in w)
    # not the last weights: the step moved them by far more than the tolerance above
    assert max(float((w[k] - raw[2][k]).abs().max()) for k in w) > 1e-4
    # ema_decay 0: the last weights themselves
    shutil.rmtree(tmp_path / "ema")
    build_base(tmp_path / "last", replace(cfg, ema_decay=0.0), progress=False)
    w0 = _weights(tmp_path / "last")
    assert all(torch.equal(w0[k], raw[2][k]) for k in w0)


@pytest.mark.slow
def test_arms_trained_side_by_side_equal_arms_trained_one_after_the_other(tmp_path):
    """`lab run --jobs` changes wall time, not results: every arm trains on one torch thread
    however many run at once, so its checkpoint bytes are the same (an arm's bytes do depend on
    its thread count). Each arm logs to its own file."""
    from relbench.lab.base import BaseConfig, build_base
    from relbench.lab.run import LabPlan, run_lab

    base = build_base(tmp_path / "base", replace(BaseConfig.smoke(), images=48, vae_steps=2, clip_steps=2, flux_steps=2,
                                                 vae_batch=4, clip_batch=8, flux_batch=4), progress=False)
    plan = replace(LabPlan.smoke(), n_train=16, steps=2, eval_every=2, seeds=[0], eval_seeds=[0],
                   arms=("a_gen", "c_gen_rank"))
    for jobs in (1, 2):
        run_lab(base, tmp_path / f"jobs{jobs}", replace(plan, jobs=jobs), progress=False)
    for arm in plan.arms:
        one, two = tmp_path / "jobs1" / "arms" / arm / "last", tmp_path / "jobs2" / "arms" / arm / "last"
        files = sorted(p.relative_to(one) for p in one.rglob("*.safetensors"))
        assert len(files) >= 4
        assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files), arm
        assert "$ relbench train" in (tmp_path / "jobs2" / f"lab-{arm}.log").read_text()
    table = json.loads((tmp_path / "jobs2" / "table.json").read_text())
    assert {r["run"] for r in table["rows"]} >= {f"{a}_{m}" for a in plan.arms for m in ("relation", "neutral")}


def _fake_training_dir(d, name_suffix=""):
    d.mkdir(parents=True)
    lines = [{"step": 10, "l_gen": 1.0, "l_rank": 0.2, "loss": 1.2, "rank_acc": 0.5},
             {"step": 20, "l_gen": 0.5, "l_rank": 0.1, "loss": 0.6, "rank_acc": 0.75},
             {"event": "eval", "step": 20, "metrics": {"spatial_pos_acc": 0.5}}]
    (d / "train_log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    for step, v in ((10, 0.25), (20, 0.5)):
        e = d / "eval" / f"step-{step:07d}"
        e.mkdir(parents=True)
        (e / "summary.json").write_text(json.dumps({"runs": {"graph_lora": {"metrics": {
            "spatial_pos_acc": {"value": v, "ci_low": v - 0.1, "ci_high": v + 0.1, "chance": 0.28},
            "mse_mean": {"value": 3.0 * v, "ci_low": None, "ci_high": None}}}}}))


def test_training_curves_read_logs_intervals_chance_and_ceiling(tmp_path):
    from relbench.reports.curves import build_curves, read_arm, training_dirs

    _fake_training_dir(tmp_path / "lab" / "arms" / "a<b>")
    _fake_training_dir(tmp_path / "lab" / "arms" / "c")
    dirs = training_dirs(tmp_path / "lab")
    assert [d.name for d in dirs] == ["a<b>", "c"]
    arm = read_arm(dirs[0])
    assert arm.losses["l_gen"].steps == [10, 20] and arm.losses["l_gen"].values == [1.0, 0.5]
    acc = arm.metrics["spatial_pos_acc"]
    assert acc.steps == [10, 20] and acc.values == [0.25, 0.5] and acc.lo == [0.15, 0.4]
    assert acc.chance == 0.28 and acc.ceiling == 1.0
    assert arm.metrics["mse_mean"].ceiling is None and arm.metrics["mse_mean"].chance is None
    info = build_curves([tmp_path / "lab"], tmp_path / "curves.html")
    html = (tmp_path / "curves.html").read_text()
    assert "a&lt;b&gt;" in html and "<b>a<b></b>" not in html  # user text escaped
    assert html.count("<svg") == 4 + 2 and info["bytes"] == len(html.encode())  # 4 loss rows, 2 metric rows


def test_curves_page_puts_the_relation_first_in_a_grid_on_one_step_axis(tmp_path):
    """The headline relation accuracy heads the page (it was panel 12 of 18, ~9,000 px down),
    then the other metrics with a chance level, then the loss terms; panels sit in a grid; and an
    evaluation made once sits at its step on the training's step axis, a proportion on [0, 1]
    (a single point at step 100 got an axis of its own, 96-104)."""
    from relbench.reports.curves import build_curves

    d = tmp_path / "arm"
    d.mkdir()
    logs = [{"step": s, "loss": 1.0 / s, "l_gen": 0.5 / s} for s in range(10, 201, 10)]
    (d / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in logs))
    e = d / "eval" / "step-0000100"
    e.mkdir(parents=True)
    (e / "summary.json").write_text(json.dumps({
        "metrics": {"spatial": {"specs": {"spatial_pair_acc": {"headline": True}}}},
        "runs": {"graph_lora": {"metrics": {
            "mse_mean": {"value": 300.0, "ci_low": 250.0, "ci_high": 350.0},
            "spatial_pos_acc": {"value": 0.4, "ci_low": 0.3, "ci_high": 0.5, "chance": 0.28},
            "spatial_pair_acc": {"value": 0.2, "ci_low": 0.1, "ci_high": 0.3, "chance": 0.08}}}}}))
    build_curves([d], tmp_path / "curves.html")
    html = (tmp_path / "curves.html").read_text()
    assert re.findall(r'<figure class="panel" data-key="([^"]+)"', html) == [
        "spatial_pair_acc", "spatial_pos_acc", "loss", "l_gen", "mse_mean"]
    assert '<div class="grid">' in html
    panel = re.search(r'<figure class="panel" data-key="spatial_pair_acc">.*?</figure>', html, re.S).group(0)
    ticks = re.findall(r"<text [^>]*>([0-9.]+)</text>", panel)
    assert {"0", "100", "200"} <= set(ticks) and not {"96", "104"} & set(ticks)
    assert {"0.00", "1.00"} <= set(ticks)  # the whole range of a proportion


def test_real_flux_protocol_example_validates():
    from pathlib import Path

    from relbench.trainers.flux_graph_lora.config import load_train_config

    root = Path(__file__).resolve().parents[1]
    cfg, _ = load_train_config(str(root / "examples" / "train_lab_flux_vg.yaml"))
    assert cfg.eval.prompt_mode == "neutral" and cfg.eval.best_metric == "spatial_pos_acc"
    assert cfg.objective.negatives.kinds == ["swap"] and cfg.lora.blocks == [7, 8, 9, 10, 11, 12]
    assert (cfg.objective.timesteps.low, cfg.objective.timesteps.high) == (0.7, 1.0)  # the lab's range


def test_lab_bad_input_is_one_line_exit_2(cli, tmp_path):
    r = cli("lab", "run", "--base", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "is not a lab base" in r.stderr
    assert not (tmp_path / "o").exists()  # checked before anything is written
    r = cli("lab", "build-base", "--out", str(tmp_path / "b"), "--flux-steps", "0")
    assert r.returncode == 2 and "--flux-steps must be at least 1" in r.stderr and not (tmp_path / "b").exists()
    r = cli("lab", "run", "--base", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--jobs", "0")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--jobs must be at least 1, got 0" in r.stderr


def test_evaluation_suites_hold_distinct_triples_and_never_keep_stale_photos(tmp_path):
    """A generator's images depend on the triple and the seed, not the reference layout: a
    triple repeated in val/test would be the same images counted twice as independent cases
    (too narrow intervals). Training photos may repeat a triple (new layout each time)."""
    from relbench.lab.suites import split_triples, write_suites
    from relbench.lab.world import WORLDS

    from relbench.lab.run import LabPlan

    plan = LabPlan()  # the lab's own sizes: 48 val and 96 test triples
    paths = write_suites(tmp_path / "d", n_train=60, n_val=plan.n_val, n_test=plan.n_test, seed=0)
    assert (len(paths["val"].read_text().splitlines()), len(paths["test"].read_text().splitlines())) == (48, 96)
    recs = {k: [json.loads(x) for x in p.read_text().splitlines()] for k, p in paths.items()}
    key = lambda r: (r["subject"], r["predicate"], r["object"])  # noqa: E731
    train_t, held_t = split_triples(0)
    assert len(held_t) == 144 and len(train_t) == 288 and not set(train_t) & set(held_t)
    for split in ("val", "test"):
        assert len({key(r) for r in recs[split]}) == len(recs[split])  # distinct triples
        assert {key(r) for r in recs[split]} <= {(t.subject, t.predicate, t.object) for t in held_t}
    # best checkpoints are picked on val: no val triple is a test triple (their images at a seed
    # would be the same), so val and test together use all 144 held-out triples here
    assert not {key(r) for r in recs["val"]} & {key(r) for r in recs["test"]}
    from relbench.errors import UserError

    with pytest.raises(UserError, match="only 48 evaluation triples outside the test suite's 96"):
        write_suites(tmp_path / "y", n_train=8, n_val=49, n_test=96, seed=0)
    assert not (tmp_path / "y").exists()
    assert {key(r) for r in recs["train"]} <= {(t.subject, t.predicate, t.object) for t in train_t}
    # the smoke world: four triples, all of them evaluated; asking for more cases is one line
    smoke = write_suites(tmp_path / "s", n_train=8, n_val=4, n_test=4, seed=0, w=WORLDS["smoke"])
    test = [json.loads(x) for x in smoke["test"].read_text().splitlines()]
    assert {key(r) for r in test} == {(a, p, b) for a, b in (("red square", "blue square"), ("blue square", "red square"))
                                      for p in ("left of", "right of")}
    # the same directory rewritten for another world holds that world's photos, not the old ones
    from PIL import Image

    before = np.asarray(Image.open(tmp_path / "d" / "images" / "test-00000.png"))
    write_suites(tmp_path / "d", n_train=8, n_val=4, n_test=4, seed=0, w=WORLDS["smoke"])
    after = np.asarray(Image.open(tmp_path / "d" / "images" / "test-00000.png"))
    assert not np.array_equal(before, after)
    with pytest.raises(UserError, match="only 4 evaluation triples"):
        write_suites(tmp_path / "x", n_train=8, n_val=4, n_test=5, seed=0, w=WORLDS["smoke"])
    assert not (tmp_path / "x").exists()  # refused before any photo of any split is written


def test_smoke_world_base_draws_only_its_objects():
    from relbench.errors import UserError
    from relbench.lab.pretrain import BaseConfig, world_images
    from relbench.lab.world import world

    cfg = replace(BaseConfig.smoke(), images=40)
    scenes, x = world_images(cfg)
    names = {n for s in scenes for t in s.graph for n in (t.subject, t.object)}
    assert names == {"red square", "blue square"} and {t.predicate for s in scenes for t in s.graph} == {"left of", "right of"}
    assert x.shape == (40, 3, 32, 32) and float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    with pytest.raises(UserError, match="unknown world 'moon'"):
        world("moon")


def test_lab_run_refuses_a_plan_larger_than_the_bases_world_before_writing(tmp_path):
    from relbench.errors import UserError
    from relbench.lab.run import LabPlan, run_lab

    base = tmp_path / "base"
    base.mkdir()
    (base / "model_index.json").write_text("{}")
    from relbench.lab.base import BaseConfig, _world_spec

    meta = {"config": {"world": "smoke", "num_layers": 4}, "max_sequence_length": 16,
            "world": _world_spec(BaseConfig.smoke())}
    (base / "lab_base.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="'smoke' world, which has 4 evaluation triples; the plan asks for 96"):
        run_lab(base, tmp_path / "out", LabPlan(), progress=False)
    assert not (tmp_path / "out").exists()
    # a base built for another version of its world (here: objects at the old size, or no record
    # of the world at all, as bases written before the world was recorded) is refused first
    for spec in ({**meta["world"], "object_scale": 1.0}, None):
        (base / "lab_base.json").write_text(json.dumps({**meta, "world": spec}))
        with pytest.raises(UserError, match="built for another version of the 'smoke' world"):
            run_lab(base, tmp_path / "out", LabPlan.smoke(), progress=False)
        assert not (tmp_path / "out").exists()
    # the held-out share only splits the suites (a base is pretrained on every triple): a base
    # recorded under another split is the same base
    from relbench.lab.base import check_world

    assert check_world({**meta, "world": {**meta["world"], "held_out": 0.25}}, base).world == "smoke"


def test_clip_stage_makes_pooled_vectors_tell_object_names_apart(tmp_path):
    """FLUX reads CLIP only through its pooled vector, and the `text` graph encoder embeds object
    names with it: untrained (or trained through the flow loss alone) it is nearly the same for
    every name (cosine 0.96 between "red square" and "blue square" in a base whose CLIP learned
    through the flow loss). The contrastive stage must separate names that differ only in colour.
    (Seeded, so the numbers are exact; the margins are wide.)"""
    import torch

    from relbench.lab.base import build_pipeline
    from relbench.lab.pretrain import BaseConfig, world_images, object_names, scene_prompts, train_clip

    cfg = replace(BaseConfig(), images=256, clip_steps=60, clip_batch=32, warmup=10, save_every=10_000)
    pipe = build_pipeline(cfg)
    scenes, x = world_images(cfg)
    names = ["red square", "blue square", "green circle", "yellow triangle"]

    def cos():
        with torch.no_grad():
            _, p, _ = pipe.encode_prompt(names, prompt_2=None, device="cpu", max_sequence_length=16)
        p = torch.nn.functional.normalize(p, dim=-1)
        return (p @ p.T)[~torch.eye(len(names), dtype=torch.bool)]

    before = cos()
    train_clip(cfg, pipe, x, scene_prompts(scenes), object_names(cfg, scenes), tmp_path / "state", False, lambda r: None)
    after = cos()
    # pair 0 is (red square, blue square): the same shape, told apart only by colour
    assert float(before[0]) > 0.6 and float(after[0]) < 0.3  # measured 0.72 -> 0.08
    assert float(after.mean()) < float(before.mean()) - 0.4  # measured 0.64 -> -0.10
    assert (tmp_path / "state" / "clip" / "weights.safetensors").is_file()


@pytest.mark.slow  # trains the CLIP stage twice (~9 s on 2 cores)
@pytest.mark.parametrize("share", [0.0, 0.25])
def test_smoke_world_clip_needs_single_object_captions_to_tell_names_apart(tmp_path, share):
    """In the smoke world every scene holds a red and a blue square, so scene prompts alone never
    make CLIP tell the two names apart (measured: cosine 0.996 after 60 steps), and the graph
    encoder, which embeds names with CLIP's pooled vector, got near-identical inputs for a triple
    and its swap (an arm then learned nothing). Captions of one object alone separate them
    (measured: -0.41). Seeded; the thresholds sit far from both."""
    import torch

    from relbench.lab.base import build_pipeline
    from relbench.lab.pretrain import BaseConfig, world_images, object_names, scene_prompts, train_clip

    cfg = replace(BaseConfig.smoke(), images=256, clip_steps=60, clip_batch=32, warmup=10, clip_object_share=share)
    pipe = build_pipeline(cfg)
    scenes, x = world_images(cfg)
    objects = object_names(cfg, scenes)
    assert objects[0].shape == (256, 2, 3, 32, 32)
    # each alone-image holds exactly its own colour (besides the background)
    red = objects[1].index(next(c for c in objects[1] if c[0] == "a photo of a red square"))
    img = ((objects[0][red, 0] + 1) * 127.5).round().permute(1, 2, 0).reshape(-1, 3)
    assert {tuple(v) for v in img.int().tolist()} == {tuple(BACKGROUND), tuple(COLOURS["red"])}
    train_clip(cfg, pipe, x, scene_prompts(scenes), objects if share else None, tmp_path / "state", False, lambda r: None)
    with torch.no_grad():
        _, p, _ = pipe.encode_prompt(["red square", "blue square"], prompt_2=None, device="cpu", max_sequence_length=16)
    c = float(torch.nn.functional.cosine_similarity(p[:1], p[1:]))
    assert (c > 0.95) if share == 0.0 else (c < 0.2)


def test_every_lab_prompt_word_is_in_the_tokenizers_vocabulary():
    """A word outside WORDS becomes <unk>: "to the left of" once read as "<unk> <unk> left of"."""
    from relbench.lab.base import word_tokenizer
    from relbench.lab.pretrain import object_names, scene_prompts, BaseConfig
    from relbench.lab.world import triples

    tok = word_tokenizer(16)
    for w in WORLDS.values():
        scenes = [Scene((t,), 0) for t in triples(w)]
        texts = [p for pair in scene_prompts(scenes) for p in pair]
        texts += [c for pair in object_names(replace(BaseConfig(), world=w.name), scenes[:4])[1] for c in pair]
        for text in texts:
            ids = tok(text).input_ids
            assert tok.unk_token_id not in ids, text
            assert len(ids) <= 16, text


def test_layout_chance_is_one_over_the_worlds_directions():
    """A generator that learned a world's layouts but ignores the relation draws one of the
    world's directions: every layout the world draws satisfies exactly the predicate it was drawn
    for (relbench's rules, checked per layout below), so its chance is 1/4 in the lab world and
    1/2 in the smoke world, not the detector's random-placement 0.28 (which would put a
    relation-blind smoke base above chance)."""
    from relbench.lab.world import layout_chance, place_scene
    from relbench.shapes.world import pixel_box
    from relbench.spec.spatial_rules import relation_holds

    assert layout_chance(WORLDS["smoke"]) == 0.5
    assert layout_chance(WORLDS["lab"]) == 0.25
    w = WORLDS["lab"]
    for drawn in w.predicates:
        for seed in range(20):
            objs = {o.name: pixel_box(o) for o in place_scene(Scene((Triple("red circle", drawn, "blue square"),), seed), w)}
            held = [p for p in w.predicates if relation_holds("relbench", p, objs["red circle"], objs["blue square"])]
            assert held == [drawn]
