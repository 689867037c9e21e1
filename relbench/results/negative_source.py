"""Reading the run a benchmark's hard and adversarial negatives come from (``negatives.confusion``).

Hard negatives read the run's confusion matrix (summary.json, runs.<run>.confusion.<judge>);
adversarial ones read its per-sample judge output (samples.csv): for ``spatial`` the boxes
detected in each img_pos (``pos_boxes``), judged for the candidate under the run's first rule
set; for ``vlm_judge`` its VQAScore of img_pos against the case's g- (``vlm_pos_wrong``), so
only candidates that run used as some case's g- can be chosen. Every check is one UserError
line naming the key, before any model loads.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

from relbench.errors import UserError
from relbench.results.read import load_run_dir
from relbench.spec.negatives import NegativeSource

#: the samples.csv column each judge's adversarial score is read from
SCORE_COLUMNS = {"spatial": "pos_boxes", "vlm_judge": "vlm_pos_wrong"}


def load_negative_source(spec, where: str = "negatives") -> NegativeSource | None:
    """The source of ``spec`` (a NegativeSourceSpec), or None when it names no run directory.

    ``where`` is the config location the messages start with ("benchmark.yaml:7: negatives")."""
    if spec.confusion is None:
        return None
    key = f"{where}.confusion"
    try:
        rd = load_run_dir(spec.confusion, human=False)
    except UserError as exc:
        raise UserError(f"{key}: {exc}") from None
    runs = rd.summary["runs"]
    if spec.run is not None:
        if spec.run not in runs:
            raise UserError(f"{where}.run: {spec.run!r} is no run of {rd.path} (runs: {', '.join(runs)})")
        run = spec.run
    else:
        own = [n for n, info in runs.items() if not info.get("is_reference")]
        if not own:
            raise UserError(f"{key}: {rd.path} holds only the reference run; hard negatives come from a generator's run")
        run = own[0]
    identity = {"run_dir": str(spec.confusion), "run": run, "judge": spec.judge,
                "summary_sha256": hashlib.sha256((rd.path / "summary.json").read_bytes()).hexdigest(),
                "fingerprint": runs[run].get("fingerprint") or (rd.manifest.get("runs") or {}).get(run, {}).get("fingerprint")}
    seen = _confusion_rows(runs[run], run, spec.judge, f"{key}: {rd.path}/summary.json") if "hard" in spec.kinds else {}
    score = _scorer(rd, run, spec.judge, key) if "adversarial" in spec.kinds else None
    return NegativeSource(seen, score, identity)


def _confusion_rows(info: dict, run: str, judge: str, where: str) -> dict[str, dict[str, float]]:
    judges = info.get("confusion") if isinstance(info.get("confusion"), dict) else {}
    section = judges.get(judge)
    if not isinstance(section, dict):
        have = sorted(judges)
        raise UserError(f"{where}: run {run!r} has no confusion matrix from judge {judge!r} "
                        f"(runs.{run}.confusion.{judge}; judges there: {', '.join(have) or 'none'})")
    rows = section.get("rows")
    if not isinstance(rows, dict):
        raise UserError(f"{where}: runs.{run}.confusion.{judge}.rows must be a mapping of asked predicate to its row")
    out = {}
    for asked, row in rows.items():
        shares = row.get("seen") if isinstance(row, dict) else None
        if not isinstance(shares, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in shares.values()):
            raise UserError(f"{where}: runs.{run}.confusion.{judge}.rows.{asked}.seen must map predicates to shares")
        out[asked] = {p: float(v) for p, v in shares.items()}
    return out


def _scorer(rd, run: str, judge: str, key: str):
    column = SCORE_COLUMNS[judge]
    rows = [r for r in rd.rows if r.get("run") == run]
    if column not in rd.columns:
        raise UserError(f"{key}: {rd.path}/samples.csv has no {column} column, which adversarial negatives "
                        f"read for judge {judge} (score that run with the {judge} metric)")
    if judge == "vlm_judge":
        return _vlm_scorer(rows, column)
    args = ((rd.manifest.get("metrics") or {}).get("spatial") or {}).get("args") or {}
    rule = args.get("rule_set") or "relbench"
    return _spatial_scorer(rows, rule if isinstance(rule, str) else rule[0], f"{key}: {rd.path}/samples.csv")


def _vlm_scorer(rows: list[dict], column: str):
    """Mean over the item's seeds of the judge's score of img_pos against that g-."""
    got: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if isinstance(r.get(column), float):
            got[(r["item_id"], r["graph_neg"])].append(r[column])

    def score(item_id, pos, neg):
        values = got.get((item_id, "; ".join(t.text() for t in neg)))
        return sum(values) / len(values) if values else None

    return score


def _spatial_scorer(rows: list[dict], rule: str, where: str):
    """Share of the item's img_pos (each image once) whose detected boxes satisfy g-'s changed
    triple under ``rule``; None where an object was not found or the rule set cannot judge it."""
    from relbench.spec.spatial_rules import relation_holds

    boxes: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if r.get("pos_boxes"):
            try:
                boxes[r["item_id"]][r.get("image_pos") or r["case_id"]] = json.loads(r["pos_boxes"])
            except (TypeError, ValueError):
                raise UserError(f"{where}: case {r['case_id']}: pos_boxes is not JSON") from None

    def score(item_id, pos, neg):
        changed = [t for p, t in zip(pos, neg) if p != t] or [neg[0]]
        t = changed[0]
        verdicts = []
        for dets in boxes.get(item_id, {}).values():
            if t.subject not in dets or t.object not in dets:
                continue
            v = relation_holds(rule, t.predicate, dets[t.subject][:4], dets[t.object][:4])
            if v is not None:
                verdicts.append(float(v))
        return sum(verdicts) / len(verdicts) if verdicts else None

    return score


def read_for(bench, source: str = "benchmark.yaml", lines: dict | None = None) -> NegativeSource | None:
    """The source a parsed benchmark's ``negatives`` names, messages located in its file (for
    ``relbench.engine.plan.plan(..., negative_source=)``)."""
    from relbench.spec.config import locate

    return load_negative_source(bench.negatives, f"{locate(source, lines, ('negatives', 'confusion'))}: negatives")
