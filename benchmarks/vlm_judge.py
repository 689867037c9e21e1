"""vlm_judge speed and exactness against GenEval 2's loop, and the memory of an 8B judge.

GenEval 2's evaluation.py scores each question with its own processor call and
generate(max_new_tokens=1, do_sample=False, output_scores=True), reading the softmax of the first
step's scores, with the model's own generation_config (its repetition_penalty applies).
relbench preprocesses each image once, batches (image, question) pairs with left padding and
reads the last position of one forward pass, applying that penalty itself
(relbench.models.vlm). On the same tiny random model (built locally, with an answer head that
depends on the input; Qwen2.5-VL with Qwen2.5-VL-Instruct's penalty 1.05), in float32 and in
bfloat16 on CPU, this prints the largest |difference| in probability against that loop (goal
<= 1e-5 in float32), between batch 1 and batch N (goal <= 1e-3 in bfloat16), a right-padding
control that must differ (it reads a pad token's logits), and the images/s of both (goal >= 5x
at batch 8). Times include the processor and the model calls.

The memory of Qwen3-VL-8B-Instruct in bf16 is computed from its config shape: the parameters
are counted exactly on the meta device (no weights), x 2 bytes; activations for one batch are
estimated from the shapes (see activation_bytes). With --gpu and a CUDA device it also measures
the tiny model's peak memory... only a real 8B checkpoint would give a measured figure.

    python benchmarks/vlm_judge.py --images 8 --questions 4 --batch 8 --json benchmarks/results/vlm_judge.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relbench.models.vlm import VLM, Question  # noqa: E402
from relbench.testing.models.vlm import FAMILIES, geneval2_probabilities, make_tiny_vlm  # noqa: E402

YES_NO = (("Yes", "yes", " Yes", " yes"), ("No", "no", " No", " no"))
QUESTIONS = [
    'Does this image show "a dog riding a horse"? Answer the question with Yes or No.',
    'Does this image show "a horse riding a dog"? Answer the question with Yes or No.',
    "Is there a dog in the image? Answer in one word.",
    "Is the dog riding the horse? Answer in one word.",
    "Is there a horse in the image? Answer in one word.",
    "Is the horse riding the dog? Answer in one word.",
]

# Qwen/Qwen3-VL-8B-Instruct config.json (the shapes that matter for memory)
QWEN3_VL_8B = dict(
    text_config=dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=False,
                     rope_scaling={"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": True}),
    vision_config=dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=4096,
                       patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                       deepstack_visual_indexes=[8, 16, 24]),
    tie_word_embeddings=False,
)


def timed(fn, repeats: int):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def compare(family: str, directory: Path, n_images: int, n_questions: int, batch: int, size: int, repeats: int,
            dtype: str) -> dict:
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from relbench.models.vlm import config_repetition_penalty

    path = make_tiny_vlm(family, directory / family)
    rng = np.random.RandomState(0)
    arrays = [rng.randint(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n_images)]
    questions = QUESTIONS[:n_questions]
    dt = getattr(torch, dtype)
    # evaluation.py loads with dtype="auto"; here the dtype is forced so both sides run the same one
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=dt).eval()
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    penalty = config_repetition_penalty(Path(path))

    def geneval2():  # the model's own generation_config, penalty included, as evaluation.py
        return [geneval2_probabilities(model, processor, Image.fromarray(a), q, YES_NO) for a in arrays for q in questions]

    def judge(b, pad_left=True):
        vlm = VLM(Path(path), "cpu", dt, b, penalty)
        vlm.pad_left = pad_left
        return vlm

    vlm = judge(batch)
    items = [Question(i, q) for i in range(n_images) for q in questions]
    loads = [lambda a=a: a for a in arrays]

    def relbench(v=vlm):
        return v.probabilities(loads, items, YES_NO)

    relbench()  # warm-up (and the splice self-check)
    t_ref, ref = timed(geneval2, repeats)
    t_ours, ours = timed(relbench, repeats)
    diff = lambda x, y: max(abs(a - b) for r, o in zip(x, y) for a, b in zip(r, o))  # noqa: E731
    # the classic bug, as a control that must differ: right padding reads a pad token's logits
    right = judge(batch, pad_left=False).probabilities(loads, items, YES_NO)
    p_yes = [r[0] for r in ref]
    return {
        "family": family, "dtype": dtype, "images": n_images, "questions_per_image": n_questions, "batch": batch,
        "image_px": size, "repetition_penalty": penalty, "p_yes_min": min(p_yes), "p_yes_max": max(p_yes),
        "max_abs_diff": diff(ref, ours), "batch1_vs_batch_max_abs_diff": diff(judge(1).probabilities(loads, items, YES_NO), ours),
        "right_padding_max_abs_diff": diff(right, ours), "geneval2_images_per_s": n_images / t_ref,
        "relbench_images_per_s": n_images / t_ours, "speedup": t_ref / t_ours,
    }


def activation_bytes(cfg: dict, batch: int, image_px: int, text_tokens: int = 40) -> dict:
    """Peak activations of one forward with use_cache=False and logits_to_keep=1 (bf16).

    Text: the largest live tensors of one decoder layer, hidden (B, L, h) x ~4 (residual, normed,
    attention output, q/k/v) plus the MLP's gate/up (B, L, 2 x intermediate); the final logits are
    (B, 1, vocab) in fp32. Vision: one image's patches through one block, (P, hv) x ~4 +
    (P, intermediate_v), for the B images of the batch. Attention uses SDPA (no L x L matrix
    materialised on GPU kernels; on the math fallback add B x heads x L^2 x 2 bytes).
    """
    t, v = cfg["text_config"], cfg["vision_config"]
    patches = (image_px // v["patch_size"]) ** 2
    image_tokens = patches // v["spatial_merge_size"] ** 2
    seq = image_tokens + text_tokens
    text = batch * seq * (4 * t["hidden_size"] + 2 * t["intermediate_size"]) * 2
    vision = batch * patches * (4 * v["hidden_size"] + v["intermediate_size"]) * 2
    logits = batch * t["vocab_size"] * 4
    return {"sequence_tokens": seq, "image_tokens": image_tokens, "bytes": text + vision + logits}


def memory_8b(batch: int, image_px: int) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText, Qwen3VLConfig

    config = Qwen3VLConfig(**QWEN3_VL_8B)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    act = activation_bytes(QWEN3_VL_8B, batch, image_px)
    return {
        "model": "Qwen3-VL-8B-Instruct (config shape)", "parameters": params,
        "weights_bf16_gib": params * 2 / 2**30, "batch": batch, "image_px": image_px,
        "activations_gib_estimate": act["bytes"] / 2**30, "sequence_tokens": act["sequence_tokens"],
        "total_gib_estimate": (params * 2 + act["bytes"]) / 2**30,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--questions", type=int, default=4, choices=range(1, len(QUESTIONS) + 1))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--repeats", type=int, default=3, help="best of N timings")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    result = {"torch_threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
              "comparisons": [], "memory_8b": []}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "bfloat16"):
            for family in args.families.split(","):
                r = compare(family, Path(tmp), args.images, args.questions, args.batch, args.size, args.repeats, dtype)
                result["comparisons"].append(r)
                print(f"{family:11s} {dtype:8s} {args.images} images x {args.questions} questions, batch {args.batch}, "
                      f"penalty {r['repetition_penalty']:g}, P(yes) {r['p_yes_min']:.3g}-{r['p_yes_max']:.3g}: "
                      f"max |dP| vs GenEval 2 {r['max_abs_diff']:.1e}, batch 1 vs {args.batch} "
                      f"{r['batch1_vs_batch_max_abs_diff']:.1e}, right padding (control) "
                      f"{r['right_padding_max_abs_diff']:.2f}; GenEval 2 loop {r['geneval2_images_per_s']:.1f} "
                      f"img/s, relbench {r['relbench_images_per_s']:.1f} img/s -> {r['speedup']:.1f}x")
    for px in (512, 1024):
        m = memory_8b(args.batch, px)
        result["memory_8b"].append(m)
        print(f"Qwen3-VL-8B bf16: {m['parameters'] / 1e9:.2f}B params = {m['weights_bf16_gib']:.1f} GiB weights; "
              f"batch {args.batch} at {px}px ({m['sequence_tokens']} tokens/question): activations ~"
              f"{m['activations_gib_estimate']:.2f} GiB -> ~{m['total_gib_estimate']:.1f} GiB")
    if args.json:
        from record import write_json

        write_json(args.json, result, device="cpu")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
