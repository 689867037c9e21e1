"""relbench train on the tiny random FLUX (CPU, no network): objective, resume, harness
evaluation, two processes, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

# the [models] extra is part of the test install: a missing library must fail, not skip
import diffusers  # noqa: F401,E402
import peft  # noqa: F401,E402
import torch  # noqa: E402

from conftest import ACCELERATE_LAUNCH, ROOT  # noqa: E402
from relbench.errors import UserError  # noqa: E402
from relbench.trainers.flux_graph_lora.config import TrainConfig, load_train_config  # noqa: E402

torch.set_num_threads(1)

SEQ = 48
TRIPLES = [("dog", "riding", "horse"), ("cup", "on", "table"), ("man", "holding", "umbrella"), ("cat", "below", "chair")]


def write_split(d, name, n, start=0):
    from PIL import Image

    rng = np.random.default_rng(start)
    with open(d / f"{name}.jsonl", "w") as f:
        for i in range(n):
            s, p, o = TRIPLES[(start + i) % len(TRIPLES)]
            img = f"{name}{i}.png"
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / img)
            f.write(json.dumps({"id": f"{name}{i}", "image": img, "subject": s, "predicate": p, "object": o}) + "\n")
    return d / f"{name}.jsonl"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from relbench.testing.models.flux import tiny_flux_pipeline

    d = tmp_path_factory.mktemp("data")
    write_split(d, "train", 4)
    write_split(d, "val", 2, start=1)
    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(d / "flux-tiny")
    return d


def config(data, out, **kw) -> TrainConfig:
    base = dict(model=str(data / "flux-tiny"), train_jsonl=str(data / "train.jsonl"), val_jsonl=str(data / "val.jsonl"),
                output_dir=str(out), resolution=32, epochs=2, batch_size=2, max_sequence_length=SEQ,
                encoder={"kind": "text", "embed_dim": 16, "width": 16, "layers": 2}, eval=None, progress=False,
                log_every=1, save_every=1000)
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return TrainConfig.model_validate(base)


def trainable(out):
    from safetensors.torch import load_file

    return {f"{n}/{k}": v for n in ("pytorch_lora_weights", "graph_encoder", "graph_injector")
            for k, v in load_file(str(out / "last" / f"{n}.safetensors")).items()}


def log(out):
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------- the objective by hand


def test_flow_matching_terms_by_hand():
    from relbench.trainers import flow

    z0, eps = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 4.0]])
    assert torch.equal(flow.noisy(z0, eps, torch.tensor([1.0])), eps)  # t = 1: pure noise
    assert torch.equal(flow.noisy(z0, eps, torch.tensor([0.0])), z0)  # t = 0: the clean latent
    assert torch.equal(flow.noisy(z0, eps, torch.tensor([0.25])), torch.tensor([[1.5, 1.0]]))
    # target eps - z0 = (-2, 4); a prediction of (0, 0) errs by (4 + 16) / 2
    assert flow.flow_errors(torch.zeros(1, 2), z0, eps).item() == 10.0
    z_t = flow.noisy(z0, eps, torch.tensor([0.25]))
    assert torch.allclose(flow.z0_estimate(z_t, eps - z0, torch.tensor([0.25])), z0)  # exact velocity -> z0
    loss, acc = flow.rank_terms(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([2.0, 2.0, 0.0]),
                                 torch.tensor([True, True, False]), margin=0.5)
    assert loss.item() == pytest.approx((0.0 + 1.5) / 2)  # max(0, .5 + 1 - 2), max(0, .5 + 3 - 2); 3rd has no g-
    assert acc.item() == 0.5
    z = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).view(2, 1, 4, 6)
    assert torch.equal(flow.unpack(flow.pack(z), 4, 6), z)
    g = torch.Generator().manual_seed(0)
    ts = [flow.sample_t(g, TrainConfig.model_fields["objective"].default.timesteps) for _ in range(200)]
    assert 0.5 <= min(ts) and max(ts) <= 1.0  # the seed's range: the noisy half


def test_config_errors_name_file_and_line(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("train_jsonl: x.jsonl\nlora:\n  rank: 4\n  rnak: 8\n")
    with pytest.raises(UserError) as err:
        load_train_config(str(p))
    assert str(err.value).startswith(f"{p}:4: lora.rnak: unknown key 'rnak' (allowed: rank, alpha, blocks, targets)")
    p.write_text("train_jsonl: x.jsonl\nobjective:\n  timesteps: {low: 0.9, high: 0.2}\n")
    with pytest.raises(UserError, match=rf"{p}:3: objective.timesteps: timesteps: low \(0.9\) must be below high"):
        load_train_config(str(p))
    p.write_text("train_jsonl: x.jsonl\nepochs: 4\nstages: [{epochs: 3}, {epochs: 2}]\n")
    with pytest.raises(UserError, match="stages take 5 epochs but epochs is 4"):
        load_train_config(str(p))
    with pytest.raises(UserError, match="resolution: .*multiple of 16"):
        load_train_config(str(p), {"stages": [], "resolution": 40})
    cfg, _ = load_train_config(str(p), {"stages": [{"epochs": 1, "rank_weight": 0}, {"rank_weight": 2.0}], "lora.rank": 8})
    assert cfg.lora.rank == 8 and cfg.lora.alpha == 16
    assert cfg.weights_at(0)["rank_weight"] == 0 and cfg.weights_at(3)["rank_weight"] == 2.0
    example, _ = load_train_config(str(ROOT / "examples" / "train.yaml"))  # the shipped example validates
    assert example.weights_at(4)["rank_weight"] == 0.0 and example.weights_at(5)["rank_weight"] == 1.0


# ---------------------------------------------------------------------------- learning


def test_loss_falls_on_a_fixed_batch(data, tmp_path):
    """50 steps on 2 examples: L_gen on fixed (t, noise) draws of the training cases drops."""
    from relbench.trainers.flux_graph_lora import Trainer

    write_split(tmp_path, "two", 2)
    cfg = config(data, tmp_path / "o", train_jsonl=str(tmp_path / "two.jsonl"), epochs=50, optim={"lr": 2e-3},
                 objective={"rank_weight": 0.0, "neutral_prompt_prob": 0.0}, log_every=10)
    tr = Trainer(cfg)
    before = tr.probe(neutral=False)["l_gen"]
    tr.run()
    after = tr.probe(neutral=False)["l_gen"]
    # the random model starts near the variance of eps - z0 (about 2.0); 50 steps of LoRA +
    # graph tokens on two photos fit a much lower velocity error (measured: 2.00 -> 0.88)
    assert after < 0.75 * before, (before, after)
    lines = log(tmp_path / "o")
    assert [r["step"] for r in lines] == [10, 20, 30, 40, 50]
    assert {"l_gen", "rank_acc", "lr", "step_s", "grad_norm"} <= set(lines[0])


@pytest.mark.slow
def test_rank_loss_teaches_the_graph(data, tmp_path):
    """The same 40 steps with and without L_rel_rank; rank accuracy on fixed draws of the
    training cases (neutral prompts: only the graph can tell g+ from g-)."""
    from relbench.trainers.flux_graph_lora import Trainer

    acc = {}
    for lam in (0.0, 1.0):
        cfg = config(data, tmp_path / f"l{lam}", epochs=20, optim={"lr": 1e-3},
                     objective={"rank_weight": lam, "rank_margin": 0.05, "neutral_prompt_prob": 1.0})
        tr = Trainer(cfg)
        start = tr.probe()
        assert start["rank_acc"] == 0.0 and start["margin"] == 0.0  # zero-init injector: the graph changes nothing
        tr.run()
        acc[lam] = tr.probe()
    # 4 cases x 2 negatives x 4 draws = 32 comparisons. Measured: lambda 1 -> accuracy 0.91,
    # mean margin 0.018; lambda 0 -> 0.50 and -6e-6 (L_gen alone gives the graph no direction)
    assert acc[1.0]["rank_acc"] >= 0.8, acc
    assert acc[1.0]["margin"] > 0 and acc[1.0]["margin"] > 5 * abs(acc[0.0]["margin"]), acc


# ---------------------------------------------------------------------------- resume and the harness


def test_resume_ends_bit_identical(data, tmp_path):
    from relbench.trainers.flux_graph_lora import train

    full = train(config(data, tmp_path / "full", epochs=3))
    assert full["step"] == 6 and full["stopped"] is None
    cut = train(config(data, tmp_path / "cut", epochs=3), stop_after=3)  # mid-epoch
    assert cut["step"] == 3 and "--resume" in cut["stopped"]
    with pytest.raises(UserError, match="already holds a checkpoint; pass --resume"):
        train(config(data, tmp_path / "cut", epochs=3))
    with pytest.raises(UserError, match=r"--resume: .*cut/last was trained with other values \(lora.rank: 16 in the "
                                         r"checkpoint, 4 now\); an exact resume needs the same values"):
        train(config(data, tmp_path / "cut", epochs=3, lora={"rank": 4}), resume=True)
    assert train(config(data, tmp_path / "cut", epochs=3), resume=True)["step"] == 6
    a, b = trainable(tmp_path / "full"), trainable(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    from safetensors.torch import load_file

    oa, ob = (load_file(str(tmp_path / r / "last/trainer_state/optimizer.safetensors")) for r in ("full", "cut"))
    assert oa.keys() == ob.keys() and all(torch.equal(oa[k], ob[k]) for k in oa)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("step_s", "steps_per_s")} for r in rs]  # noqa: E731
    assert strip(log(tmp_path / "full")) == strip(log(tmp_path / "cut"))  # the log is continuous, no duplicates


def test_same_config_writes_the_same_checkpoint_bytes(data, tmp_path):
    """Not only the same tensors: the same files. Two things made them differ before: the global
    generators' states in trainer_state (torch and Python seed them at random per process) and
    the order of the LoRA file's two metadata keys (a Rust HashMap in safetensors)."""
    from relbench.trainers.flux_graph_lora import train

    for r in ("one", "two"):
        train(config(data, tmp_path / r, epochs=1))
    one, two = tmp_path / "one" / "last", tmp_path / "two" / "last"
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file() and p.name != "relbench_graph_lora.json")
    assert {f.name for f in files} >= {"pytorch_lora_weights.safetensors", "rng.safetensors", "state.json"}
    assert [f for f in files if (one / f).read_bytes() != (two / f).read_bytes()] == []


def test_safetensors_metadata_is_written_in_one_order(tmp_path):
    """safetensors orders metadata keys at random (per map): sorted afterwards, the same tensors
    and metadata give the same bytes every time, and the file still loads as written."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from relbench.models.graph_lora_ckpt import sort_safetensors_metadata

    tensors = {"b.weight": torch.arange(6.0).reshape(2, 3), "a": torch.tensor([1, 2], dtype=torch.int64)}
    meta = {"format": "pt", "lora_adapter_metadata": '{"r": 8}', "zeta": "z", "alpha": "x"}
    files = []
    for i in range(8):
        f = tmp_path / f"{i}.safetensors"
        save_file(tensors, str(f), metadata=meta)
        sort_safetensors_metadata(f)
        files.append(f.read_bytes())
        back = load_file(str(f))
        assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors)
        with safe_open(str(f), "pt") as h:
            assert h.metadata() == meta
    assert len(set(files)) == 1 and len(files[0]) % 8 == 0


def test_output_dir_checks_run_before_the_model_loads(data, tmp_path, monkeypatch):
    """On real FLUX loading takes minutes: a wrong --output-dir / --resume fails first."""
    import relbench.models.flux as flux_models
    from relbench.trainers.flux_graph_lora import train

    train(config(data, tmp_path / "o", epochs=1))

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded before the output directory was checked")

    monkeypatch.setattr(flux_models, "load_pipeline", no_loading)
    with pytest.raises(UserError, match="already holds a checkpoint; pass --resume"):
        train(config(data, tmp_path / "o", epochs=1))
    with pytest.raises(UserError, match="--resume: no checkpoint in"):
        train(config(data, tmp_path / "fresh", epochs=1), resume=True)
    with pytest.raises(UserError, match=r"was trained with other values \(resolution: 32 in the checkpoint, 64 now\)"):
        train(config(data, tmp_path / "o", epochs=1, resolution=64), resume=True)


@pytest.mark.slow
def test_checkpoint_scores_through_relbench_run(data, tmp_path, monkeypatch, capsys):
    """In-training evaluation = `relbench run --ckpt last/` on the same val cases, case by case."""
    import csv

    from relbench import cli
    from relbench.trainers.flux_graph_lora import train

    out = tmp_path / "o"
    res = train(config(data, out, epochs=2, max_steps=10, optim={"lr": 5e-3},
                       eval={"every_steps": 2, "limit": 2, "metrics": ["pair_mse"], "prompt_mode": "neutral",
                             "best_metric": "mse_mean", "best_mode": "max", "patience": 5}))
    assert res["best"]["metric"] == "mse_mean" and (out / "best" / "relbench_graph_lora.json").is_file()
    # stderr is no terminal here: plain lines, each evaluation announced and its numbers shown
    err = capsys.readouterr().err
    assert "note: --max-steps 10 is beyond 2 epochs x 2 steps; training stops at step 4" in err
    assert "step 1/4  epoch 0.50  stage1  loss " in err and "Loading" not in err  # no loading bars either
    for step in (2, 4):
        assert f"evaluating step {step} ...\n" in err
        # two validation triples: too few for an interval (relbench.stats.bootstrap.MIN_TRIPLES), and it says so
        assert re.search(rf"eval step {step}: mse_mean \d\.\d+ \[interval undefined\] \(.*step-000000{step}\)", err), err
    evals = [r for r in log(out) if r.get("event") == "eval"]
    assert [e["step"] for e in evals] == [2, 4]
    assert evals[-1]["metrics"]["mse_mean"] > 0  # trained graph tokens make g+ and g- images differ
    bench = tmp_path / "bench.yaml"
    bench.write_text(f"name: ck\nsuite: {{kind: jsonl, path: {data / 'val.jsonl'}}}\nseeds: [0]\nresolution: 32\n"
                     f"limit: 2\nmetrics: [pair_mse]\nreference_run: false\noutput_dir: {tmp_path / 'run'}\n"
                     f"runs: [{{name: x, generator: flux_graph_lora, prompt_mode: neutral, "
                     f"args: {{ckpt: {out / 'last'}, max_sequence_length: {SEQ}}}}}]\n")
    # no RELBENCH_FLUX_MODEL, no `model`: the run uses the base recorded in the checkpoint
    monkeypatch.delenv("RELBENCH_FLUX_MODEL", raising=False)
    assert cli.main(["run", "--config", str(bench), "--no-progress"]) == 0

    def per_case(path):
        with open(path) as fh:
            return {r["case_id"]: float(r["pair_mse"]) for r in csv.DictReader(fh)}

    ours = per_case(out / "eval" / "step-0000004" / "samples.csv")
    theirs = per_case(tmp_path / "run" / "samples.csv")
    assert ours == theirs and len(ours) == 2
    # --ckpt takes the training output directory: its best/ (kept at step 4, mse_mean "max")
    capsys.readouterr()
    assert cli.main(["run", "--config", str(bench), "--generator", "flux_graph_lora", "--ckpt", str(out),
                     "--out", str(tmp_path / "run2"), "--no-progress", "--no-report"]) == 0
    assert f"--ckpt {out} is a training output directory; using its best/ checkpoint" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "run2" / "manifest.json").read_text())
    assert manifest["runs"]["x"]["args"]["ckpt"] == str(out / "best")
    assert per_case(tmp_path / "run2" / "samples.csv") == theirs
    # early stopping: mse_mean grew from step 2 to 4 above, so "min" with patience 1 stops at 4
    assert evals[1]["metrics"]["mse_mean"] > evals[0]["metrics"]["mse_mean"]
    res = train(config(data, tmp_path / "es", epochs=4, optim={"lr": 5e-3},
                       eval={"every_steps": 2, "limit": 2, "metrics": ["pair_mse"], "best_metric": "mse_mean",
                             "best_mode": "min", "patience": 1}))
    assert res["step"] == 4 and res["stopped"].startswith("early stop at step 4") and res["best"]["step"] == 2


def test_best_metric_of_the_spatial_judge_is_checked_before_the_model_loads(data, tmp_path):
    """The lab's arms pick best/ by spatial_pos_acc: the eval metrics are built to list their
    aggregates before training starts, and spatial must be buildable there (it read the
    context's device when built, and got none: an AttributeError, so every lab arm failed)."""
    from relbench.trainers.flux_graph_lora import train

    spatial = {"name": "spatial", "args": {"detector": "shapes_snap"}}
    with pytest.raises(UserError, match=r"eval.best_metric: 'nope' is not an aggregate of the eval metrics "
                                        r"\(known: .*spatial_pos_acc"):
        train(config(data, tmp_path / "o", eval={"every_steps": 2, "limit": 2, "metrics": [spatial], "best_metric": "nope"}))
    assert not (tmp_path / "o" / "last").exists()


def test_gradient_checkpointing_and_caches_do_not_change_results(data, tmp_path):
    from relbench.trainers.flux_graph_lora import train

    train(config(data, tmp_path / "ref", epochs=1))
    train(config(data, tmp_path / "gc", epochs=1, gradient_checkpointing=True, cache={"latents": "off", "text": "disk"}))
    assert list((tmp_path / "gc" / "cache" / "text").glob("*.safetensors"))
    a, b = trainable(tmp_path / "ref"), trainable(tmp_path / "gc")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_clip_ranking_term(data, tmp_path):
    from relbench.testing.models.clip import make_tiny_checkpoint
    from relbench.trainers.flux_graph_lora import train

    model, ckpt = make_tiny_checkpoint(tmp_path / "clip")
    train(config(data, tmp_path / "o", epochs=1,
                 objective={"clip": {"model": model, "checkpoint": ckpt, "weight": 1.0, "margin": 1.0}}))
    rec = log(tmp_path / "o")[-1]
    assert np.isfinite(rec["l_clip"]) and rec["l_clip"] >= 0 and 0 <= rec["clip_acc"] <= 1


def test_clip_ranking_term_reads_a_pretrained_tag_as_the_metric_does(tmp_path, monkeypatch):
    """``objective.clip.pretrained``: the tag's quick_gelu and mean/std, weights from the HF
    cache offline; without weights, or with a tag not cached, one line under the trainer's key."""
    import huggingface_hub.constants as hf
    from open_clip.transformer import QuickGELU
    from pydantic import ValidationError
    from safetensors.torch import save_file

    from relbench.testing.models.clip import make_tiny_checkpoint, put_in_hf_cache, register_tiny_tag
    from relbench.trainers.flux_graph_lora.clip_rank import ClipRanker
    from relbench.trainers.flux_graph_lora.config import ClipLossSpec

    with pytest.raises(ValidationError, match="give checkpoint:"):
        ClipLossSpec(model="ViT-B-32")
    model, ckpt = make_tiny_checkpoint(tmp_path / "clip")
    register_tiny_tag("rank_test", hf_hub="org/tiny-rank-clip/", quick_gelu=True, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    spec = ClipLossSpec(model=model, pretrained="rank_test")
    with pytest.raises(UserError, match=r"^objective\.clip: weights of relbench-tiny-clip pretrained 'rank_test' are not in"):
        spec.resolve()
    save_file(torch.load(ckpt, weights_only=True), tmp_path / "w.safetensors")
    put_in_hf_cache(tmp_path / "hub", "org/tiny-rank-clip", "open_clip_model.safetensors", tmp_path / "w.safetensors")
    ranker = ClipRanker(spec, "cpu")
    assert {type(m) for m in ranker.model.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))} == {QuickGELU}
    assert ranker.mean.flatten().tolist() == [0.5] * 3 and ranker.std.flatten().tolist() == [0.25] * 3
    untagged = ClipRanker(ClipLossSpec(model=model, checkpoint=ckpt), "cpu")  # the architecture's defaults
    assert {type(m) for m in untagged.model.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))} == {torch.nn.GELU}


# ---------------------------------------------------------------------------- processes and errors


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_match_one(data, tmp_path):
    """2 CPU processes x batch 1 (gloo DDP) end where 1 process x batch 2 ends: the same samples
    and noise (seeded by position in the global batch), gradients averaged."""
    from relbench.trainers.flux_graph_lora import train

    train(config(data, tmp_path / "one", epochs=2))
    cfg = tmp_path / "t.yaml"
    cfg.write_text(json.dumps(config(data, tmp_path / "two", epochs=2, batch_size=1).model_dump(mode="json")))
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    cmd = [*ACCELERATE_LAUNCH, "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
           "-m", "relbench", "train", "--config", str(cfg)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("trained 4/4 steps") == 1  # rank 0 reports
    a, b = trainable(tmp_path / "one"), trainable(tmp_path / "two")
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-4) for k in a)
    assert [r["step"] for r in log(tmp_path / "two")] == [1, 2, 3, 4]


def test_bad_input_is_one_line(data, tmp_path, capsys):
    from relbench import cli
    from relbench.trainers.flux_graph_lora import train

    bad = tmp_path / "bad.jsonl"
    bad.write_text((data / "train.jsonl").read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(UserError, match=rf"{bad}:1: image: file not found: {tmp_path / 'train0.png'}"):
        train(config(data, tmp_path / "o", train_jsonl=str(bad)))
    with pytest.raises(UserError, match=rf"{bad}:2: not valid JSON"):
        train(config(data, tmp_path / "o", train_jsonl=str(bad), images_root=str(data)))
    with pytest.raises(UserError, match="cannot open JSONL suite"):
        train(config(data, tmp_path / "o", train_jsonl=str(tmp_path / "missing.jsonl")))
    no_image = tmp_path / "no_image.jsonl"
    lines = (data / "train.jsonl").read_text().splitlines()
    no_image.write_text(lines[0] + "\n" + json.dumps({k: v for k, v in json.loads(lines[1]).items() if k != "image"}) + "\n")
    with pytest.raises(UserError, match=rf"^{no_image}:2: image: required field is missing \(training needs the photo"):
        train(config(data, tmp_path / "o", train_jsonl=str(no_image), images_root=str(data)))
    vocab = tmp_path / "vocab.json"
    objs = ["__image__", "dog", "horse", "cup", "table", "man", "umbrella", "cat", "chair"]
    vocab.write_text(json.dumps({"object_name_to_idx": {n: i for i, n in enumerate(objs)},
                                 "pred_name_to_idx": {n: i for i, n in enumerate(["__in_image__", "riding", "on"])}}))
    enc = {"kind": "cgip", "vocab": str(vocab), "embed_dim": 16, "width": 16, "layers": 2}
    with pytest.raises(UserError, match=r"train.jsonl: item 'train0': cgip: predicate 'below' is not in the CGIP vocabulary"):
        train(config(data, tmp_path / "o", encoder=enc))
    # through the CLI: exit 2, one line
    t = tmp_path / "t.yaml"
    t.write_text(f"train_jsonl: {tmp_path / 'missing.jsonl'}\nresolution: 32\neval: null\n")
    capsys.readouterr()
    assert cli.main(["train", "--config", str(t), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("relbench: error:") and "missing.jsonl" in err and "\n" not in err


def test_nan_stops_without_touching_the_last_checkpoint(data, tmp_path, monkeypatch):
    from relbench.trainers import flow
    from relbench.trainers.flux_graph_lora import train

    out = tmp_path / "o"
    real, calls = flow.flow_errors, {"n": 0}

    def poisoned(pred, z0, eps):
        calls["n"] += 1
        err = real(pred, z0, eps)
        return err * float("nan") if calls["n"] > 4 else err  # steps 1-2 fine (2 forward calls each: probe + loss)

    monkeypatch.setattr(flow, "flow_errors", poisoned)
    with pytest.raises(UserError) as err:
        train(config(data, out, epochs=3, save_every=1, objective={"rank_weight": 0.0}))
    msg = str(err.value)
    assert "step 3: loss is not finite (l_gen=nan" in msg and "(step 2) is untouched" in msg and "\n" not in msg
    state = json.loads((out / "last" / "trainer_state" / "state.json").read_text())
    assert state["progress"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in trainable(out).values())


def test_trainer_module_imports_no_torch():
    code = ("import sys, relbench.trainers.flux_graph_lora, relbench.trainers.flux_graph_lora.config, relbench.cli; "
            "bad = [m for m in ('torch', 'diffusers', 'peft') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(ROOT))


def test_training_steps_leave_cudnn_attention_out_on_cuda():
    """cuDNN's attention backward gave NaN on full-size FLUX on an H200 (torch 2.11); the trainer's
    forward context names the kernels it may use. On CPU every backend stays allowed, so CPU training
    (the lab, the byte-identity tests) runs the kernels it always ran."""
    from torch.nn.attention import SDPBackend

    from relbench.trainers.flux_graph_lora import training_attention_backends

    cuda = training_attention_backends("cuda")
    assert SDPBackend.CUDNN_ATTENTION not in cuda
    assert {SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH} <= set(cuda)
    assert set(training_attention_backends("cpu")) == {SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                                        SDPBackend.MATH, SDPBackend.CUDNN_ATTENTION}


# ---------------------------------------------------------------------------- hard negatives


def test_rank_loss_draws_hard_negatives_from_a_confusion_file(data, tmp_path):
    """``objective: {negatives: hard, confusion: RUN_DIR}``: each example's only g- is the
    predicate the planted run drew most instead of the asked one; examples whose predicate
    the file never saw confused get none (no rank term); the checkpoint names the file."""
    import hashlib

    from confusion_fixture import FINGERPRINT, plant_run
    from relbench.models.graph_lora_ckpt import read_checkpoint
    from relbench.spec.data import Triple
    from relbench.trainers.flux_graph_lora import Trainer

    src = plant_run(tmp_path / "src", spatial={"on": {"on": 0.3, "in": 0.2, "above": 0.5},
                                               "riding": {"riding": 0.1, "below": 0.1, "near": 0.8}})
    cfg = config(data, tmp_path / "o", epochs=1, objective={"negatives": "hard", "confusion": str(src)})
    assert cfg.objective.negatives.kinds == ["hard"] and cfg.objective.negatives.confusion == str(src)
    tr = Trainer(cfg)
    negs = {ex.pos[0].predicate: ex.negs for ex in tr.examples}
    assert negs == {"riding": (("hard", (Triple("dog", "near", "horse"),)),),
                    "on": (("hard", (Triple("cup", "above", "table"),)),), "holding": (), "below": ()}
    tr.run()
    rows = log(tmp_path / "o")
    assert len(rows) == 2 and all(np.isfinite(r["l_rank"]) for r in rows)
    extra = read_checkpoint(tmp_path / "o" / "last").config["extra"]
    assert extra["negative_source"] == {
        "run_dir": str(src), "run": "gen", "judge": "spatial", "fingerprint": FINGERPRINT,
        "summary_sha256": hashlib.sha256((src / "summary.json").read_bytes()).hexdigest()}
    # the same path with other confusions would train on other g-: a resume refuses it
    plant_run(src, spatial={"on": {"in": 1.0}})
    with pytest.raises(UserError, match=r"--resume: .* trained with hard negatives from a summary.json of sha256"):
        Trainer(config(data, tmp_path / "o", epochs=2, objective={"negatives": "hard", "confusion": str(src)}),
                resume=True)


def test_hard_negative_sources_are_checked_before_the_model_loads(data, tmp_path, monkeypatch):
    import relbench.models.flux as flux_models
    from relbench.trainers.flux_graph_lora import train

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded before the confusion file was checked")

    monkeypatch.setattr(flux_models, "load_pipeline", no_loading)
    with pytest.raises(UserError, match=r"^train.yaml: objective.negatives.confusion: .*nowhere: no such run directory"):
        train(config(data, tmp_path / "o", objective={"negatives": "hard", "confusion": str(tmp_path / "nowhere")}))
    with pytest.raises(UserError, match=r"objective.negatives.kinds.0: .*'adversarial'"):
        load_train_config(None, {"train_jsonl": str(data / "train.jsonl"), "objective": {"negatives": "adversarial"}})
