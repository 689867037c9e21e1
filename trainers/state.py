"""Resumable training state next to a checkpoint, as safetensors + JSON (no pickle).

    <ckpt>/trainer_state/optimizer.safetensors   AdamW moments and step counters, keyed state.<i>.<name>
    <ckpt>/trainer_state/rng.safetensors         torch CPU (and CUDA) generator states
    <ckpt>/trainer_state/state.json              progress, scheduler, optimizer param groups,
                                                 Python's random state, best-so-far, config

Directories are written whole to a temporary sibling and swapped in by rename, so a reader
(the generator, a resumed run) sees the old checkpoint or the new one, never a mixture.

Not accelerate's save_state / load_state: they pickle the optimizer, scheduler and RNG states.

Public because the lab's base pretraining (relbench.lab.base) resumes with the same files,
swaps and per-sample seeds as the trainer.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import torch

STATE_DIR = "trainer_state"


def optimizer_to_files(opt) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_files(opt, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, v in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_to_files() -> tuple[dict, dict]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
    version, state, gauss = random.getstate()
    return tensors, {"python": [version, list(state), gauss]}


def rng_from_files(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda_")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, state, gauss = meta["python"]
    random.setstate((version, tuple(state), gauss))


def write_state(ckpt_dir: Path, opt, scheduler, progress: dict) -> None:
    from safetensors.torch import save_file

    d = Path(ckpt_dir) / STATE_DIR
    d.mkdir(parents=True, exist_ok=True)
    opt_t, opt_meta = optimizer_to_files(opt)
    rng_t, rng_meta = rng_to_files()
    save_file(opt_t, str(d / "optimizer.safetensors"))
    save_file(rng_t, str(d / "rng.safetensors"))
    state = {"progress": progress, "optimizer": opt_meta, "scheduler": scheduler.state_dict(), "rng": rng_meta}
    (d / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")


def read_state(ckpt_dir: Path) -> dict:
    from relbench.errors import UserError

    d = Path(ckpt_dir) / STATE_DIR
    try:
        return json.loads((d / "state.json").read_text())
    except FileNotFoundError:
        raise UserError(f"--resume: {d / 'state.json'} not found ({ckpt_dir} is not a trainer checkpoint)") from None
    except ValueError as exc:
        raise UserError(f"--resume: {d / 'state.json'} is not valid JSON: {exc}") from None


def restore_state(ckpt_dir: Path, opt, scheduler, state: dict) -> None:
    from safetensors.torch import load_file

    d = Path(ckpt_dir) / STATE_DIR
    optimizer_from_files(opt, load_file(str(d / "optimizer.safetensors")), state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng_from_files(load_file(str(d / "rng.safetensors")), state["rng"])


# ---------------------------------------------------------------------------- atomic directories


def temp_dir_for(final: Path) -> Path:
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def remove_dead_temp_dirs(parent: Path, names: tuple[str, ...]) -> list[Path]:
    """Remove the ``.<name>.tmp-PID`` directories that writers killed mid-checkpoint left in
    ``parent``; returns them. Called under the directory's writer lock (relbench.io.locks): no
    other process writes there, so each one is a dead writer's, whatever its pid now names."""
    gone = []
    for name in names:
        for tmp in sorted(parent.glob(f".{name}.tmp-*")):
            if tmp.name[len(name) + 6:].isdigit() and tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
                gone.append(tmp)
    return gone


def swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp``: rename old away, rename new in, delete old.

    A crash between the two renames leaves ``.<name>.old`` and no ``<name>``;
    ``existing_checkpoint`` falls back to it.
    """
    old = final.parent / f".{final.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def copy_dir_atomic(src: Path, final: Path) -> None:
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    swap_in(tmp, final)


def existing_checkpoint(final: Path) -> Path | None:
    if final.is_dir():
        return final
    old = final.parent / f".{final.name}.old"
    return old if old.is_dir() else None

def sample_seed(*parts) -> int:
    """A 63-bit seed from (run seed, step, position, ...): randomness that depends on what a
    sample is, not on which process draws it or whether the run was resumed."""
    h = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 1
