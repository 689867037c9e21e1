"""Vision-language judges read as next-token distributions: one forward pass per question.

Why not ``generate()``: GenEval 2 and t2v_metrics call generate(max_new_tokens=1,
output_scores=True) once per question and read the first token's softmax. The same numbers come
from the logits at the last prompt position of one batched forward pass, which is several
times faster. Three things must hold for that to be exact (measured on tiny models:
tests/test_vlm_judge.py, benchmarks/vlm_judge.py): the batch is LEFT padded (the last position is then the real last prompt
token for every row), the processor's attention_mask (and Qwen's mm_token_type_ids) is passed
unchanged and position ids are left to the model (Qwen's M-RoPE derives them from the mask), and
the one logits processor greedy generate() runs is reproduced: generation_config's
repetition_penalty (1.05 in Qwen2.5-VL-Instruct) over each row's own (unpadded) input ids, as
RepetitionPenaltyLogitsProcessor does, when asked for (``repetition_penalty``).

The output projection and the softmax run in float32 whatever the model's dtype (the final
hidden state is captured at the head's input): in bf16 a bf16 projection over a 152k vocabulary
moves P(yes) by about 1e-2 between batch sizes. The layers below still run in the model's
dtype, so bf16 scores keep a smaller batch dependence (benchmarks/vlm_judge.py measures it);
batches are formed in question order, so the same questions give the same batches and bytes.

Each image goes through the image processor once for all its questions: the chat template is
applied once per image, and the question's tokens are spliced between the image block and the
end-of-turn marker (both special tokens, so tokenisation of the question cannot merge across
them). A self-check on the first image compares the splice with the processor's own output.

Weights are read from a local directory or the Hugging Face cache only (never downloaded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from relbench.errors import UserError

HOW = ("download it on a machine with network (e.g. `hf download Qwen/Qwen3-VL-8B-Instruct --local-dir DIR`) "
       "and set the metric's model: to DIR, or to the repo id once it is in the Hugging Face cache "
       "(HF_HOME / HF_HUB_CACHE); nothing is downloaded")
_WEIGHTS = ("*.safetensors", "*.bin")


def resolve(model: str, who: str = "vlm_judge") -> Path:
    """The local directory of ``model`` (a path, or a repo id already in the HF cache)."""
    if not model:
        raise UserError(f"{who}: no model given; {HOW}")
    from relbench.models import hub

    path = Path(os.path.expanduser(model))
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{who}: model {model!r} is a file; give the model directory (config.json, weights, "
                            f"tokenizer, processor files)")
    elif hub.is_repo_id(model):
        try:
            path = hub.snapshot(model)
        except Exception:
            raise UserError(f"{who}: model {model!r} is neither a directory nor in the Hugging Face cache; {HOW}") from None
    else:
        raise UserError(f"{who}: model directory {model!r} not found; {HOW}")
    if not (path / "config.json").is_file():
        raise UserError(f"{who}: {path} has no config.json (a Hugging Face model directory is needed); {HOW}")
    if not _weight_files(path):
        raise UserError(f"{who}: {path} has no weights (*.safetensors); {HOW}")
    return path


def _weight_files(path: Path) -> list[Path]:
    return sorted(p for pat in _WEIGHTS for p in path.glob(pat))


def identity(path: Path) -> dict:
    """Content identity of a model directory: sha256 of every weight, config, tokenizer and
    processor file, so a score cache never mixes two different judges under one path."""
    from relbench.io.content_hash import dir_sha256

    return dir_sha256(path, (".safetensors", ".bin", ".json", ".jinja", ".model", ".txt"))


def first_token_table(path: Path, spellings: Sequence[str]) -> dict[str, dict]:
    """{spelling: {"first": its first token as text, "id": its id, "tokens": how many tokens}}
    with the judge's own tokenizer: the probability read for a spelling is its first token's."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    table = {}
    for s in dict.fromkeys(spellings):
        ids = tok.encode(s, add_special_tokens=False)
        table[s] = {"first": tok.decode(ids[:1]) if ids else "", "id": ids[0] if ids else None, "tokens": len(ids)}
    return table


def _generation_config(path: Path) -> dict:
    import json

    f = path / "generation_config.json"
    try:
        cfg = json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, ValueError):
        cfg = None
    if not isinstance(cfg, dict):
        raise UserError(f"vlm_judge: {f} is not a JSON object; restore the model's generation_config.json")
    return cfg


#: generation_config settings whose logits processors greedy generate(max_new_tokens=1) would
#: also run on the first token's scores (transformers' _get_logits_processor; the sampling
#: warpers, temperature / top_k / top_p, run only with do_sample), each with its "off" test
_UNREPRODUCED = {
    "sequence_bias": lambda v: v is None, "bad_words_ids": lambda v: v is None,
    "no_repeat_ngram_size": lambda v: not v, "min_length": lambda v: not v, "min_new_tokens": lambda v: not v,
    "forced_bos_token_id": lambda v: v is None, "forced_eos_token_id": lambda v: v is None,
    "exponential_decay_length_penalty": lambda v: v is None, "suppress_tokens": lambda v: not v,
    "begin_suppress_tokens": lambda v: not v, "guidance_scale": lambda v: v in (None, 1, 1.0),
    "renormalize_logits": lambda v: not v, "remove_invalid_values": lambda v: not v,
    "watermarking_config": lambda v: v is None,
}


def config_unreproduced(path: Path) -> list[str]:
    """The generation_config.json settings generate() would apply to the first answer token and
    this forward pass does not (only repetition_penalty is reproduced): with any of them set,
    the probabilities are not generate()'s."""
    cfg = _generation_config(path)
    return sorted(k for k, off in _UNREPRODUCED.items() if k in cfg and not off(cfg[k]))


def config_repetition_penalty(path: Path) -> float:
    """generation_config.json's repetition_penalty (1.0 when absent): what generate() applies."""
    f = path / "generation_config.json"
    value = _generation_config(path).get("repetition_penalty")
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UserError(f"vlm_judge: {f}: repetition_penalty {value!r} is not a positive number")
    return float(value)


def apply_repetition_penalty(logits, input_ids, attention_mask, penalty: float):
    """transformers' RepetitionPenaltyLogitsProcessor on (B, vocab) float logits, each row over
    its own input ids only (pads excluded, as in generate() on one unpadded question): a logit of
    a token already in the prompt is divided by the penalty when > 0, multiplied when < 0."""
    import torch

    if penalty == 1.0:
        return logits
    out = logits.clone()
    for row in range(logits.shape[0]):
        ids = torch.unique(input_ids[row][attention_mask[row].bool()])
        seen = out[row, ids]
        out[row, ids] = torch.where(seen < 0, seen * penalty, seen / penalty)
    return out


def encode_prepends(path: Path) -> str | None:
    """The special token the tokenizer's plain ``encode(text)`` puts before any text (a BOS), or
    None. GenEval 2's evaluation.py reads ``tokenizer.encode(answer)[0]``: with such a tokenizer
    that is this token for every answer, while relbench reads each spelling's first own token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    with_special, plain = tok.encode("Yes"), tok.encode("Yes", add_special_tokens=False)
    return None if with_special[:1] == plain[:1] else tok.decode(with_special[:1])


def default_dtype(device: str):
    import torch

    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


@dataclass(frozen=True)
class Question:
    """One (image, text) query; answers are spelling groups whose first-token probs are summed."""

    image: int  # index into the images list handed to VLM.probabilities
    text: str


class VLM:
    """A loaded judge: processor + AutoModelForImageTextToText, scored by next-token softmax."""

    def __init__(self, path: Path, device: str = "cpu", dtype: Any = None, batch_size: int = 8,
                 repetition_penalty: float = 1.0):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = device
        self.dtype = dtype or default_dtype(device)
        self.batch_size = batch_size
        self.repetition_penalty = repetition_penalty
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(
            path, local_files_only=True, dtype=self.dtype
        ).to(device).eval()
        self.tokenizer = self.processor.tokenizer
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id
        self._checked = False
        self.counts = {"images": 0, "forwards": 0, "questions": 0}
        self.pad_left = True  # False only for benchmarks/vlm_judge.py's right-padding control
        self._head = self.model.get_output_embeddings()
        self._hidden: list = []
        self._head.register_forward_hook(lambda module, args, output: self._hidden.append(args[0]))

    def _last_logits(self, batch: dict):
        """float32 logits at the last position: the head's input (the final normed hidden state)
        projected in float32, in vocabulary slices so no float32 copy of the whole head is kept."""
        import torch

        self._hidden.clear()
        self.model(**batch, logits_to_keep=1, use_cache=False)
        h = self._hidden[-1][:, -1, :].float()
        weight, bias = self._head.weight, getattr(self._head, "bias", None)
        step = 16384
        parts = [torch.nn.functional.linear(h, weight[i:i + step].float(),
                                            None if bias is None else bias[i:i + step].float())
                 for i in range(0, weight.shape[0], step)]
        return torch.cat(parts, dim=-1)

    def first_token_ids(self, spellings: Sequence[str]) -> list[int]:
        """The first-token id of each spelling (GenEval 2: "Yes", "yes", " Yes", " yes"), one per
        spelling: as in GenEval 2's evaluation.py, two spellings that begin with the same token
        count its probability twice (the first-token table in the run's provenance shows them)."""
        return [toks[0] for toks in (self.tokenizer.encode(s, add_special_tokens=False) for s in spellings) if toks]

    # -- inputs -------------------------------------------------------------------------------
    def messages(self, image, text: str) -> list[dict]:
        return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]

    def encode(self, images: Sequence[Any], text: str) -> dict:
        """The processor's own output for a batch of (image, text) pairs, left padded."""
        return self.processor.apply_chat_template(
            [self.messages(im, text) for im in images], tokenize=True, add_generation_prompt=True,
            return_dict=True, return_tensors="pt", processor_kwargs={"padding": True, "padding_side": "left"},
        )

    def _image_template(self, image, anchor: str) -> tuple[dict, int, int]:
        """Processor output for one image with question ``anchor``, and the anchor's token span."""
        enc = self.encode([image], anchor)
        ids = enc["input_ids"][0].tolist()
        q = self.tokenizer.encode(anchor, add_special_tokens=False)
        for start in range(len(ids) - len(q), -1, -1):
            if ids[start:start + len(q)] == q:
                return enc, start, start + len(q)
        raise RuntimeError(f"vlm: cannot find the question tokens in the chat template output of "
                           f"{type(self.processor).__name__}; this model's template is not supported")

    def _splice(self, tpl: tuple[dict, int, int], text: str) -> dict:
        enc, a, b = tpl
        q = self.tokenizer.encode(text, add_special_tokens=False)
        n = enc["input_ids"].shape[1]
        row = {}
        for k, v in enc.items():
            if hasattr(v, "shape") and tuple(v.shape) == (1, n):  # token-aligned: ids, mask, type ids
                seq = v[0].tolist()
                fill = 1 if k == "attention_mask" else (seq[a] if k != "input_ids" else None)
                mid = q if k == "input_ids" else [fill] * len(q)
                row[k] = seq[:a] + mid + seq[b:]
            else:
                row[k] = v
        return row

    def _collate(self, rows: list[dict]) -> dict:
        import torch

        longest = max(len(r["input_ids"]) for r in rows)
        batch: dict[str, Any] = {}
        for k in rows[0]:
            vals = [r[k] for r in rows]
            if isinstance(vals[0], list):  # left pad
                pad = self.pad_id if k == "input_ids" else 0
                batch[k] = torch.tensor([[pad] * (longest - len(v)) + v if self.pad_left else
                                         v + [pad] * (longest - len(v)) for v in vals])
            elif vals[0].dim() >= 3 and vals[0].shape[0] == 1:  # (1, crops, ...): pad crops with zeros
                most = max(v.shape[1] for v in vals)
                padded = []
                for v in vals:
                    if v.shape[1] < most:
                        v = torch.cat([v, v.new_zeros((1, most - v.shape[1]) + tuple(v.shape[2:]))], dim=1)
                    padded.append(v)
                batch[k] = torch.cat(padded, dim=0)
            else:  # (patches, dim) or (images, 3): concatenated in row order
                batch[k] = torch.cat(vals, dim=0)
        return batch

    def _self_check(self, image, text: str, tpl) -> None:
        direct = self.encode([image], text)
        spliced = self._splice(tpl, text)
        for k, v in direct.items():
            if hasattr(v, "shape") and tuple(v.shape) == tuple(direct["input_ids"].shape):
                if v[0].tolist() != spliced[k]:
                    raise RuntimeError(f"vlm: spliced {k} differs from {type(self.processor).__name__}'s own for "
                                       f"{text!r}; this model's chat template is not supported")
        self._checked = True

    # -- scoring ------------------------------------------------------------------------------
    def probabilities(
        self, images: Sequence[Callable[[], Any]], questions: Sequence[Question],
        answers: Sequence[Sequence[str]],
    ) -> list[list[float]]:
        """P(answer group) for each question: the softmax at the last prompt position summed over
        the first-token id of each of the group's spellings (one forward pass per question, batched)."""
        import torch
        from PIL import Image

        groups = [self.first_token_ids(g) for g in answers]
        by_image: dict[int, list[int]] = {}
        for qi, q in enumerate(questions):
            by_image.setdefault(q.image, []).append(qi)
        out: list[list[float] | None] = [None] * len(questions)
        pending: list[tuple[int, dict]] = []

        def flush():
            if not pending:
                return
            batch = {k: v.to(self.device) for k, v in self._collate([r for _, r in pending]).items()}
            if "pixel_values" in batch:
                batch["pixel_values"] = batch["pixel_values"].to(self.dtype)
            # only the last position's logits (a (B, L, vocab) tensor is ~0.7 GB at B 8 for Qwen's
            # 152k vocabulary), and no KV cache: nothing is generated
            with torch.inference_mode():
                logits = apply_repetition_penalty(self._last_logits(batch), batch["input_ids"],
                                                  batch["attention_mask"], self.repetition_penalty)
                probs = torch.softmax(logits, dim=-1).cpu()
            for j, (qi, _) in enumerate(pending):
                out[qi] = [float(probs[j, g].sum()) for g in groups]
            self.counts["forwards"] += 1
            self.counts["questions"] += len(pending)
            pending.clear()

        for im, qis in by_image.items():
            arr = images[im]()
            pil = arr if isinstance(arr, Image.Image) else Image.fromarray(arr).convert("RGB")
            tpl = self._image_template(pil, questions[qis[0]].text)
            self.counts["images"] += 1
            if not self._checked and len(qis) > 1:
                self._self_check(pil, questions[qis[1]].text, tpl)
            for qi in qis:
                pending.append((qi, self._splice(tpl, questions[qi].text)))
                if len(pending) >= self.batch_size:
                    flush()
        flush()
        return out  # type: ignore[return-value]
