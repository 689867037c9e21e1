"""`relbench lab build-base`: a mini FLUX.1-schnell that draws the lab's shapes from text.

The directory it writes is an ordinary diffusers FluxPipeline (FluxTransformer2DModel,
AutoencoderKL, CLIPTextModel + T5EncoderModel with word-level tokenizers built here,
FlowMatchEulerDiscreteScheduler with schnell's settings), so `relbench run --generator flux`
and `relbench train` load it like the real model. Only the sizes differ (BaseConfig).

Pretraining, in three stages, on shapes-world images drawn right for random triples:
1. the VAE learns to reconstruct 32 px images through a 16x16x4 latent (scale factor 2);
2. the CLIP text tower learns contrastively against a throwaway vision tower, as CLIP-L was
   pretrained before FLUX used it, so its pooled vector tells prompts (and the object names
   the `text` graph encoder embeds with it) apart; it is frozen afterwards;
3. the transformer AND the T5 encoder learn rectified flow (z_t = (1-t) z0 + t eps, target
   eps - z0, t logit-normal shifted towards noise as in SD3/FLUX) from the prompt: the
   relation prompt with probability ``relation_prompt_prob``, else the neutral one. Training
   T5 end to end is what makes relation prompts carry the relation, as FLUX's T5 does: "red
   circle left of blue square" and its swap differ only in word order, which the encoder must
   turn into different conditions for the loss to fall. Neutral prompts teach drawing both
   objects with no relation named, so the graph pathway later has something to steer.

Every random draw comes from a generator seeded by (seed, stage, step), so a build is a pure
function of its config, and a resumed build equals an uninterrupted one. State (weights,
AdamW moments, step) is checkpointed as safetensors + JSON every ``save_every`` steps."""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

from relbench.errors import UserError
from relbench.io.progress import bars_wanted, library_bars
from relbench.lab.pretrain import BaseConfig, CLIP_LEN, T5_LEN, world_images, encode_latents, object_names, scene_prompts, train_clip, train_flux, train_vae


def word_tokenizer(max_length: int):
    """A word-level tokenizer over the lab's words (WORDS); anything else is <unk>.

    </s> has id 1 (not 2) so CLIPTextModel pools at the eos token rather than by its legacy
    argmax-id rule.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from relbench.lab.world import WORDS

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="</s>",
                                   model_max_length=max_length)


def build_pipeline(cfg: BaseConfig):
    """The untrained mini FluxPipeline (weights seeded by cfg.seed)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    hidden = cfg.heads * cfg.head_dim
    torch.manual_seed(cfg.seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=cfg.num_layers, num_single_layers=cfg.num_single_layers,
        attention_head_dim=cfg.head_dim, num_attention_heads=cfg.heads, joint_attention_dim=cfg.text_dim,
        pooled_projection_dim=cfg.text_dim, guidance_embeds=False,
        axes_dims_rope=[cfg.head_dim - 2 * (cfg.head_dim * 3 // 8), cfg.head_dim * 3 // 8, cfg.head_dim * 3 // 8],
    )
    assert hidden == transformer.inner_dim
    torch.manual_seed(cfg.seed + 1)
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * cfg.vae_blocks, up_block_types=("UpDecoderBlock2D",) * cfg.vae_blocks,
        block_out_channels=tuple(cfg.vae_width * 2**i for i in range(cfg.vae_blocks)), layers_per_block=1, latent_channels=4, norm_num_groups=8,
        use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=False,
        shift_factor=0.0, scaling_factor=1.0,
    )
    tokenizer, tokenizer_2 = word_tokenizer(CLIP_LEN), word_tokenizer(T5_LEN)
    torch.manual_seed(cfg.seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=0, hidden_size=cfg.text_dim, intermediate_size=2 * cfg.text_dim,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(tokenizer), projection_dim=cfg.text_dim,
        max_position_embeddings=CLIP_LEN,
    ))
    torch.manual_seed(cfg.seed + 3)
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_2), d_model=cfg.text_dim, d_kv=cfg.text_dim // 4, d_ff=2 * cfg.text_dim, num_layers=2,
        num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    # schnell's scheduler: static shift 1.0, no resolution-dependent shifting
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


SCRATCH = ".relbench-scratch"  # in DIR.build: the scratch space is lab build-base's own


def _check_target(out: Path) -> None:
    if (out / "model_index.json").exists():
        raise UserError(f"lab build-base: {out} already holds a pipeline (model_index.json); choose another --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"lab build-base: {out} exists and is not an empty directory; choose another --out")


def _check_scratch(state_dir: Path, kind: str) -> None:
    """DIR.build may be reused or emptied only when its marker proves it is ``kind``'s."""
    if not (state_dir.exists() or state_dir.is_symlink()):
        return
    try:
        made = json.loads((state_dir / SCRATCH).read_text())["by"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"lab build-base: {state_dir} exists and was not made by relbench (no {SCRATCH} in it); "
                        f"it is left untouched: move it away or choose another --out") from None
    if made != kind:
        raise UserError(f"lab build-base: {state_dir} holds an unfinished `relbench {made}`; rerun that to finish "
                        f"it, or delete {state_dir}")


@contextmanager
def _scratch(out: Path, kind: str, keep: bool):
    """DIR.build, locked and marked as ``kind``'s, for the ``with`` block; ``keep``: what an
    interrupted build left there is resumed, else cleared. The pipeline is written inside it
    (pipeline/) and renamed to DIR, so no other path beside DIR is ever deleted."""
    from relbench.io.locks import LOCK_NAME, writer_lock

    state_dir = out.with_name(out.name + ".build")
    _check_target(out)
    _check_scratch(state_dir, kind)
    with writer_lock(state_dir, f"relbench {kind}"):
        _check_target(out)  # again, now that no other build can write here
        if any(p.name != LOCK_NAME for p in state_dir.iterdir()):  # not just made by the lock
            _check_scratch(state_dir, kind)
        if not keep:
            for p in state_dir.iterdir():
                if p.name in (LOCK_NAME, SCRATCH):
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        (state_dir / SCRATCH).write_text(json.dumps({"by": kind}) + "\n")
        yield state_dir


def _publish(state_dir: Path, out: Path, pipe, meta: dict, progress: bool) -> None:
    """Write the pipeline into DIR.build/pipeline, rename it to ``out``, move the log beside it
    and remove DIR.build."""
    tmp = state_dir / "pipeline"
    if tmp.exists():  # a save cut short
        shutil.rmtree(tmp)
    with library_bars(bars_wanted(progress)):
        pipe.save_pretrained(str(tmp))
    (tmp / "lab_base.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    if out.exists():
        out.rmdir()  # an empty directory the user made (_check_target refused any other)
    tmp.rename(out)
    # the log holds wall times, so it stays out of the pipeline directory (whose bytes are
    # a function of the config)
    (state_dir / "log.jsonl").replace(out.with_name(out.name + ".build-log.jsonl"))
    shutil.rmtree(state_dir)


def build_base(out: str | Path, cfg: BaseConfig = BaseConfig(), progress: bool = True, resume: bool = True) -> Path:
    """Write the pretrained mini FLUX pipeline to ``out``; resumes a build interrupted there."""
    import torch

    out = Path(out)
    with _scratch(out, "lab build-base", keep=resume) as state_dir:
        prev = json.loads((state_dir / "config.json").read_text()) if (state_dir / "config.json").exists() else None
        if prev is not None and prev != asdict(cfg):
            raise UserError(f"lab build-base: {state_dir} holds a build with another config; delete it or use its settings")
        (state_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
        logf = open(state_dir / "log.jsonl", "a")

        def log(rec):
            logf.write(json.dumps(rec) + "\n")
            logf.flush()

        started = time.perf_counter()
        pipe = build_pipeline(cfg)
        scenes, x = world_images(cfg)
        train_vae(cfg, pipe, x, state_dir, progress, log)
        prompts = scene_prompts(scenes)
        train_clip(cfg, pipe, x, prompts, object_names(cfg, scenes) if cfg.clip_object_share > 0 else None,
                    state_dir, progress, log)
        z = encode_latents(pipe, x)
        train_flux(cfg, pipe, prompts, z, state_dir, progress, log)
        logf.close()
        _publish(state_dir, out, pipe, {
            "config": asdict(cfg), "world": _world_spec(cfg), "clip_max_length": CLIP_LEN,
            "max_sequence_length": T5_LEN, "resolution": 32, "torch": torch.__version__,
        }, progress)
    if progress:
        print(f"lab base written to {out} in {time.perf_counter() - started:.0f} s")
    return out


def _world_spec(cfg: BaseConfig) -> dict:
    from relbench.lab.world import world

    return _drawn(json.loads(json.dumps(asdict(world(cfg.world)))))


def _drawn(spec: dict | None) -> dict | None:
    """What a base learned of its world: everything but ``held_out``, which only splits the
    suites (a base is pretrained on every triple), so a new split keeps bases usable."""
    return None if spec is None else {k: v for k, v in spec.items() if k != "held_out"}


def check_world(meta: dict, base) -> BaseConfig:
    """The config of a written base, refusing one built for another version of its world (other
    objects, predicates or sizes, e.g. before objects were drawn twice as large): suites and
    further training drawn from today's world would not be what it learned."""
    cfg = BaseConfig(**meta["config"])  # a base older than a field predates the world record too
    if _drawn(meta.get("world")) != _world_spec(cfg):
        raise UserError(f"lab: {base} was built for another version of the {cfg.world!r} world than this relbench "
                        f"draws (objects, predicates or sizes differ); rebuild it with `relbench lab build-base`")
    return cfg


def continue_base(src: str | Path, out: str | Path, steps: int, lr: float = 3e-4, progress: bool = True) -> Path:
    """A base pretrained ``steps`` more transformer + text-encoder steps, starting from ``src``
    (VAE unchanged). Batches are drawn with the source seed + 1000 * (round of continuation),
    so a continued base is a function of (source config, steps, lr); lab_base.json lists the
    rounds. Why: a base that does not yet follow its prompts can be trained on without
    repeating the first stage."""
    from diffusers import FluxPipeline

    src, out = Path(src), Path(out)
    meta = json.loads((src / "lab_base.json").read_text())
    rounds = meta.get("continued", [])
    cfg = check_world(meta, src)
    with _scratch(out, "lab build-base --continue-from", keep=False) as state_dir:  # before the model loads
        with library_bars(bars_wanted(progress)):
            pipe = FluxPipeline.from_pretrained(str(src), local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        scenes_, x = world_images(cfg)
        z = encode_latents(pipe, x)
        step_cfg = replace(cfg, seed=cfg.seed + 1000 * (len(rounds) + 1), flux_steps=steps, flux_lr=lr,
                           save_every=10**9)
        with open(state_dir / "log.jsonl", "a") as logf:
            train_flux(step_cfg, pipe, scene_prompts(scenes_), z, state_dir, progress,
                        lambda r: logf.write(json.dumps(r) + "\n"))
        meta["continued"] = rounds + [{"steps": steps, "lr": lr, "seed": step_cfg.seed}]
        _publish(state_dir, out, pipe, meta, progress)
    return out
