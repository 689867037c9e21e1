"""The `diffusers` generator on tiny random pipelines of each family, saved in the hub layout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# the [models] extra is part of the test install: a missing library must fail, not skip
import diffusers  # noqa: F401,E402
import torch  # noqa: E402

from relbench.spec.data import Request, Triple  # noqa: E402
from relbench.errors import UserError  # noqa: E402
from relbench.plugin.registry import GENERATORS  # noqa: E402
from relbench.testing.contract import check_generator, tiny_context  # noqa: E402
from relbench.testing.models.pipelines import TINY_PIPELINES, save_tiny_pipeline  # noqa: E402

torch.set_num_threads(1)

FAMILIES = ["sd15", "sdxl", "sd3", "pixart_sigma"]
CLASSES = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
           "sd3": "StableDiffusion3Pipeline", "pixart_sigma": "PixArtSigmaPipeline"}
GRAPH = (Triple("dog", "riding", "horse"),)
PROMPT = "a dog riding a horse"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    return {fam: save_tiny_pipeline(fam, root / fam) for fam in [*FAMILIES, "flux"]}


def make(folder, family, **kw):
    cls = GENERATORS.get("diffusers")
    kw.setdefault("steps", 2)
    kw["pipeline_kwargs"] = {**TINY_PIPELINES[family][1], **kw.get("pipeline_kwargs", {})}
    return cls(cls.Args(model=str(folder), **kw), tiny_context())


def req(prompt=PROMPT, seed=0, size=(32, 32)):
    return Request(prompt, GRAPH, seed, size)


def u8(img) -> np.ndarray:
    return (np.asarray(img) * 255).round().clip(0, 255).astype(np.uint8)


def maxdiff(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def one_line_error(fn) -> str:
    with pytest.raises(UserError) as err:
        fn()
    msg = str(err.value)
    assert msg.startswith("diffusers: ") and "\n" not in msg
    return msg


def test_registers_without_importing_torch():
    code = ("import sys, relbench.generators.diffusers_t2i; from relbench.plugin.registry import GENERATORS; "
            "assert GENERATORS.get('diffusers').uses == {'prompt'}; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).parents[1]))


@pytest.mark.parametrize("mode", ["relation", "neutral"])
@pytest.mark.parametrize("family", FAMILIES)
def test_contract_and_same_image_as_the_pipelines_own_prompt_path(folders, family, mode):
    """Through the contract tester in each prompt mode; the cached embeddings give exactly the
    image the pipeline draws when handed the prompt text and a generator of the request's seed."""
    gen = make(folders[family], family)
    images = check_generator(gen, prompt_mode=mode)
    assert type(gen.pipe).__name__ == CLASSES[family]
    assert all(img.std() > 0 for img in images)  # decoded pictures, not constants
    if mode == "neutral":  # g+ and g- share their prompt and seed: a text-only model draws one image
        assert np.array_equal(images[0], images[1])
    pipe = gen.pipe
    ref = pipe(prompt=PROMPT, height=32, width=32, num_inference_steps=2, output_type="np",
               generator=torch.Generator("cpu").manual_seed(5), **TINY_PIPELINES[family][1]).images[0]
    assert np.array_equal(gen.generate([req(seed=5)])[0], u8(ref))


@pytest.mark.parametrize("family", ["sd15", "pixart_sigma"])
def test_image_depends_only_on_its_own_request(folders, family):
    gen = make(folders[family], family)
    reqs = [req(seed=0), req("a cat on a table", seed=7), req("a horse riding a dog", seed=3), req(seed=1)]
    batch = gen.generate(reqs)
    for r, img in zip(reqs, batch):
        assert maxdiff(gen.generate([r])[0], img) <= gen.batch_tolerance, r
    assert maxdiff(batch[0], batch[3]) > 20  # the seed is the request's own: same prompt, other noise


def test_each_prompt_is_encoded_once(folders):
    gen = make(folders["sdxl"], "sdxl")
    calls = []
    encode = gen.pipe.encode_prompt
    # the pipeline's own call passes its embeddings through encode_prompt (prompt None): not an encoding
    gen.pipe.encode_prompt = lambda prompt, **kw: (prompt is not None and calls.append(prompt)) or encode(prompt, **kw)
    prompts = ["a dog riding a horse", "a horse riding a dog", "a dog riding a horse", "a cat", "a cat"]
    first = gen.generate([req(p, seed=i) for i, p in enumerate(prompts)])
    assert sorted(calls) == sorted(set(prompts))
    again = gen.generate([req(p, seed=i) for i, p in enumerate(prompts)])
    assert len(calls) == 3 and all(np.array_equal(a, b) for a, b in zip(first, again))


def test_negative_prompt_and_scheduler_reach_the_pipeline(folders):
    plain = make(folders["sd15"], "sd15", guidance_scale=5.0)
    neg = make(folders["sd15"], "sd15", guidance_scale=5.0, negative_prompt="blurry")
    euler = make(folders["sd15"], "sd15", guidance_scale=5.0, scheduler="EulerDiscreteScheduler")
    base, with_neg, with_euler = (g.generate([req()])[0] for g in (plain, neg, euler))
    pipe = neg.pipe
    ref = pipe(prompt=PROMPT, negative_prompt="blurry", height=32, width=32, num_inference_steps=2, guidance_scale=5.0,
               output_type="np", generator=torch.Generator("cpu").manual_seed(0)).images[0]
    assert np.array_equal(with_neg, u8(ref)) and maxdiff(base, with_neg) > 0
    assert type(euler.pipe.scheduler).__name__ == "EulerDiscreteScheduler" and maxdiff(base, with_euler) > 0
    assert len({plain.fingerprint(), neg.fingerprint(), euler.fingerprint()}) == 3
    # where and how fast it runs does not change the images, so not their key
    assert make(folders["sd15"], "sd15", guidance_scale=5.0, device="cpu", prompt_cache_size=2).fingerprint() == \
        plain.fingerprint()


def test_a_flux_folder_draws_what_flux_draws(folders):
    """`diffusers` on a FluxPipeline folder shares flux's drawing: the same bytes."""
    cls = GENERATORS.get("flux")
    flux = cls(cls.Args(model=str(folders["flux"]), steps=2, max_sequence_length=48), tiny_context())
    gen = make(folders["flux"], "flux", guidance_scale=0.0)
    reqs = [req(seed=0), req("a cat on a table", seed=4), req(seed=2, size=(48, 32))]
    assert all(np.array_equal(a, b) for a, b in zip(flux.generate(reqs), gen.generate(reqs)))
    assert one_line_error(lambda: gen.generate([req(size=(36, 32))])).endswith("multiple of 8 in both sides")


def test_weights_identity_is_the_files_content(folders, tmp_path):
    """A weight file replaced by one of the same size (a fine-tune copied over) changes the key."""
    copy = shutil.copytree(folders["sd15"], tmp_path / "sd15")
    before = make(copy, "sd15")
    ident = before.weights_identity()
    assert ident["source"] == "local" and "unet/diffusion_pytorch_model.safetensors" in ident["files"]
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = bytes(b ^ 0xFF for b in data[-4:])
    weights.write_bytes(bytes(data))
    after = make(copy, "sd15")
    assert after.fingerprint() != before.fingerprint()
    assert after.weights_identity()["files"]["unet/config.json"] == ident["files"]["unet/config.json"]


def _edit_index(folder: Path, **changes) -> Path:
    index = json.loads((folder / "model_index.json").read_text())
    index.update(changes)
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def test_a_folder_that_is_not_text_to_image_is_one_line(folders, tmp_path):
    img2img = _edit_index(shutil.copytree(folders["sd15"], tmp_path / "i2i"), _class_name="StableDiffusionImg2ImgPipeline")
    gen = make(img2img, "sd15")
    msg = one_line_error(gen.fingerprint)
    assert f"{img2img} holds a StableDiffusionImg2ImgPipeline" in msg and "not a text-to-image pipeline" in msg
    assert gen._pipe is None  # refused before any weights load
    control = _edit_index(shutil.copytree(folders["sd15"], tmp_path / "cn"), _class_name="StableDiffusionControlNetPipeline")
    assert "holds a StableDiffusionControlNetPipeline (it draws from 'image')" in one_line_error(make(control, "sd15").fingerprint)
    odd = _edit_index(shutil.copytree(folders["sd15"], tmp_path / "odd"), _class_name="MyPipeline")
    assert "names 'MyPipeline', not a pipeline class of diffusers" in one_line_error(make(odd, "sd15").fingerprint)
    msg = one_line_error(make(folders["sd15"] / "unet", "sd15").fingerprint)
    assert "has no model_index.json (its config.json is one UNet2DConditionModel: a pipeline component" in msg


def test_missing_weights_are_one_line(folders, tmp_path, monkeypatch):
    msg = one_line_error(make(tmp_path / "nope", "sd15").fingerprint)
    assert "does not exist" in msg and "hf download" in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    msg = one_line_error(make("relbench-test/no-such-pipeline", "sd15", allow_download=True).fingerprint)
    assert "not in the Hugging Face cache" in msg and "hf download relbench-test/no-such-pipeline" in msg
    no_unet = shutil.copytree(folders["sd15"], tmp_path / "no_unet")
    shutil.rmtree(no_unet / "unet")
    assert f"{no_unet / 'unet'} is missing (model_index.json lists unet)" in one_line_error(make(no_unet, "sd15").fingerprint)
    pickled = shutil.copytree(folders["sd15"], tmp_path / "pickled")
    weights = pickled / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))  # where diffusers would fall back to unpickling
    gen = make(pickled, "sd15")
    msg = one_line_error(gen.fingerprint)
    assert f"{pickled / 'unet'} has no .safetensors weights (only pickled .bin files" in msg and gen._pipe is None
    no_tok = shutil.copytree(folders["sd3"], tmp_path / "no_tok")
    (no_tok / "tokenizer_3" / "tokenizer.json").unlink()
    assert f"tokenizer in {no_tok / 'tokenizer_3'}" in one_line_error(make(no_tok, "sd3").fingerprint)


def test_bad_arguments_are_one_line_before_loading(folders):
    msg = one_line_error(make(folders["sd15"], "sd15", pipeline_kwargs={"clip_skp": 1}).fingerprint)
    assert "pipeline_kwargs.clip_skp is not an argument of StableDiffusionPipeline (allowed: " in msg and "clip_skip" in msg
    msg = one_line_error(make(folders["sd15"], "sd15", pipeline_kwargs={"num_inference_steps": 3}).fingerprint)
    assert "pipeline_kwargs.num_inference_steps is set by relbench" in msg
    msg = one_line_error(make(folders["sd15"], "sd15", scheduler="Euler").fingerprint)
    assert "scheduler 'Euler' is not a diffusers scheduler class" in msg
    with pytest.raises(Exception):  # extra=forbid: unknown args are errors, not ignored
        make(folders["sd15"], "sd15", stepz=3)


def test_cli_run_and_refusal(folders, tmp_path, capsys):
    from relbench import cli

    def config(model, name):
        path = tmp_path / f"{name}.yaml"
        path.write_text("name: tiny\nsuite: {kind: shapes, triples_per_predicate: 1}\nseeds: [0]\nresolution: 32\n"
                        "metrics: [pair_mse]\nreference_run: false\nruns:\n"
                        f"  - {{name: sd, generator: diffusers, args: {{model: {model}, steps: 2}}}}\n"
                        f"  - {{name: sd-neutral, generator: diffusers, args: {{model: {model}, steps: 2}}, "
                        "prompt_mode: neutral}\n")
        return str(path)

    argv = ["run", "--config", config(folders["sd15"], "ok"), "--limit", "2", "--no-progress", "--no-report"]
    assert cli.main(argv + ["--out", str(tmp_path / "out")]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    # 2 cases: 4 relation-mode images, and in neutral mode g+ and g- share one image per case
    assert manifest["timings"]["images_generated"] == 6
    capsys.readouterr()
    assert cli.main(argv + ["--out", str(tmp_path / "out")]) == 0  # a rerun: same fingerprint, nothing redrawn
    assert "0 images generated, 6 reused" in capsys.readouterr().out
    bad = _edit_index(shutil.copytree(folders["sd15"], tmp_path / "i2i"), _class_name="StableDiffusionImg2ImgPipeline")
    argv = ["run", "--config", config(bad, "bad"), "--limit", "2", "--no-progress", "--out", str(tmp_path / "x")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("relbench: error: diffusers: ") and "not a text-to-image pipeline" in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_the_documented_config_is_valid():
    """docs/generators.md's runs validate as written (extra=forbid: a renamed arg fails here)."""
    import re

    import yaml

    doc = (Path(__file__).parents[1] / "docs" / "generators.md").read_text()
    runs = yaml.safe_load(re.search(r"```yaml\n(.*?)```", doc, re.S).group(1))["runs"]
    cls = GENERATORS.get("diffusers")
    assert [r["generator"] for r in runs] == ["diffusers", "diffusers"]
    args = [cls.Args(**r["args"]) for r in runs]
    assert args[0].model == "stabilityai/stable-diffusion-xl-base-1.0" and args[0].steps == 30


def test_a_hub_id_is_read_from_the_cache_offline(folders, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a lookup that tried the network would fail here
    rev = "2" * 40
    root = tmp_path / "hub" / "models--org--sd-tiny"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(rev)
    shutil.copytree(folders["sd15"], root / "snapshots" / rev)
    cached = make("org/sd-tiny", "sd15")
    ident = cached.weights_identity()
    assert ident["source"] == "hub" and ident["repo"] == "org/sd-tiny" and ident["commit"] == rev
    assert ident["files"] == make(folders["sd15"], "sd15").weights_identity()["files"]
    assert np.array_equal(cached.generate([req()])[0], make(folders["sd15"], "sd15").generate([req()])[0])
