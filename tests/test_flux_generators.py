"""FLUX generators on tiny random components (CPU, no network): real pipelines, real LoRA."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# the [models] extra is part of the test install: a missing library must fail, not skip
import diffusers  # noqa: F401,E402
import peft  # noqa: F401,E402
import torch  # noqa: E402

from relbench.testing.models.flux import tiny_flux_pipeline  # noqa: E402
from relbench.spec.data import Request, Triple  # noqa: E402
from relbench.errors import UserError  # noqa: E402
from relbench.plugin.context import Context  # noqa: E402
from relbench.spec.predicates import load_vocabulary  # noqa: E402
from relbench.plugin.registry import GENERATORS  # noqa: E402

torch.set_num_threads(1)

SEQ = 48  # T5 tokens; the tiny tokenizers are character-level
TEXT_ENC = {"kind": "text", "embed_dim": 16, "width": 16, "layers": 2}
DOG_HORSE = (Triple("dog", "riding", "horse"),)
HORSE_DOG = (Triple("horse", "riding", "dog"),)
TWO = (Triple("cat", "on", "table"), Triple("cup", "hanging from", "table"))
PROMPT = "a dog riding a horse"
EXPECTED_LORA = {f"transformer_blocks.{b}.attn.{m}" for b in range(7, 13) for m in ("to_q", "to_k", "to_v", "to_out.0")}


def req(graph, prompt=PROMPT, seed=0, size=(32, 32)):
    return Request(prompt, graph, seed, size)


def flux(**kw):
    return GENERATORS.get("flux").from_pipeline(tiny_flux_pipeline(clip_max_length=SEQ), max_sequence_length=SEQ, **kw)


def graph_lora(**kw):
    if "ckpt" not in kw:
        kw.setdefault("encoder", TEXT_ENC)
    cls = GENERATORS.get("flux_graph_lora")
    return cls.from_pipeline(tiny_flux_pipeline(clip_max_length=SEQ), max_sequence_length=SEQ, **kw)


def perturb(gen, seed=1, lora=True):
    """Stand-in for training: random injector outputs/projections, LoRA B and encoder weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in gen.graph_lora.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
        if lora:
            for name, p in gen.pipe.transformer.named_parameters():
                if "lora_B" in name:
                    p.add_(torch.randn(p.shape, generator=g) * 0.05)


def maxdiff(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_plugins_register_without_importing_torch():
    code = ("import sys, relbench.generators.flux, relbench.generators.flux_graph_lora; "
            "from relbench.plugin.registry import GENERATORS; "
            "assert {'flux', 'flux_graph_lora'} <= set(GENERATORS.names()); "
            "bad = [m for m in ('torch', 'diffusers', 'peft', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))


def test_flux_image_contract_and_text_only_key():
    gen = flux()
    imgs = gen.generate([req(DOG_HORSE), req(HORSE_DOG)])
    assert all(i.dtype == np.uint8 and i.shape == (32, 32, 3) for i in imgs)
    assert imgs[0].std() > 0  # a real decoded image, not a constant
    assert np.array_equal(imgs[0], imgs[1])  # text-only: the graph is ignored
    fp = gen.fingerprint()
    assert req(DOG_HORSE).key(fp, gen.uses) == req(HORSE_DOG).key(fp, gen.uses)
    # the seed matters, and equals diffusers' own single-image call with a CPU generator of that seed
    pipe = gen.pipe
    e, p, _ = pipe.encode_prompt(PROMPT, prompt_2=None, max_sequence_length=SEQ)
    ref = pipe(prompt_embeds=e, pooled_prompt_embeds=p, height=32, width=32, num_inference_steps=4, guidance_scale=0.0,
               generator=torch.Generator("cpu").manual_seed(0), output_type="np", max_sequence_length=SEQ).images[0]
    assert np.array_equal(imgs[0], (ref * 255).round().clip(0, 255).astype(np.uint8))
    assert not np.array_equal(imgs[0], gen.generate([req(DOG_HORSE, seed=1)])[0])


def test_lora_exactly_on_blocks_7_to_12_attention():
    from relbench.models.graph_injection import GraphInjectionProcessor, lora_module_names

    gen = graph_lora()
    tr = gen.pipe.transformer
    assert set(lora_module_names(tr)) == EXPECTED_LORA
    assert not any("single_transformer_blocks" in n for n in lora_module_names(tr))
    assert tr.peft_config["default"].target_modules == r"transformer_blocks\.(7|8|9|10|11|12)\.attn\.(to_q|to_k|to_v|to_out\.0)"
    assert tr.peft_config["default"].r == 16 and tr.peft_config["default"].lora_alpha == 16
    injected = {i for i, b in enumerate(tr.transformer_blocks) if isinstance(b.attn.processor, GraphInjectionProcessor)}
    assert injected == set(range(7, 13))
    # configurable: other blocks, rank and MLP targets
    gen2 = graph_lora(lora={"rank": 4, "alpha": 8, "blocks": [9], "targets": ["attn.to_q", "ff.net.0.proj", "ff.net.2"]},
                      injection={"blocks": [9]})
    assert set(lora_module_names(gen2.pipe.transformer)) == {
        "transformer_blocks.9.attn.to_q", "transformer_blocks.9.ff.net.0.proj", "transformer_blocks.9.ff.net.2"}
    with pytest.raises(UserError, match="do not exist"):
        graph_lora(lora={"blocks": [13]})


def test_injection_is_identity_at_init():
    base = flux().generate([req(DOG_HORSE), req(TWO, seed=3)])
    gen = graph_lora()
    imgs = gen.generate([req(DOG_HORSE), req(TWO, seed=3)])
    for a, b in zip(base, imgs):
        assert maxdiff(a, b) <= 1
    assert gen.graph_lora.injector._tokens is None  # conditioning is cleared after each call


def test_perturbed_injector_responds_to_graph():
    gen = graph_lora()
    perturb(gen, lora=False)  # the injector and encoder only
    pos, neg, pos2 = gen.generate([req(DOG_HORSE), req(HORSE_DOG), req(DOG_HORSE)])
    assert np.array_equal(pos, pos2)
    assert (pos != neg).mean() > 0.01  # the swapped relation changes a visible share of the pixels
    fp = gen.fingerprint()
    assert req(DOG_HORSE).key(fp, gen.uses) != req(HORSE_DOG).key(fp, gen.uses)
    # open vocabulary: an unseen multi-word predicate is just text
    a, b = gen.generate([req((Triple("lamp", "hanging from", "ceiling"),)), req((Triple("lamp", "on", "ceiling"),))])
    assert (a != b).mean() > 0.01


def cgip_encoder(tmp_path) -> dict:
    objs = ["__image__", "dog", "horse", "cat", "table", "cup"]
    preds = ["__in_image__", "riding", "on", "hanging from"]
    (tmp_path / "vocab.json").write_text(json.dumps({"object_name_to_idx": {n: i for i, n in enumerate(objs)},
                                                     "pred_name_to_idx": {n: i for i, n in enumerate(preds)}}))
    return {"kind": "cgip", "vocab": str(tmp_path / "vocab.json"), "embed_dim": 16, "width": 16, "layers": 2}


def test_encoder_files_key_the_cache(tmp_path):
    """Without a checkpoint, the encoder's vocabulary file decides the graph tokens, so its
    contents (not its path) are part of the weights identity: an edited vocab.json regenerates."""
    import hashlib

    enc = cgip_encoder(tmp_path)
    vocab = Path(enc["vocab"])
    ident = graph_lora(encoder=enc).weights_identity()
    assert ident["encoder_files"] == {"vocab": hashlib.sha256(vocab.read_bytes()).hexdigest()}
    data = json.loads(vocab.read_text())
    data["pred_name_to_idx"]["beside"] = 4
    vocab.write_text(json.dumps(data))
    assert graph_lora(encoder=enc).weights_identity()["encoder_files"] != ident["encoder_files"]
    assert graph_lora(encoder=TEXT_ENC).weights_identity()["encoder_files"] is None


@pytest.mark.parametrize("kind", ["text", "cgip"])
def test_save_load_bit_identical_and_diffusers_format(tmp_path, kind):
    from safetensors.torch import load_file

    from relbench.models.graph_lora_ckpt import LORA_FILE, save_checkpoint

    gen = graph_lora(encoder=TEXT_ENC if kind == "text" else cgip_encoder(tmp_path))
    perturb(gen)
    reqs = [req(DOG_HORSE), req(HORSE_DOG, seed=2), req(TWO, prompt="a cat on a table", seed=5)]
    before = gen.generate(reqs)
    ck = save_checkpoint(tmp_path / "ck", gen.pipe.transformer, gen.graph_lora, base_model="tiny")
    cfg = json.loads((ck / "relbench_graph_lora.json").read_text())
    assert cfg["lora"]["rank"] == 16 and cfg["lora"]["blocks"] == [7, 8, 9, 10, 11, 12]
    assert cfg["encoder"]["kind"] == kind and cfg["format_version"] == 1
    if kind == "cgip":  # the checkpoint carries the vocabulary, not a path to it
        assert cfg["encoder"]["object_name_to_idx"]["horse"] == 2 and cfg["encoder"]["vocab"] is None
    keys = set(load_file(str(ck / LORA_FILE)))
    assert keys == {f"transformer.{m}.lora_{ab}.weight" for m in EXPECTED_LORA for ab in "AB"}
    assert sorted(p.suffix for p in ck.iterdir()) == [".json", ".safetensors", ".safetensors", ".safetensors"]

    loaded = graph_lora(ckpt=str(ck))
    after = loaded.generate(reqs)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    # the checkpoint's contents, not its path, enter the fingerprint
    shutil.copytree(ck, tmp_path / "moved")
    assert graph_lora(ckpt=str(tmp_path / "moved")).fingerprint() == loaded.fingerprint()
    assert loaded.fingerprint() != graph_lora().fingerprint()

    # diffusers reads the LoRA file itself
    pipe = tiny_flux_pipeline(clip_max_length=SEQ)
    pipe.load_lora_weights(str(ck), weight_name=LORA_FILE, adapter_name="x")
    theirs = {n: p for n, p in pipe.transformer.named_parameters() if "lora_B" in n}
    ours = {n.replace(".default.", ".x."): p for n, p in gen.pipe.transformer.named_parameters() if "lora_B" in n}
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in ours)


def test_checkpoint_mismatch_says_what(tmp_path):
    from safetensors.torch import load_file, save_file

    from relbench.models.graph_lora_ckpt import INJECTOR_FILE, save_checkpoint

    gen = graph_lora()
    ck = save_checkpoint(tmp_path / "ck", gen.pipe.transformer, gen.graph_lora, base_model="tiny")
    sd = load_file(str(ck / INJECTOR_FILE))
    sd["out.7.weight"] = torch.zeros(3, 3)
    del sd["out.8.bias"]
    save_file(sd, str(ck / INJECTOR_FILE))
    with pytest.raises(UserError) as err:
        graph_lora(ckpt=str(ck))
    msg = str(err.value)
    assert "missing: out.8.bias" in msg and "out.7.weight (3, 3) vs model (32, 32)" in msg and "\n" not in msg


def test_request_image_independent_of_batch():
    reqs = [req(DOG_HORSE, seed=0), req(TWO, prompt="a cat on a table", seed=7),
            req(HORSE_DOG, prompt="a horse riding a dog", seed=3), req(DOG_HORSE, seed=0, size=(48, 32))]
    for gen in (flux(), graph_lora()):
        if gen.name == "flux_graph_lora":
            perturb(gen)
        batch = gen.generate(reqs)
        assert batch[3].shape == (32, 48, 3)
        for r, img in zip(reqs, batch):
            assert maxdiff(gen.generate([r])[0], img) <= 1, (gen.name, r)


def test_local_dir_loading_through_registry(tmp_path):
    """What the runner does: cls(cls.Args(**run_args), ctx) with a model directory and --ckpt."""
    from relbench.models.graph_lora_ckpt import save_checkpoint

    model_dir = tmp_path / "flux-tiny"
    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(model_dir)
    trained = graph_lora()
    perturb(trained)
    ck = save_checkpoint(tmp_path / "ck", trained.pipe.transformer, trained.graph_lora, base_model=str(model_dir))
    reqs = [req(DOG_HORSE), req(HORSE_DOG)]
    ctx = Context(vocab=load_vocabulary())
    cls = GENERATORS.get("flux_graph_lora")
    gen = cls(cls.Args(model=str(model_dir), ckpt=str(ck), device="auto", max_sequence_length=SEQ), ctx)
    fp = gen.fingerprint()  # no pipeline is loaded just to fingerprint
    assert gen._pipe is None and len(fp) == 16
    imgs = gen.generate(reqs)
    assert all(np.array_equal(a, b) for a, b in zip(imgs, trained.generate(reqs)))
    base = GENERATORS.get("flux")
    plain = base(base.Args(model=str(model_dir), max_sequence_length=SEQ), ctx)
    assert np.array_equal(plain.generate(reqs[:1])[0], flux().generate(reqs[:1])[0])
    with pytest.raises(Exception):  # extra=forbid: unknown args are errors, not ignored
        cls.Args(model=str(model_dir), ckpt=str(ck), stepz=3)


def test_missing_model_is_one_clear_line(tmp_path, monkeypatch):
    cls = GENERATORS.get("flux")
    ctx = Context(vocab=load_vocabulary())
    with pytest.raises(UserError) as err:
        cls(cls.Args(model=str(tmp_path / "nope")), ctx).fingerprint()
    assert "does not exist" in str(err.value) and "hf download" in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        cls(cls.Args(model="relbench-test/no-such-model", allow_download=True), ctx).fingerprint()
    msg = str(err.value)
    assert "not in the Hugging Face cache" in msg and "hf download relbench-test/no-such-model" in msg
    assert "\n" not in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no model_index.json"):
        cls(cls.Args(model=str(tmp_path / "empty")), ctx).fingerprint()


def test_cli_run_end_to_end(tmp_path, monkeypatch, capsys):
    """`relbench run --generator flux_graph_lora --ckpt DIR` on the tiny model, then a resume."""
    from relbench import cli
    from relbench.models.graph_lora_ckpt import save_checkpoint

    model_dir = tmp_path / "flux-tiny"
    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(model_dir)
    trained = graph_lora()
    perturb(trained)
    ck = save_checkpoint(tmp_path / "ck", trained.pipe.transformer, trained.graph_lora, base_model=str(model_dir))
    config = tmp_path / "bench.yaml"
    config.write_text("name: tiny\nsuite: {kind: shapes, triples_per_predicate: 1}\nseeds: [0]\nresolution: 64\n"
                      "metrics: [pair_mse]\nruns: [{name: x, generator: flux}]\nreference_run: false\n")
    monkeypatch.setenv("RELBENCH_FLUX_MODEL", str(model_dir))  # the model for runs that do not name one
    argv = ["run", "--config", str(config), "--generator", "flux_graph_lora", "--ckpt", str(ck), "--limit", "2",
            "--out", str(tmp_path / "out"), "--no-progress"]
    assert cli.main(argv) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["timings"]["images_generated"] == 4  # 2 cases x (g+, g-)
    capsys.readouterr()
    assert cli.main(argv) == 0
    # a rerun that changes no result keeps the first run's manifest; the terminal says what it did
    assert "0 images generated, 4 reused" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest


def test_inference_freezes_every_parameter_and_restores_training_flags(tmp_path):
    """A requires_grad weight sends ATen's batched matmul down another path (last-bit
    differences, a pixel after rounding): generators draw with everything frozen, and the
    trainer's evaluation freezes its live modules for the duration only."""
    from relbench.models.flux import inference_state
    from relbench.models.graph_lora_ckpt import save_checkpoint

    model_dir = tmp_path / "flux-tiny"
    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(model_dir)
    trained = graph_lora()
    ck = save_checkpoint(tmp_path / "ck", trained.pipe.transformer, trained.graph_lora, base_model=str(model_dir))
    cls = GENERATORS.get("flux_graph_lora")
    gen = cls(cls.Args(model=str(model_dir), ckpt=str(ck), max_sequence_length=SEQ), Context(vocab=load_vocabulary()))
    pipe = gen.pipe
    modules = [pipe.transformer, pipe.vae, pipe.text_encoder, pipe.text_encoder_2, gen.graph_lora]
    assert not any(p.requires_grad for m in modules for p in m.parameters())
    live = graph_lora()
    lora = [n for n, p in live.pipe.transformer.named_parameters() if "lora_" in n]
    for n, p in live.pipe.transformer.named_parameters():
        p.requires_grad_(n in lora)
    live.graph_lora.train()
    with inference_state(live.pipe, live.graph_lora):
        assert not any(p.requires_grad for p in live.pipe.transformer.parameters()) and not live.graph_lora.training
    assert {n for n, p in live.pipe.transformer.named_parameters() if p.requires_grad} == set(lora)
    assert live.graph_lora.training and not live.pipe.vae.training


def test_checkpoint_runs_on_its_recorded_base(tmp_path, monkeypatch):
    """No `model`: the base recorded in the checkpoint, not $RELBENCH_FLUX_MODEL or the hub
    default; another base (same width) only with allow_other_base; errors say flux_graph_lora."""
    from relbench.models.pipeline import resolve_model_dir
    from relbench.models.graph_lora_ckpt import save_checkpoint

    base, other = tmp_path / "base", tmp_path / "other"
    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(base)
    tiny_flux_pipeline(seed=5, clip_max_length=SEQ).save_pretrained(other)
    trained = graph_lora()
    perturb(trained)
    ident = resolve_model_dir(GENERATORS.get("flux").Args(model=str(base)))[1]
    ck = save_checkpoint(tmp_path / "ck", trained.pipe.transformer, trained.graph_lora, base_model=str(base),
                         base_identity=ident)
    cls = GENERATORS.get("flux_graph_lora")
    ctx = Context(vocab=load_vocabulary())
    monkeypatch.setenv("RELBENCH_FLUX_MODEL", str(other))
    gen = cls(cls.Args(ckpt=str(ck), max_sequence_length=SEQ), ctx)
    assert gen.args.model == str(base) and gen.base_identity()["listing"] == ident["listing"]
    assert np.array_equal(gen.generate([req(DOG_HORSE)])[0], trained.generate([req(DOG_HORSE)])[0])
    monkeypatch.delenv("RELBENCH_FLUX_MODEL")
    assert cls(cls.Args(ckpt=str(ck), max_sequence_length=SEQ), ctx).args.model == str(base)
    with pytest.raises(UserError) as err:
        cls(cls.Args(model=str(other), ckpt=str(ck), max_sequence_length=SEQ), ctx).fingerprint()
    msg = str(err.value)
    assert msg.startswith("flux_graph_lora: checkpoint") and f"was trained on {base}" in msg
    assert "allow_other_base: true" in msg and "\n" not in msg
    ok = cls(cls.Args(model=str(other), ckpt=str(ck), allow_other_base=True, max_sequence_length=SEQ), ctx)
    assert not np.array_equal(ok.generate([req(DOG_HORSE)])[0], trained.generate([req(DOG_HORSE)])[0])
    # a model directory changed since training is refused too
    (base / "vae" / "config.json").write_text((base / "vae" / "config.json").read_text() + "\n")
    with pytest.raises(UserError, match=rf"trained on {base}, and the model has changed since training"):
        cls(cls.Args(ckpt=str(ck), max_sequence_length=SEQ), ctx).fingerprint()
    with pytest.raises(UserError, match=r"^flux_graph_lora: model directory .*nope does not exist"):
        cls(cls.Args(model=str(tmp_path / "nope"), ckpt=str(ck)), ctx).fingerprint()


def _t5_tokenizer_folder(folder):
    """A real T5TokenizerFast (the hub's class) over the tiny pipeline's character vocabulary."""
    import string

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5TokenizerFast

    from relbench.testing.models.flux import char_tokenizer

    vocab = list(char_tokenizer(8).get_vocab().items())
    pieces = [(tok, 0.0 if i < 3 else -1.0) for tok, i in sorted(vocab, key=lambda kv: kv[1])]
    tok = Tokenizer(models.Unigram(pieces, unk_id=1))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    assert all(c in dict(vocab) for c in string.ascii_lowercase)
    shutil.rmtree(folder)
    T5TokenizerFast(tokenizer_object=tok, extra_ids=0, pad_token="<pad>", unk_token="<unk>",
                    eos_token="</s>").save_pretrained(folder)


def test_broken_model_directory_is_refused_naming_the_folder(tmp_path):
    """A FLUX folder without tokenizer_2/tokenizer.json loads a T5 tokenizer of 3 tokens that
    maps every word to <unk> (a baseline that never reads its prompt); refuse it before loading."""
    cls = GENERATORS.get("flux")
    ctx = Context(vocab=load_vocabulary())
    good = tmp_path / "good"
    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(good)
    _t5_tokenizer_folder(good / "tokenizer_2")
    index = json.loads((good / "model_index.json").read_text())
    index["tokenizer_2"] = ["transformers", "T5TokenizerFast"]
    (good / "model_index.json").write_text(json.dumps(index))
    img = cls(cls.Args(model=str(good), max_sequence_length=SEQ), ctx).generate([req(DOG_HORSE)])[0]
    assert img.shape == (32, 32, 3)

    no_json = tmp_path / "no_json"
    shutil.copytree(good, no_json)
    (no_json / "tokenizer_2" / "tokenizer.json").unlink()
    with pytest.raises(UserError) as err:
        cls(cls.Args(model=str(no_json), max_sequence_length=SEQ), ctx).generate([req(DOG_HORSE)])
    msg = str(err.value)
    assert msg.startswith(f"flux: the tokenizer in {no_json / 'tokenizer_2'}") and "unknown tokens only" in msg
    assert "\n" not in msg

    small = tmp_path / "small"
    shutil.copytree(good, small)
    cfg = json.loads((small / "text_encoder_2" / "config.json").read_text())
    cfg["vocab_size"] = 1000
    (small / "text_encoder_2" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=rf"tokenizer in {small / 'tokenizer_2'} has \d+ tokens but .* embeds 1000"):
        cls(cls.Args(model=str(small), max_sequence_length=SEQ), ctx).generate([req(DOG_HORSE)])

    no_vae = tmp_path / "no_vae"
    shutil.copytree(good, no_vae)
    shutil.rmtree(no_vae / "vae")
    with pytest.raises(UserError, match=rf"^flux_graph_lora: {no_vae / 'vae'} is missing \(model_index.json lists vae\)"):
        g = GENERATORS.get("flux_graph_lora")
        g(g.Args(model=str(no_vae), max_sequence_length=SEQ), ctx).generate([req(DOG_HORSE)])


def test_generator_flag_keeps_the_config_args_and_arg_sets_them(tmp_path, monkeypatch, capsys):
    """--generator NAME keeps the config's runs of NAME with their args (`model` among them);
    --arg key=value (YAML values) sets generator args, validated like the config's."""
    from relbench import cli

    model_dir = tmp_path / "flux-tiny"
    tiny_flux_pipeline(clip_max_length=SEQ).save_pretrained(model_dir)
    monkeypatch.delenv("RELBENCH_FLUX_MODEL", raising=False)
    config = tmp_path / "bench.yaml"
    config.write_text("name: tiny\nsuite: {kind: shapes, triples_per_predicate: 1}\nseeds: [0]\nresolution: 32\n"
                      "metrics: [pair_mse]\nreference_run: false\nruns:\n"
                      f"  - {{name: a, generator: flux, args: {{model: {model_dir}, max_sequence_length: {SEQ}}}}}\n"
                      f"  - {{name: b, generator: flux, args: {{model: {model_dir}, max_sequence_length: {SEQ}}}, "
                      "prompt_mode: neutral}\n"
                      "  - {name: c, generator: shapes_oracle}\n")
    base = ["run", "--config", str(config), "--limit", "1", "--no-progress", "--no-report"]
    assert cli.main(base + ["--generator", "flux", "--arg", "steps=2", "--arg", "guidance=0.5",
                            "--out", str(tmp_path / "o")]) == 0
    runs = json.loads((tmp_path / "o" / "manifest.json").read_text())["runs"]
    assert list(runs) == ["a", "b"] and runs["b"]["prompt_mode"] == "neutral"
    assert all(r["args"]["model"] == str(model_dir) and r["args"]["steps"] == 2 and r["args"]["guidance"] == 0.5
               and r["args"]["max_sequence_length"] == SEQ for r in runs.values())
    capsys.readouterr()
    assert cli.main(base + ["--generator", "flux", "--arg", "stepz=2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("relbench: error: --arg stepz: unknown argument of flux (allowed: model, revision,")
    assert cli.main(base + ["--generator", "flux", "--arg", "steps=many", "--out", str(tmp_path / "x")]) == 2
    assert "--arg steps: Input should be a valid integer" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # a generator the config does not run: one new run of it
    assert cli.main(base + ["--generator", "shapes_inverse", "--out", str(tmp_path / "s")]) == 0
    assert list(json.loads((tmp_path / "s" / "manifest.json").read_text())["runs"]) == ["shapes_inverse"]


SAVE_SCRIPT = """
import sys, torch
from relbench.testing.models.flux import tiny_flux_pipeline
from relbench.models.graph_encoders import build_encoder, clip_pooled_embedder
from relbench.models.graph_injection import attach_graph_lora
from relbench.models.graph_specs import InjectionSpec, LoraSpec, TextSpec
from relbench.models.graph_lora_ckpt import checkpoint_digest, save_checkpoint
pipe = tiny_flux_pipeline(clip_max_length=48)
embed, dim = clip_pooled_embedder(pipe)
torch.manual_seed(0)
gl = attach_graph_lora(pipe.transformer, build_encoder(TextSpec(embed_dim=16, width=16, layers=2), embed, dim),
                       LoraSpec(), InjectionSpec())
save_checkpoint(sys.argv[1], pipe.transformer, gl, base_model="tiny", extra={"step": 3, "epoch": 1})
print(checkpoint_digest(sys.argv[1]))
"""


def _reorder_metadata(path):
    """The LoRA file as another process may write it: the header's metadata keys reversed."""
    import struct

    from relbench.models.graph_lora_ckpt import LORA_FILE

    data = (path / LORA_FILE).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(reversed(list(header["__metadata__"].items())))
    text = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    assert len(text) == n
    (path / LORA_FILE).write_bytes(data[:8] + text + data[8 + n :])


@pytest.mark.slow
def test_checkpoint_identity_is_its_content_across_processes(tmp_path):
    """safetensors orders header metadata differently per process; the identity must not care,
    or a resumed and an uninterrupted run regenerate every image."""
    from relbench.models.graph_lora_ckpt import LORA_FILE

    digests = set()
    for i in range(2):
        res = subprocess.run([sys.executable, "-c", SAVE_SCRIPT, str(tmp_path / f"ck{i}")], capture_output=True,
                             text=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": str(i)})
        assert res.returncode == 0, res.stderr[-2000:]
        digests.add(res.stdout.split()[-1])
    assert len(digests) == 1
    shutil.copytree(tmp_path / "ck0", tmp_path / "other")
    _reorder_metadata(tmp_path / "other")
    assert (tmp_path / "other" / LORA_FILE).read_bytes() != (tmp_path / "ck0" / LORA_FILE).read_bytes()
    assert graph_lora(ckpt=str(tmp_path / "other")).fingerprint() == graph_lora(ckpt=str(tmp_path / "ck0")).fingerprint()
