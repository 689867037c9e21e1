"""Hand-made per-sample scores shaped like the seed's evaluation, and run directories built from
them through the real aggregation (relbench.results.aggregate.summarise), for the baseline, compare and
gate tests.

160 triples x 3 seeds = 480 cases. Per case the four CLIP scores are set so that

* img_pos prefers p+ in ``pos_right`` cases (margin +0.5) and p- in the rest (a negative margin
  chosen so the mean margin is ``pos_margin``); img_neg likewise with ``neg_right`` and
  ``neg_margin``;
* S(img_pos, p+) averages exactly ``pos_correct`` (a zero-mean pattern around it);

so clip_alignment_acc = (pos_right + neg_right) / 960. The seed's figures: pos_right 230,
neg_right 244 -> 474 / 960 = 0.49375 (reported as 0.494; 237/480 read as one comparison per
case gives the same 0.49375), margins -0.022 / 0.059, S(img_pos, p+) 12.97, S(img_pos, p-)
12.97 + 0.022 = 12.992 (reported 12.99). pair_mse = 8613.70 + 5267.92 z with z a zero-mean,
unit-(population)-std pattern, so mse_mean / mse_std come out as 8613.70 / 5267.92.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from relbench.metrics.clip_alignment import ClipAlignment, alignment_from_scores
from relbench.metrics.pair_mse import PairMSE
from relbench.plugin.context import Context
from relbench.spec.predicates import load_vocabulary

N_TRIPLES, N_SEEDS = 160, 3
N = N_TRIPLES * N_SEEDS
PREDICATES = ("above", "on", "riding", "holding")
_PATTERN = (-1.5, -0.5, 0.5, 1.5)  # zero mean
_Z = tuple(v / (sum(x * x for x in _PATTERN) / 4) ** 0.5 for v in _PATTERN)  # zero mean, unit std


def clip_scores(pos_right=230, neg_right=244, pos_margin=-0.022, neg_margin=0.059, pos_correct=12.97):
    """[(S(img_pos,p+), S(img_pos,p-), S(img_neg,p-), S(img_neg,p+))] for the 480 cases."""
    up = 0.5
    pos_down = (pos_right * up - pos_margin * N) / (N - pos_right)
    neg_down = (neg_right * up - neg_margin * N) / (N - neg_right)
    out = []
    for i in range(N):
        # spread the right cases over triples: 7 and 11 are coprime with 480, so these are permutations
        pm = up if (i * 7) % N < pos_right else -pos_down
        nm = up if (i * 11) % N < neg_right else -neg_down
        pc = pos_correct + 0.3 * _PATTERN[i % 4]
        nc = 13.0 + 0.3 * _PATTERN[(i + 1) % 4]
        out.append((pc, pc - pm, nc, nc - nm))
    return out


def mse_values(mean=8613.70, std=5267.92):
    return [mean + std * _Z[i % 4] for i in range(N)]


def case_rows(run: str, scores, mses) -> list[dict]:
    rows = []
    for i, ((pc, pw, nc, nw), mse) in enumerate(zip(scores, mses)):
        t, s = divmod(i, N_SEEDS)
        pred = PREDICATES[t % len(PREDICATES)]
        rows.append({
            "run": run, "case_id": f"t{t:03d}-s{s}", "item_id": f"t{t:03d}", "seed": s,
            "negative_kind": "swap" if t % 2 == 0 else "replace", "predicate": pred, "neg_predicate": pred,
            "subject": "dog", "object": "horse", "graph_pos": f"dog {pred} horse", "graph_neg": f"horse {pred} dog",
            "prompt_pos": f"a photo of a dog {pred} a horse", "prompt_neg": f"a photo of a horse {pred} a dog",
            "image_pos": "", "image_neg": "",
            **alignment_from_scores(pc, pw, nc, nw), "pair_mse": mse,
        })
    return rows


def metric_info() -> dict:
    from relbench.engine.plan import MetricInfo

    ctx = Context(vocab=load_vocabulary())
    return {m.name: MetricInfo(f"fp-{m.name}", {}, m.columns(), m.aggregates(), [], sorted(m.consumes))
            for m in (ClipAlignment(ClipAlignment.Args(), ctx), PairMSE(PairMSE.Args(), ctx))}


def summarise_rows(runs: dict[str, list[dict]], out: Path, resamples: int = 2000) -> dict:
    """summary.json for ``runs`` through relbench.results.aggregate.summarise (the real aggregation)."""
    from relbench.results.aggregate import summarise

    bench = SimpleNamespace(name="seed-fixture", suite=SimpleNamespace(kind="jsonl"), seeds=list(range(N_SEEDS)),
                            bootstrap_resamples=resamples, bootstrap_seed=0)
    first = next(iter(runs.values()))
    cases = [SimpleNamespace(item_id=r["item_id"]) for r in first]
    plan = SimpleNamespace(bench=bench, out=out, cases=cases)
    collected = SimpleNamespace(runs=[SimpleNamespace(name=n, info={"generator": "fixture", "prompt_mode": "relation",
                                                                    "fingerprint": f"fp-{n}"}) for n in runs],
                                metrics=metric_info())
    rows = [r for rs in runs.values() for r in rs]
    return summarise(plan, collected, (None, rows))


def write_run_dir(out: Path, runs: dict[str, list[dict]], resamples: int = 2000) -> Path:
    """A run directory (summary.json, samples.csv, manifest.json) for hand-made rows."""
    from relbench.results.write import BASE_COLUMNS, write_samples_csv

    out.mkdir(parents=True, exist_ok=True)
    info = metric_info()
    columns = BASE_COLUMNS + [c for m in info.values() for c in m.columns]
    write_samples_csv(out / "samples.csv", columns, [r for rs in runs.values() for r in rs])
    (out / "summary.json").write_text(json.dumps(summarise_rows(runs, out, resamples), indent=2))
    (out / "manifest.json").write_text(json.dumps({
        "config": {"name": "seed-fixture"}, "seeds": list(range(N_SEEDS)),
        "metrics": {name: {"args": m.args} for name, m in info.items()}}, indent=2))
    return out
