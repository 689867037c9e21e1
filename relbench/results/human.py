"""People as a judge: RUN_DIR/human/*.jsonl -> the ``human`` aggregates and a meta-evaluation.

Computed whenever a run directory is read (``relbench.results.read.load_run_dir``, which every
front end uses: terminal, `compare`, the report, the notebook API) and never written into
summary.json: a reader that wrote it would race the run writing the same directory, and a
stored copy goes stale when answers arrive. What a reader sees:

- ``runs[run].metrics / by_predicate / by_negative_kind``: ``human_acc`` and friends, with the
  same cluster-bootstrap intervals over triples as every other aggregate and chance 0.5. A
  judgment scores 1 when the caption of the image's own graph was chosen (img_pos: g+, img_neg:
  g-), 0 for the other caption and 0.5 for "can't tell" (as a CLIP tie). The reference run's
  ``human_acc`` is the human ceiling on the suite's own images.
- ``human``: per annotator the attention check (accuracy on reference images) and consistency
  (same answer to a repeated item), inter-annotator agreement (Krippendorff's alpha, nominal,
  "can't tell" as no rating, interval from a bootstrap over triples), and for every automatic
  judge its agreement with the human majority per image (share and Cohen's kappa with
  intervals, relbench.stats.agreement), overall and per predicate.

Repeated items count only for consistency, never twice in an aggregate; an annotator's answer
to an item counts once (the latest stands, relbench.results.answers.effective).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from relbench.results.answers import Answer, all_answers
from relbench.results.format import estimate_text, text_table

VERSION = 1
CHANCE = 0.5
#: human aggregates: key -> (which judgments, what it holds)
AGGREGATES = {
    "human_acc": "people choose the caption of the image's own graph (img_pos: g+, img_neg: g-; can't tell 0.5)",
    "human_pos_acc": "img_pos: people choose g+ over g- (can't tell 0.5)",
    "human_neg_acc": "img_neg: people choose g- over g+ (can't tell 0.5)",
    "human_majority_acc": "per image, the plurality of people's answers is right (tie or can't tell 0.5)",
    "human_cant_tell": "share of answers 'can't tell'",
}


@dataclass(frozen=True)
class Judgment:
    """One person's verdict on one image: 1 right, 0 wrong, 0.5 can't tell."""

    annotator: str
    image: tuple[str, str, str, str]  # (run, case id, side, image key)
    item_id: str
    predicate: str
    negative_kind: str
    score: float


def judgments(answers: list[Answer]) -> list[Judgment]:
    """Caption answers only: a predicate question has another chance level (its answers make the
    human confusion matrix, human_confusion)."""
    return [Judgment(a.annotator, (a.run, a.case_id, a.side, a.image_key), a.item_id, a.predicate,
                     a.negative_kind, 0.5 if a.correct is None else a.correct)
            for a in answers if a.kind != "repeat" and a.question == "caption"]


def human_confusion(answers: list[Answer], runs: dict, resamples: int, seed: int) -> dict[str, dict]:
    """run -> the human confusion matrix from predicate questions (relbench.results.confusion):
    each person's answer to an img_pos is one judged image, the predicate chosen its one seen
    predicate; "can't tell" is not judged. Candidates: every option the questions offered."""
    from relbench.results.confusion import run_confusions
    from relbench.spec.predicates import load_vocabulary

    asked = [a for a in answers if a.question == "predicate" and a.kind != "repeat"]
    if not asked:
        return {}
    offered = {p for a in asked for p in a.choices}
    names = load_vocabulary().names()
    spec = {"judge": "human", "column": "human_seen", "judged": "human_seen_n", "encoding": "set",
            "predicates": [p for p in names if p in offered] + sorted(offered - set(names))}
    rows: dict[str, list[dict]] = {}
    for a in asked:
        rows.setdefault(a.run, []).append({"run": a.run, "case_id": a.case_id, "item_id": a.item_id,
                                           "predicate": a.predicate, "human_seen": a.seen,
                                           "human_seen_n": None if a.seen is None else 1.0})
    reference = next((n for n, r in runs.items() if r.get("is_reference")), None)
    return {run: m["human"] for run, m in run_confusions(rows, [spec], reference, resamples, seed).items()
            if m.get("human")}


def majority(scores: list[float]) -> float:
    """Plurality of {right, wrong, can't tell}; a tie, or a plurality of can't tell, is 0.5."""
    top = Counter(scores).most_common()
    if len(top) > 1 and top[0][1] == top[1][1]:
        return 0.5
    return top[0][0]


def majorities(js: list[Judgment]) -> dict[tuple, tuple[float, Judgment]]:
    by_image: dict[tuple, list[Judgment]] = {}
    for j in js:
        by_image.setdefault(j.image, []).append(j)
    return {img: (majority([j.score for j in group]), group[0]) for img, group in by_image.items()}


# ---------------------------------------------------------------------------------------------
# aggregates


def _aggregates(js: list[Judgment], resamples: int, seed: int) -> dict[str, dict]:
    """Every human aggregate over these judgments, each bootstrapped over its own rows (a
    column that is empty in some resamples would leave its interval undefined)."""
    from relbench.stats.bootstrap import cluster_bootstrap

    maj = list(majorities(js).values())
    columns = {
        "human_acc": [(j.score, j.item_id) for j in js],
        "human_pos_acc": [(j.score, j.item_id) for j in js if j.image[2] == "pos"],
        "human_neg_acc": [(j.score, j.item_id) for j in js if j.image[2] == "neg"],
        "human_majority_acc": [(m, j.item_id) for m, j in maj],
        "human_cant_tell": [(float(j.score == 0.5), j.item_id) for j in js],
    }
    out = {}
    for key, pairs in columns.items():
        if not pairs:
            continue
        e = cluster_bootstrap([v for v, _ in pairs], [t for _, t in pairs], "mean", resamples, seed)
        e["chance"] = None if key == "human_cant_tell" else CHANCE
        e["metric"] = "human"
        e["higher_is_better"] = None if key == "human_cant_tell" else True
        out[key] = e
    return out


def _annotators(answers: list[Answer]) -> dict[str, dict]:
    """Attention check (references) and consistency (repeats) per annotator."""
    out = {}
    for name in sorted({a.annotator for a in answers}):
        mine = [a for a in answers if a.annotator == name]
        by_item = {a.item: a for a in mine}
        refs = [0.5 if a.correct is None else a.correct for a in mine if a.kind == "reference"]
        pairs = [(a, by_item[a.copy_of]) for a in mine if a.kind == "repeat" and a.copy_of in by_item]
        out[name] = {
            "answers": len(mine),
            "cant_tell": round(sum(a.answer == "cant_tell" for a in mine) / len(mine), 10),
            "attention": {"n": len(refs), "accuracy": round(sum(refs) / len(refs), 10) if refs else None},
            "consistency": {"n": len(pairs),
                            "same": round(sum((a.answer, a.seen) == (b.answer, b.seen) for a, b in pairs) / len(pairs), 10)
                            if pairs else None},
        }
    return out


def inter_annotator(js: list[Judgment], resamples: int = 1000, seed: int = 0) -> dict:
    """Krippendorff's alpha (nominal) over images rated by two or more people; can't tell = no rating."""
    import numpy as np

    names = sorted({j.annotator for j in js})
    decided = [j for j in js if j.score != 0.5]
    per_image: dict[tuple, dict[str, float]] = {}
    tri: dict[tuple, str] = {}
    for j in decided:
        per_image.setdefault(j.image, {})[j.annotator] = j.score
        tri[j.image] = j.item_id
    images = [img for img, r in per_image.items() if len(r) >= 2]
    out = {"measure": "krippendorff_alpha", "level": "nominal", "cant_tell": "no rating", "annotators": len(names),
           "items": len(images), "value": None, "ci_low": None, "ci_high": None}
    if len(names) < 2 or len(images) < 2:
        out["note"] = "needs two or more annotators on two or more of the same images"
        return out
    data = np.array([[per_image[img].get(n, np.nan) for img in images] for n in names], dtype=float)

    def alpha(cols) -> float | None:
        import krippendorff

        sub = data[:, cols]
        if len(np.unique(sub[~np.isnan(sub)])) < 2:
            return None  # one value everywhere: alpha undefined (no variation to agree on)
        return float(krippendorff.alpha(reliability_data=sub, level_of_measurement="nominal"))

    value = alpha(np.arange(len(images)))
    out["value"] = None if value is None else round(value, 10)
    if value is None:
        out["note"] = "every rating is the same: alpha is undefined"
        return out
    groups: dict[str, list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(tri[img], []).append(i)
    members = list(groups.values())
    if len(members) >= 2:
        rng = np.random.default_rng(seed)
        boot = []
        for _ in range(resamples):
            pick = rng.integers(0, len(members), len(members))
            a = alpha(np.concatenate([members[p] for p in pick]))
            if a is not None:
                boot.append(a)
        if boot:
            out["ci_low"], out["ci_high"] = (round(float(v), 10) for v in np.percentile(boot, [2.5, 97.5]))
            out["resamples_defined"] = len(boot)
    return out


# ---------------------------------------------------------------------------------------------
# automatic judges vs the human majority


def judge_columns(specs: dict, summary: dict) -> dict[str, dict]:
    """Automatic judges with a per-image verdict: aggregate pairs ``X_pos_acc`` / ``X_neg_acc``
    (clip_alignment: clip_pos_acc; spatial: pos_uncond; a VLM judge named the same way)."""
    metric_of = {k: e.get("metric") for r in (summary.get("runs") or {}).values() for k, e in (r.get("metrics") or {}).items()}
    out = {}
    for key, spec in specs.items():
        if spec is None or not key.endswith("_pos_acc") or key.startswith("human"):
            continue
        neg = specs.get(key[: -len("_pos_acc")] + "_neg_acc")
        if neg is None:
            continue
        out[key[: -len("_pos_acc")]] = {"metric": metric_of.get(key), "pos": spec.column, "neg": neg.column}
    return out


def judges_vs_humans(js: list[Judgment], rows: list[dict], judges: dict[str, dict], resamples: int, seed: int) -> dict:
    """Per judge: agreement of its verdict (1 / 0 / 0.5 tie / None) with the human majority."""
    from relbench.stats.agreement import agreement_by_predicate

    maj = majorities(js)
    row_of = {(r["run"], r["case_id"]): r for r in rows}
    out = {}
    for name, info in judges.items():
        items = []
        for (run, case_id, side, _), (m, j) in maj.items():
            row = row_of.get((run, case_id))
            v = None if row is None else row.get(info[side])
            items.append((v if isinstance(v, float) else None, m, j))
        out[name] = {"metric": info["metric"], "columns": [info["pos"], info["neg"]],
                     **agreement_by_predicate([v for v, _, _ in items], [m for _, m, _ in items],
                                              [j.item_id for _, _, j in items], [j.predicate for _, _, j in items],
                                              resamples=resamples, seed=seed)}
    return out


# ---------------------------------------------------------------------------------------------
# the run directory as read


def _strip(summary: dict) -> None:
    """Remove a human section an older relbench wrote into summary.json (it may be stale)."""
    summary.pop("human", None)
    (summary.get("metrics") or {}).pop("human", None)
    for run in (summary.get("runs") or {}).values():
        (run.get("confusion") or {}).pop("human", None)
        for group in [run.get("metrics") or {}] + list((run.get("by_predicate") or {}).values()) + \
                list((run.get("by_negative_kind") or {}).values()):
            for k in [k for k in group if k in AGGREGATES]:
                del group[k]


def add_human(rd):
    """The RunDir with its summary's human parts computed from RUN_DIR/human/*.jsonl (none when
    nobody answered); nothing is written."""
    import warnings

    with warnings.catch_warnings():  # scipy warns on a constant resample; the interval is then the point
        warnings.filterwarnings("ignore", message="The BCa confidence interval cannot be calculated")
        _add(rd)
    return rd


def _add(rd) -> None:
    summary = rd.summary
    _strip(summary)
    answers = all_answers(rd.path)
    if not answers:
        return
    cfg = rd.manifest.get("config") or {}
    resamples, seed = int(cfg.get("bootstrap_resamples", 2000)), int(cfg.get("bootstrap_seed", 0))
    js = judgments(answers)
    runs = summary.get("runs") or {}
    for name, matrix in human_confusion(answers, runs, resamples, seed).items():
        if name in runs:
            runs[name].setdefault("confusion", {})["human"] = matrix
    if not js:
        return
    counts = {}
    for name, run in runs.items():
        mine = [j for j in js if j.image[0] == name]
        if not mine:
            continue
        counts[name] = len(mine)
        run.setdefault("metrics", {}).update(_aggregates(mine, resamples, seed))
        for field, group in (("predicate", "by_predicate"), ("negative_kind", "by_negative_kind")):
            for value in sorted({getattr(j, field) for j in mine}):
                run.setdefault(group, {}).setdefault(value, {}).update(
                    _aggregates([j for j in mine if getattr(j, field) == value], resamples, seed))
    names = sorted({a.annotator for a in answers})
    summary.setdefault("metrics", {})["human"] = {
        "flags": [f"{len(js)} answers from {len(names)} annotator(s) on a sample of the images "
                  f"({', '.join(f'{k}: {v}' for k, v in counts.items())}); other judges' numbers cover every case"],
        "aggregates": dict(AGGREGATES),
    }
    ref = next((n for n, r in runs.items() if r.get("is_reference") and "human_acc" in r.get("metrics", {})), None)
    judges = judge_columns(rd.specs, summary)
    summary["human"] = {
        "protocol": "which caption (g+ or g-) matches the image? order randomised; can't tell allowed",
        "n_answers": len(js),
        "n_images": len(majorities(js)),
        "annotators": _annotators(answers),
        "ceiling": dict(runs[ref]["metrics"]["human_acc"], run=ref) if ref else None,
        "inter_annotator": inter_annotator(js, seed=seed),
        "judges": judges_vs_humans(js, rd.rows, judges, resamples, seed),
        "majority": "plurality of right / wrong / can't tell per image; a tie or can't tell is 'undecided' (0.5), "
                    "which agrees only with a judge's tie",
    }


def ceiling_text(c: dict) -> str:
    """The human ceiling with its n, and why it has no interval when it has none."""
    from relbench.stats.bootstrap import MIN_TRIPLES

    text = f"{estimate_text(c['value'], c['ci_low'], c['ci_high'], 3)} (n={c['n']})"
    if c.get("ci_low") is None and c.get("n_triples", 0) < MIN_TRIPLES:
        text += f"; no interval: {c.get('n_triples', 0)} triples, {MIN_TRIPLES} needed"
    return text


def format_human(section: dict | None) -> str:
    """The meta-evaluation for the terminal."""
    if not section:
        return "human judgments: none yet (relbench annotate RUN_DIR --annotator NAME)"
    lines = [f"human judgments: {section['n_answers']} answers on {section['n_images']} images by "
             f"{len(section['annotators'])} annotator(s)"]
    for name, a in section["annotators"].items():
        att, con = a["attention"], a["consistency"]
        lines.append(f"  {name}: {a['answers']} answers, can't tell {a['cant_tell']:.0%}; attention check "
                     + (f"{att['accuracy']:.3g} on {att['n']} references" if att["n"] else "n/a")
                     + "; consistency " + (f"{con['same']:.3g} on {con['n']} repeats" if con["n"] else "n/a"))
    ia = section["inter_annotator"]
    lines.append("  inter-annotator Krippendorff's alpha (nominal): "
                 + (f"{estimate_text(ia['value'], ia['ci_low'], ia['ci_high'], 3)} on {ia['items']} images"
                    if ia["value"] is not None else f"- ({ia.get('note', 'undefined')})"))
    c = section.get("ceiling")
    if c:
        lines.append(f"  human ceiling (reference images): {ceiling_text(c)}")
    body = []
    for name, j in section["judges"].items():
        o = j["overall"]
        body.append([name, str(o["n"]), estimate_text(o["share"], *o["share_ci"], 3), estimate_text(o["kappa"], *o["kappa_ci"], 3)])
    if body:
        lines.append("  automatic judges vs the human majority:")
        lines += ["    " + line for line in text_table(["judge", "n", "agreement", "Cohen's kappa"], body).split("\n")]
    return "\n".join(lines)


def _share_kappa(e: dict) -> dict:
    return {"n": e["n"],
            "share": estimate_text(e["share"], *e["share_ci"], 3), "kappa": estimate_text(e["kappa"], *e["kappa_ci"], 3)}


def report_rows(dirs) -> list[dict]:
    """The report's "Human judgments" section: display strings per run directory (RunDir list)."""
    out = []
    for d in dirs:
        sec = d.summary.get("human")
        if not sec:
            continue
        ia, c = sec["inter_annotator"], sec.get("ceiling")
        out.append({
            "path": str(d.path), "n_answers": sec["n_answers"], "n_images": sec["n_images"],
            "annotators": [{"name": n, "answers": a["answers"], "cant_tell": f"{a['cant_tell']:.0%}",
                            "attention": f"{a['attention']['accuracy']:.3g} (n={a['attention']['n']})" if a["attention"]["n"] else "–",
                            "consistency": f"{a['consistency']['same']:.3g} (n={a['consistency']['n']})" if a["consistency"]["n"] else "–"}
                           for n, a in sec["annotators"].items()],
            "alpha": (f"{estimate_text(ia['value'], ia['ci_low'], ia['ci_high'], 3)} on {ia['items']} images"
                      if ia["value"] is not None else f"– ({ia.get('note', 'undefined')})"),
            "ceiling": ceiling_text(c) if c else "–",
            "judges": [{"name": name, "metric": j["metric"], "overall": _share_kappa(j["overall"]),
                        "by_predicate": [{"predicate": p, **_share_kappa(e)} for p, e in j["by_predicate"].items()]}
                       for name, j in sec["judges"].items()],
        })
    return out
