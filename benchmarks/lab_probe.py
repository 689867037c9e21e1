"""How often a lab base draws both prompted objects, by sampling steps: the quick probe behind
the recipe's pretraining length and sampling steps (docs/lab-notebook.md, round 5). Measured, never
asserted.

    python benchmarks/lab_probe.py BASE [BASE ...] [--n 96] [--seeds 0,1] [--steps 4,8] [--split heldout|train] \
        [--json-lines benchmarks/results/lab_probe.jsonl]

For each base, steps and prompt mode: the share of images where the shapes_snap detector finds
both objects, and the relation accuracy given both found, over the first N held-out triples
(relbench.lab.suites.split_triples) at each seed. One generator per seed draws the whole batch,
so every prompt gets its own noise.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bases", nargs="+")
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", default="4,8")
    # the base was pretrained on every triple of its world, so its drawing can be probed on the
    # arms' training triples: a recipe chosen there is not chosen on the lab's test prompts
    ap.add_argument("--split", choices=("heldout", "train"), default="heldout",
                    help="which triples: the held-out ones (val/test are drawn from them) or the arms' training ones")
    ap.add_argument("--json-lines", help="append each result line here too")
    a = ap.parse_args()

    import numpy as np
    import torch
    from diffusers import FluxPipeline

    from relbench.lab.base import T5_LEN
    from relbench.lab.suites import split_triples
    from relbench.spec.predicates import load_vocabulary
    from relbench.spec.prompts import neutral_prompt, relation_prompt
    from relbench.shapes.detect import detect_objects_snapped
    from relbench.spec.spatial_rules import relation_holds

    vocab = load_vocabulary()
    triples = split_triples(0)[0 if a.split == "train" else 1][: a.n]
    seeds = [int(s) for s in a.seeds.split(",")]
    for base in a.bases:
        pipe = FluxPipeline.from_pretrained(base, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        for steps in [int(s) for s in a.steps.split(",")]:
            for mode, build in (("relation", relation_prompt), ("neutral", neutral_prompt)):
                prompts = [build((t,), vocab) for t in triples]
                found = right = 0
                for seed in seeds:
                    with torch.no_grad():
                        imgs = pipe(prompts, num_inference_steps=steps, guidance_scale=0.0, height=32, width=32,
                                    max_sequence_length=T5_LEN, generator=torch.Generator().manual_seed(seed),
                                    output_type="np").images
                    for t, im in zip(triples, (imgs * 255).round().astype(np.uint8)):
                        d = detect_objects_snapped(im, [t.subject, t.object])
                        if d[t.subject] and d[t.object]:
                            found += 1
                            right += bool(relation_holds("relbench", t.predicate, d[t.subject][0], d[t.object][0]))
                n = len(triples) * len(seeds)
                rec = {"base": base, "split": a.split, "steps": steps, "mode": mode, "n": n, "both_found": round(found / n, 3),
                       "acc_given_found": round(right / max(found, 1), 3)}
                print(json.dumps(rec), flush=True)
                if a.json_lines:
                    from record import append_jsonl

                    append_jsonl(a.json_lines, rec, device="cpu")


if __name__ == "__main__":
    main()
