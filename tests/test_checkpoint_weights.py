"""Weights are checked when a checkpoint is read, before any model loads: every tensor a finite
float, the LoRA of the shapes its config implies, a header inside the file, and the config
JSON valid by its spec; each problem is one line naming the file and the tensor or key."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from relbench.errors import UserError
from relbench.models import clip as clip_model
from relbench.models.graph_lora_ckpt import CONFIG_FILE, ENCODER_FILE, LORA_FILE, read_checkpoint
from relbench.io.safetensors_file import check_weights
from relbench.testing.models.clip import make_tiny_checkpoint
from test_flux_generators import graph_lora, perturb

A7 = "transformer.transformer_blocks.7.attn.to_q.lora_A.weight"
B7 = "transformer.transformer_blocks.7.attn.to_q.lora_B.weight"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from relbench.models.graph_lora_ckpt import save_checkpoint

    gen = graph_lora()
    perturb(gen)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "ck", gen.pipe.transformer, gen.graph_lora, base_model="tiny")


@pytest.fixture
def ck(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "ck")


def edit(path, change):
    sd = load_file(str(path))
    change(sd)
    save_file(sd, str(path))


def refused(ck) -> str:
    with pytest.raises(UserError) as err:
        read_checkpoint(ck)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_the_saved_checkpoint_reads_and_loads(ck):
    assert read_checkpoint(ck).lora.rank == 16
    assert graph_lora(ckpt=str(ck)).graph_lora is not None


def test_nan_lora_weight_is_refused_naming_file_and_tensor(ck):
    def nan(sd):
        sd[B7][0, 5] = float("nan")  # flat index 5 of a (32, 16) matrix

    edit(ck / LORA_FILE, nan)
    assert refused(ck) == (f"flux_graph_lora: {ck / LORA_FILE}: tensor {B7} holds NaN or inf (first at flat index "
                           f"5); the weights are damaged (a diverged training?)")
    with pytest.raises(UserError, match="holds NaN or inf"):  # the generator reads it before any pipeline
        graph_lora(ckpt=str(ck))


def test_inf_encoder_weight_is_refused(ck):
    name = []

    def inf(sd):
        name.append(sorted(sd)[0])
        sd[name[0]].view(-1)[0] = float("-inf")

    edit(ck / ENCODER_FILE, inf)
    assert refused(ck).startswith(f"flux_graph_lora: {ck / ENCODER_FILE}: tensor {name[0]} holds NaN or inf "
                                  f"(first at flat index 0)")


def test_integer_lora_weight_is_refused(ck):
    def to_int(sd):
        sd[A7] = (sd[A7] * 100).to(torch.int64)

    edit(ck / LORA_FILE, to_int)
    assert refused(ck) == (f"flux_graph_lora: {ck / LORA_FILE}: tensor {A7} is I64; weights must be floating point "
                           f"(F64, F32, F16, BF16, F8_E5M2, F8_E4M3)")


def test_lora_of_another_rank_is_refused_before_the_model(ck):
    def rank8(sd):
        sd[A7] = sd[A7][:8].clone()

    edit(ck / LORA_FILE, rank8)
    assert refused(ck) == (f"flux_graph_lora: {ck / LORA_FILE}: tensor {A7} has shape [8, 32]; rank 16 and width 32 "
                           f"in {CONFIG_FILE} imply (16, 32)")


def test_lora_missing_a_block_is_refused(ck):
    edit(ck / LORA_FILE, lambda sd: sd.pop(B7))
    assert "does not hold the LoRA of its config (blocks [7, 8, 9, 10, 11, 12]" in refused(ck)
    assert f"missing: {B7}" in refused(ck)


def test_header_length_beyond_the_file_is_refused_before_reading(ck):
    data = (ck / LORA_FILE).read_bytes()
    (ck / LORA_FILE).write_bytes(struct.pack("<Q", 1 << 40) + data[8:])
    assert refused(ck) == (f"flux_graph_lora: {ck / LORA_FILE}: safetensors header length {1 << 40} is beyond the "
                           f"file size ({len(data)} bytes); the file is truncated or not safetensors")


def test_truncated_tensor_data_is_refused(ck):
    data = (ck / LORA_FILE).read_bytes()
    (ck / LORA_FILE).write_bytes(data[:-4])  # the header is whole, the last tensor lacks 4 bytes
    assert "the file is truncated or damaged" in refused(ck)


@pytest.mark.parametrize("change,expected", [
    (lambda c: c.pop("lora"), "lora: required key is missing"),
    (lambda c: c["lora"].update(rank=-3), "lora.rank: Input should be greater than or equal to 1"),
    (lambda c: c["lora"].update(blocks="7"), "lora.blocks: Input should be a valid list"),
    (lambda c: c["encoder"].update(kind="gnn"), "encoder: unknown kind 'gnn'; allowed: 'cgip', 'text'"),
    (lambda c: c.update(width=0), "width: Input should be greater than or equal to 1"),
])
def test_config_is_validated_by_its_spec(ck, change, expected):
    cfg = json.loads((ck / CONFIG_FILE).read_text())
    change(cfg)
    (ck / CONFIG_FILE).write_text(json.dumps(cfg))
    assert refused(ck) == f"flux_graph_lora: {ck / CONFIG_FILE}: {expected}"


def test_config_that_is_a_list_is_one_line(ck):
    (ck / CONFIG_FILE).write_text("[1, 2]")
    assert refused(ck).startswith(f"flux_graph_lora: {ck / CONFIG_FILE}:1: the checkpoint config must be a mapping")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_nonfinite_bits_per_dtype(tmp_path, dtype):
    info = torch.finfo(dtype)
    edge = torch.tensor([0.0, -0.0, info.max, -info.max, info.tiny, info.tiny / 2, info.eps, 1.0], dtype=dtype)
    assert torch.isfinite(edge).all()  # the extremes and a subnormal are numbers
    save_file({"w": edge}, str(tmp_path / "ok.safetensors"))
    check_weights(tmp_path / "ok.safetensors", "t")
    for bad in (float("nan"), float("inf"), float("-inf")):
        t = edge.clone()
        t[3] = bad
        save_file({"w": t}, str(tmp_path / "bad.safetensors"))
        with pytest.raises(UserError, match=r"tensor w holds NaN or inf \(first at flat index 3\)"):
            check_weights(tmp_path / "bad.safetensors", "t")


# --- CLIP weights files --------------------------------------------------------------------------


@pytest.fixture
def tiny_clip(tmp_path):
    return torch.load(make_tiny_checkpoint(tmp_path / "clip")[1], weights_only=True)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_clip_integer_weights_are_refused(tiny_clip, tmp_path, suffix):
    sd = dict(tiny_clip)
    sd["logit_scale"] = torch.tensor(5, dtype=torch.int64)  # load_state_dict would cast it to 5.0 silently
    path = tmp_path / f"w{suffix}"
    torch.save(sd, path) if suffix == ".pt" else save_file(sd, str(path))
    with pytest.raises(UserError) as err:
        clip_model.check_weights_file(path)
    dtype = "int64" if suffix == ".pt" else "I64"
    assert str(err.value).startswith(f"clip_alignment: {path}: tensor logit_scale is {dtype}; weights must be floating")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_clip_nan_weights_are_refused(tiny_clip, tmp_path, suffix):
    sd = {k: v.clone() for k, v in tiny_clip.items()}
    sd["visual.proj"].view(-1)[2] = float("nan")
    path = tmp_path / f"w{suffix}"
    torch.save(sd, path) if suffix == ".pt" else save_file(sd, str(path))
    with pytest.raises(UserError, match=rf"^clip_alignment: {path}: tensor visual.proj holds NaN or inf"):
        clip_model.check_weights_file(path)


def test_clip_integer_position_ids_are_allowed(tiny_clip, tmp_path):
    """HF text towers keep integer position ids in their state dicts; open_clip drops or keeps
    them as integers, never as weights."""
    sd = dict(tiny_clip) | {"text.transformer.embeddings.position_ids": torch.arange(8).unsqueeze(0)}
    for path in (tmp_path / "w.pt", tmp_path / "w.safetensors"):
        torch.save(sd, path) if path.suffix == ".pt" else save_file(sd, str(path))
        clip_model.check_weights_file(path)


def test_clip_safetensors_header_beyond_the_file(tiny_clip, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(dict(tiny_clip), str(path))
    data = path.read_bytes()
    path.write_bytes(struct.pack("<Q", len(data)) + data[8:])
    with pytest.raises(UserError, match=rf"^clip_alignment: {path}: safetensors header length {len(data)} is beyond "
                                        rf"the file size \({len(data)} bytes\)"):
        clip_model.check_weights_file(path)
    assert np.frombuffer(data[:8], "<u8")[0] < len(data)  # the original header was inside the file
