"""The flux_graph_lora checkpoint: one directory, safetensors + JSON, no pickle.

    pytorch_lora_weights.safetensors  diffusers LoRA format (transformer.<module>.lora_A/B.weight),
                                      loadable by FluxPipeline.load_lora_weights
    graph_encoder.safetensors         the scene-graph encoder (CGIP keys match SGDiff's)
    graph_injector.safetensors        token projections + per-block zero-initialised outputs
    relbench_graph_lora.json          format version, base model, LoRA / injection / encoder
                                      specs (the CGIP vocabulary included)

The trainer (trainers/flux_graph_lora) writes with ``save_checkpoint`` and the generator reads with
``load_checkpoint``; both sides share the specs in ``_graph_specs``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from relbench.spec.config import validate_mapping
from relbench.errors import UserError
from relbench.models.graph_specs import CheckpointConfig, InjectionSpec, LoraSpec
from relbench.io.safetensors_file import check_weights

FORMAT = "relbench-graph-lora"
FORMAT_VERSION = 1
LORA_FILE = "pytorch_lora_weights.safetensors"
ENCODER_FILE = "graph_encoder.safetensors"
INJECTOR_FILE = "graph_injector.safetensors"
CONFIG_FILE = "relbench_graph_lora.json"
FILES = (CONFIG_FILE, LORA_FILE, ENCODER_FILE, INJECTOR_FILE)


def save_checkpoint(out_dir, transformer, graph_lora, base_model: str, extra: dict | None = None,
                    base_identity: dict | None = None) -> Path:
    """Write the LoRA, encoder and injector weights (float32) and the config JSON into ``out_dir``.

    ``base_identity``: what ``resolve_model_dir`` says of the base weights (a snapshot commit or
    a listing of the local directory), so the generator can refuse another base.
    """
    from diffusers import FluxPipeline
    from safetensors.torch import save_file

    from relbench.models.graph_injection import lora_state_dict, transformer_width

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lora_sd = {k: v.detach().float().cpu().contiguous() for k, v in lora_state_dict(transformer).items()}
    meta = {"r": graph_lora.lora.rank, "lora_alpha": graph_lora.lora.alpha,
            "target_modules": graph_lora.lora.target_modules()}
    FluxPipeline.save_lora_weights(out, transformer_lora_layers=lora_sd, weight_name=LORA_FILE,
                                   transformer_lora_adapter_metadata=meta)
    sort_safetensors_metadata(out / LORA_FILE)
    for name, module in ((ENCODER_FILE, graph_lora.encoder), (INJECTOR_FILE, graph_lora.injector)):
        save_file({k: v.detach().float().cpu().contiguous() for k, v in module.state_dict().items()}, str(out / name))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "base_model": base_model,
        "base_identity": base_identity,
        "width": transformer_width(transformer),
        "lora": graph_lora.lora.model_dump(mode="json") | {"target_modules": graph_lora.lora.target_modules()},
        "injection": graph_lora.injection.model_dump(mode="json"),
        "encoder": graph_lora.encoder.spec_dict(),
        "extra": extra or {},
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


def sort_safetensors_metadata(path: Path) -> None:
    """Rewrite a safetensors file's header with its ``__metadata__`` keys sorted, in place.

    Why: safetensors keeps the metadata in a Rust HashMap, whose order changes from process to
    process (and map to map), and diffusers writes two keys into a LoRA file ("format" and
    "lora_adapter_metadata"); the same weights then came out as different bytes about every
    other time. The tensors' entries, data and offsets are untouched: only the header's JSON
    is re-serialised (compact, space-padded to 8 bytes, as safetensors writes it).
    """
    import struct

    from relbench.io.atomic import write_bytes

    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    if not meta or len(meta) < 2:
        return
    text = json.dumps({"__metadata__": dict(sorted(meta.items())), **header}, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    write_bytes(path, struct.pack("<Q", len(text)) + text.encode() + raw[8 + n:])


@dataclass
class Checkpoint:
    path: Path
    config: dict
    lora: LoraSpec
    injection: InjectionSpec

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model")

    def files(self) -> list[Path]:
        return [self.path / f for f in FILES]

    def digest(self) -> str:
        """Content identity: see ``checkpoint_digest``."""
        return checkpoint_digest(self.path)


def checkpoint_digest(path) -> str:
    """sha256 of a checkpoint's tensors and metadata, not of its bytes.

    safetensors writes the header's ``__metadata__`` map in an order that changes from process
    to process (a Rust HashMap; the LoRA file has two keys), so a resumed run and an
    uninterrupted one with bit-identical tensors wrote different bytes and would regenerate
    every image. Each header is hashed as sorted JSON, then the tensor bytes as written.
    """
    import hashlib
    import struct

    h = hashlib.sha256()
    for name in FILES:
        data = (Path(path) / name).read_bytes()
        h.update(name.encode() + b"\0")
        if name.endswith(".safetensors"):
            (n,) = struct.unpack("<Q", data[:8])
            header = json.loads(data[8 : 8 + n])
            h.update(json.dumps(header, sort_keys=True).encode() + b"\0")
            data = data[8 + n :]
        h.update(data)
    return h.hexdigest()


def resolve_checkpoint_dir(path, say=print) -> Path:
    """A checkpoint directory, or a training output directory (``relbench train --output-dir``):
    its best/ when evaluation kept one, else last/; ``say`` reports which."""
    p = Path(path).expanduser()
    if (p / CONFIG_FILE).is_file() or not p.is_dir():
        return p
    for sub in ("best", "last"):
        if (p / sub / CONFIG_FILE).is_file():
            say(f"flux_graph_lora: --ckpt {p} is a training output directory; using its {sub}/ checkpoint")
            return p / sub
    raise UserError(f"flux_graph_lora: {p} is neither a checkpoint (no {CONFIG_FILE}) nor a training output "
                    f"directory (no best/ or last/ checkpoint in it)")


def read_checkpoint(path) -> Checkpoint:
    """Read and validate the JSON; weights are read by ``load_checkpoint``."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise UserError(f"flux_graph_lora: checkpoint directory {p} does not exist")
    missing = [f for f in FILES if not (p / f).is_file()]
    if missing:
        raise UserError(f"flux_graph_lora: checkpoint {p} lacks {', '.join(missing)}")
    try:
        cfg = json.loads((p / CONFIG_FILE).read_text())
    except ValueError as exc:
        raise UserError(f"flux_graph_lora: {p / CONFIG_FILE} is not valid JSON: {exc}") from None
    if isinstance(cfg, dict) and (cfg.get("format") != FORMAT or cfg.get("format_version") != FORMAT_VERSION):
        raise UserError(
            f"flux_graph_lora: {p / CONFIG_FILE} is format {cfg.get('format')!r} v{cfg.get('format_version')}; "
            f"this relbench reads {FORMAT!r} v{FORMAT_VERSION}"
        )
    spec = validate_mapping(CheckpointConfig, cfg, f"flux_graph_lora: {p / CONFIG_FILE}", None, "checkpoint config",
                            ", ".join(CheckpointConfig.model_fields), tags=("cgip", "text"))
    _check_weights_files(p, spec)
    return Checkpoint(p, cfg, spec.lora, spec.injection)


def _check_weights_files(path: Path, spec: CheckpointConfig) -> None:
    """Every tensor finite and floating point, and the LoRA file holding exactly the A and B
    matrices of rank ``spec.lora.rank`` that the spec's blocks and targets imply (attention
    projections map the width to itself); checked from the files alone, before a model loads.
    Names and shapes of the encoder and injector depend on the model: ``load_checkpoint``
    checks them against it."""
    for name in (ENCODER_FILE, INJECTOR_FILE):
        check_weights(path / name, "flux_graph_lora")
    where = f"flux_graph_lora: {path / LORA_FILE}"
    entries = check_weights(path / LORA_FILE, "flux_graph_lora")
    rank, width = spec.lora.rank, spec.width
    expected = {}
    for b in spec.lora.blocks:
        for t in spec.lora.targets:
            attn = t.startswith("attn.")
            expected[f"transformer.transformer_blocks.{b}.{t}.lora_A.weight"] = (rank, width if attn else None)
            expected[f"transformer.transformer_blocks.{b}.{t}.lora_B.weight"] = (width if attn else None, rank)
    missing, unexpected = sorted(set(expected) - set(entries)), sorted(set(entries) - set(expected))
    if missing or unexpected:
        raise UserError(f"{where} does not hold the LoRA of its config (blocks {spec.lora.blocks}, targets "
                        f"{spec.lora.targets}): " + "; ".join(
                            f"{label}: {', '.join(keys[:4])}" + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
                            for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys))
    for key, want in expected.items():
        got = entries[key].shape
        if len(got) != 2 or any(w is not None and w != g for w, g in zip(want, got)):
            shown = "(" + ", ".join("*" if w is None else str(w) for w in want) + ")"
            raise UserError(f"{where}: tensor {key} has shape {list(got)}; rank {rank} and width {width} in "
                            f"{CONFIG_FILE} imply {shown}")


def load_checkpoint(path, transformer, embed_fn=None, text_dim: int | None = None):
    """Rebuild encoder + injector + LoRA on ``transformer`` and load the weights, checking
    every name and shape; returns (GraphLora, Checkpoint)."""
    from safetensors.torch import load_file

    from relbench.models.graph_encoders import build_encoder, check_state_dict
    from relbench.models.graph_injection import attach_graph_lora, lora_state_dict, transformer_width

    ck = read_checkpoint(path)
    width = transformer_width(transformer)
    if ck.config.get("width") != width:
        raise UserError(
            f"flux_graph_lora: checkpoint {ck.path} was trained on a transformer of width {ck.config.get('width')}, "
            f"this model has width {width} (base model in the checkpoint: {ck.config.get('base_model')})"
        )
    encoder = build_encoder(ck.config["encoder"], embed_fn=embed_fn, text_dim=text_dim)
    graph_lora = attach_graph_lora(transformer, encoder, ck.lora, ck.injection)

    enc_sd = load_file(str(ck.path / ENCODER_FILE))
    inj_sd = load_file(str(ck.path / INJECTOR_FILE))
    check_state_dict(encoder, enc_sd, f"{ck.path / ENCODER_FILE}")
    check_state_dict(graph_lora.injector, inj_sd, f"{ck.path / INJECTOR_FILE}")
    trainable = [p.requires_grad for p in encoder.parameters()]
    encoder.load_state_dict(enc_sd, strict=True)
    graph_lora.injector.load_state_dict(inj_sd, strict=True)
    for p, t in zip(encoder.parameters(), trainable):
        p.requires_grad_(t)

    raw = load_file(str(ck.path / LORA_FILE))
    bad = [k for k in raw if not k.startswith("transformer.")]
    if bad:
        raise UserError(f"flux_graph_lora: {ck.path / LORA_FILE} has non-transformer keys: {', '.join(bad[:6])}")
    lora_sd = {k[len("transformer."):]: v for k, v in raw.items()}
    check_state_dict(lora_state_dict(transformer), lora_sd, str(ck.path / LORA_FILE))
    set_lora_weights(transformer, lora_sd)
    return graph_lora, ck


def set_lora_weights(transformer, sd: dict) -> None:
    from peft.utils import set_peft_model_state_dict

    from relbench.models.graph_injection import ADAPTER

    result = set_peft_model_state_dict(transformer, sd, adapter_name=ADAPTER)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected:
        raise UserError(f"flux_graph_lora: LoRA keys not applied: {', '.join(unexpected[:6])}")
