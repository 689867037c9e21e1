"""Assemble a report's content from run directories and render it with Jinja2 (autoescape on).

Everything shown comes from the run directories' files (HELM/HEIM style): summary.json for the
aggregates and their intervals, samples.csv for paired tests and the gallery, manifest.json for
provenance. Nothing is recomputed that summary.json already holds.

Over 400 lines: one function per section of one page, all reading the same runs and specs;
the charts (charts.py), thumbnails (thumbs.py) and training curves (curves.py) are apart.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from relbench.stats.records import CHANCE_TEST, chance_test, versus_record
from relbench.results.read import Run, collect_runs, load_run_dir
from relbench.results.compare import compare_paired, declared_baselines, pairing_warning, shared_cases
from relbench.results.read import headline_keys
from relbench.results.format import number, p_text

#: the origin experiment's keys (the seed report's), always charted when present (besides
#: accuracies with a chance level)
ORIGIN_KEYS = ("clip_alignment_acc", "clip_pos_margin", "clip_neg_margin", "mse_mean")
#: per-case columns shown under gallery thumbnails, in this order, when present
GALLERY_COLUMNS = ("pair_correct", "pos_uncond", "neg_uncond", "clip_acc", "clip_pos_margin", "clip_neg_margin",
                   "pair_mse", "lpips")
NOT_DETECTED = "not detected"
#: human aggregates beside the judges' headlines in the answer panel (the reference row is the human ceiling)
HUMAN_KEYS = ("human_acc",)


# ---------------------------------------------------------------------------------------------
# small helpers


def _num(v) -> str:
    return number(v, 3)


def undetected(run: Run, key: str, specs: dict, group: str | None = None, value: str | None = None) -> bool:
    """Whether ``key`` (overall, or in one predicate / negative kind) rests on a detection rate
    of 0: then its accuracy says nothing about the relation, only that no object was found."""
    scope = run.metrics if group is None else run.summary.get(group, {}).get(value, {})
    for det in (specs[key].requires_detected if key in specs else ()):
        e = scope.get(det)
        if e is not None and e.get("value") == 0:
            return True
    return False


def cell(e: dict | None, chance: float | None = None, not_detected: bool = False, test: dict | None = None) -> dict:
    """A table cell: value with interval, and whether the interval clears chance. A number
    resting on a detection rate of 0 reads "not detected" and is never flagged below chance.

    ``test``: for a cell among many (a breakdown), its chance test Holm-adjusted over the
    family (``breakdown_tests``); the cell is then flagged only when the interval clears chance
    and the adjusted p is below 0.05 too, and without a test (too few triples) not at all: a
    column of eight predicates, each against its own 95% interval, shows a false green or red
    in about a third (1 - 0.95^8) of runs that ignore the relation."""
    if not_detected:
        return {"text": NOT_DETECTED, "ci": "", "flag": "undetected", "n": (e or {}).get("n"), "test": ""}
    if not e or e.get("value") is None:
        return {"text": "–", "ci": "", "flag": "missing", "test": ""}
    flag = ""
    if chance is not None and e.get("ci_low") is not None:
        flag = "above" if e["ci_low"] > chance else "below" if e["ci_high"] < chance else "at"
    if test is not None:
        if test.get("p_holm") is None:
            flag = ""
        elif flag in ("above", "below") and test["p_holm"] >= ALPHA:
            flag = "at"
    ci = f"[{_num(e['ci_low'])}, {_num(e['ci_high'])}]" if e.get("ci_low") is not None else "[–]"
    return {"text": _num(e["value"]), "ci": ci, "flag": flag, "n": e.get("n"), "test": (test or {}).get("text", "")}


#: the level at which a breakdown cell is coloured above / below chance (after Holm)
ALPHA = 0.05
#: how the breakdown cells' chance test is named wherever it is shown
BREAKDOWN_TEST = ("two-sided binomial test with triples as the trials (relbench.stats.bootstrap.triple_chance_test), "
                  "Holm-adjusted over the cells of one run's column")
_GROUP_FIELD = {"by_predicate": "predicate", "by_negative_kind": "negative_kind"}
ALL = "all"  # the one value of a run's rows taken together


def breakdown_tests(run: Run, key: str, specs: dict, group: str | None) -> dict[str, dict]:
    """Per value of ``group`` (each predicate, or negative kind; None: the run's rows as one
    value, ``ALL``) where ``key`` has a chance level and is a mean: its chance test
    (relbench.stats.bootstrap.triple_chance_test) and the p Holm-adjusted over the run's values, the
    family one column of a breakdown table shows. A value resting on a detection rate of 0 is
    no test (it reads "not detected"), nor one on too few triples."""
    from relbench.stats.bootstrap import MIN_TRIPLES, holm, triple_chance_test

    spec = specs.get(key)
    if spec is None or spec.statistic != "mean" or (spec.chance is None and spec.chance_column is None):
        return {}
    by: dict[str, list[dict]] = {}
    for r in run.rows:
        by.setdefault(ALL if group is None else str(r.get(_GROUP_FIELD[group], "")), []).append(r)
    known = run.summary.get(group, {}) if group else {ALL: run.metrics}
    values = sorted(v for v in by if v in known and not undetected(run, key, specs, group, v if group else None))
    found = {}
    for v in values:
        rows = by[v]
        xs = [r.get(spec.column) if isinstance(r.get(spec.column), float) else None for r in rows]
        cs = [r.get(spec.chance_column) if spec.chance_column else spec.chance for r in rows]
        cs = [c if isinstance(c, (int, float)) else None for c in cs]
        found[v] = triple_chance_test(xs, cs, [r["item_id"] for r in rows])
    live = [v for v in values if found[v] is not None]
    adjusted = holm([found[v]["p_value"] for v in live])
    out = {}
    for v in values:
        t = found[v]
        if t is None:
            out[v] = {"p_holm": None, "text": f"no chance test: fewer than {MIN_TRIPLES} triples"}
            continue
        p_holm = adjusted[live.index(v)]
        family = f"; Holm-adjusted over {len(live)}: {_p_is(p_holm)}" if group else ""
        out[v] = {**t, "p_holm": p_holm,
                  "text": f"binomial over {t['n_triples']} triples vs chance: {_p_is(t['p_value'])}{family}"}
    return out


def _test_of(tests: dict, value: str) -> dict | None:
    """A cell's test for ``cell``: None where the key has none (no chance level, or a summary
    without specs: the interval alone decides), {"p_holm": None} where this value has none."""
    return tests.get(value, {"p_holm": None}) if tests else None


def overall_test(run: Run, key: str, specs: dict) -> dict | None:
    """The chance test of ``key`` over all the run's rows (see ``_test_of``)."""
    return _test_of(breakdown_tests(run, key, specs, None), ALL)


def diff_cell(d: dict) -> dict:
    sig = d.get("p_value") is not None and d["p_value"] < 0.05
    ci = "[–]" if d.get("ci_low") is None else f"[{d['ci_low']:+.3g}, {d['ci_high']:+.3g}]"
    return {"text": f"{d['value']:+.3g}", "ci": ci, "p": p_text(d.get("p_value")), "sig": sig}


def _p_is(p) -> str:
    text = p_text(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def _keys_in_order(runs: list[Run]) -> list[str]:
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r.metrics if k not in keys]
    return keys


def charted_keys(runs: list[Run]) -> list[str]:
    """Keys charted and broken down: accuracies with a chance level, the first aggregate of
    each metric, and the seed report's keys. Every key is in the summary table regardless."""
    keys = _keys_in_order(runs)
    firsts, seen = set(), set()
    for r in runs:
        for k, e in r.metrics.items():
            if e.get("metric") not in seen:
                seen.add(e.get("metric"))
                firsts.add(k)
    out = []
    for k in keys:
        has_chance = any(r.metrics.get(k, {}).get("chance") is not None for r in runs)
        if has_chance or k in firsts or k in ORIGIN_KEYS:
            out.append(k)
    return out


def summary_order(keys: list[str], specs: dict) -> list[str]:
    """The judges' headline accuracies first, then the numbers with a better direction, then
    the rest (bookkeeping counts, descriptive means, pair sensitivity such as mse and lpips)."""
    def rank(k):
        spec = specs.get(k)
        if spec is None:
            return 2
        return 0 if spec.headline else 1 if spec.higher_is_better is not None else 2

    return sorted(keys, key=lambda k: (rank(k), keys.index(k)))


def _chance(runs: list[Run], key: str, group: str | None = None, value: str | None = None):
    """The chance level of ``key`` (overall, or within a predicate / negative kind): the first run
    that reports one (chance depends on geometry, not on the run, for g+ images)."""
    for r in runs:
        e = r.metrics.get(key) if group is None else r.summary.get(group, {}).get(value, {}).get(key)
        if e and e.get("chance") is not None:
            return e["chance"]
    return None


# ---------------------------------------------------------------------------------------------
# sections


def answer_section(gens: list[Run], ref: Run | None, specs: dict, heads: list[str], charts: bool) -> list[dict]:
    """The panel the report opens with: per headline key, every run's accuracy with its interval
    against chance and ceiling (a dot-and-interval chart and its numbers), then a predicate x run
    heatmap of the same accuracy."""
    every = gens + ([ref] if ref else [])
    out = []
    for k in heads:
        if not any(k in r.metrics for r in every):
            continue
        rows = []
        sampled = k in HUMAN_KEYS  # people answered a sample of the images: each row says how many
        for r in every:
            e = r.metrics.get(k) or {}
            nd = undetected(r, k, specs)
            n = f"n={e['n']}" if sampled and e.get("n") else ""
            label = (f"ceiling (reference{', ' + n if n else ''})" if r.is_reference
                     else f"{r.label} ({n})" if n else r.label)
            rows.append({"label": label, "ceiling": r.is_reference,
                         "value": None if nd else e.get("value"), "lo": None if nd else e.get("ci_low"),
                         "hi": None if nd else e.get("ci_high"), "chance": e.get("chance"), "not_detected": nd,
                         "cell": cell(e, e.get("chance"), nd, None if r.is_reference else overall_test(r, k, specs))})
        predicates = sorted({v for r in every for v in r.summary.get("by_predicate", {})})
        tests = {r.label: breakdown_tests(r, k, specs, "by_predicate") for r in gens}
        heat = []
        for v in predicates:
            chance = _chance(every, k, "by_predicate", v)
            cells = []
            for r in every:
                e = r.summary.get("by_predicate", {}).get(v, {}).get(k)
                c = cell(e, None if r.is_reference else chance, undetected(r, k, specs, "by_predicate", v),
                         _test_of(tests.get(r.label, {}), v))
                c["shade"] = _shade(e.get("value") if e and c["flag"] not in ("undetected", "missing") else None)
                cells.append(c)
            heat.append({"group": v, "chance": _num(chance) if chance is not None else "–", "cells": cells})
        svg = None
        if charts:
            from markupsafe import Markup

            from relbench.reports.charts import dot_interval_chart

            svg = Markup(dot_interval_chart(f"{k} (95% CI)", rows))  # matplotlib's SVG writer escapes labels
        metric = specs[k].metric if k in specs else "human" if sampled else ""
        out.append({"key": k, "metric": metric, "rows": rows, "chart": svg,
                    "columns": [r["label"] for r in rows], "heatmap": heat})
    return out


def _shade(v) -> str:
    """Heatmap background for an accuracy in [0, 1]: white at 0 to deep blue at 1 (text stays
    dark up to 0.6, white beyond); empty for no value (the cell's class says why)."""
    if v is None:
        return ""
    t = min(max(float(v), 0.0), 1.0)
    r, g, b = (round(255 + (c - 255) * t) for c in (27, 108, 168))
    return f"background: rgb({r}, {g}, {b}); color: {'#fff' if t > 0.6 else '#1d1d1f'}"


def verdicts(gens: list[Run], specs: dict, keys: list[str]) -> list[dict]:
    """One line per run: what each headline accuracy's interval says about the relation.

    "draws the relation": the whole 95% interval above chance, and the chance test over triples
    agreeing (p < 0.05); "inverted": both below (the judge sees the other relation); "at
    chance": otherwise (an interval of [0, 0] from a run scoring 0 on every triple of a 0.06
    chance is no evidence of anything); "not detected": the judge found no object;
    "undetermined": no interval (too few triples)."""
    from relbench.stats.bootstrap import MIN_TRIPLES

    out = []
    for r in gens:
        parts = []
        for k in keys:
            e = r.metrics.get(k)
            if not e:
                continue
            chance = e.get("chance")
            if undetected(r, k, specs):
                word, why = NOT_DETECTED, "no object found, so no relation judged"
            elif e.get("value") is None:
                word, why = "no value", ""
            elif e.get("ci_low") is None or chance is None:
                word = "undetermined"
                why = (f"{_num(e['value'])}, no chance level" if chance is None else
                       f"{_num(e['value'])}, no interval: values on fewer than {MIN_TRIPLES} triples")
            else:
                flag = cell(e, chance, False, overall_test(r, k, specs))["flag"]
                word = {"above": "draws the relation", "below": "inverted"}.get(flag, "at chance")
                why = f"{_num(e['value'])} [{_num(e['ci_low'])}, {_num(e['ci_high'])}], chance {_num(chance)}"
            parts.append({"key": k, "word": word, "why": why, "css": word.replace(" ", "-")})
        out.append({"label": r.label, "parts": parts})
    return out


def summary_section(gens: list[Run], ref: Run | None, keys: list[str], specs: dict) -> list[dict]:
    rows = []
    every = gens + ([ref] if ref else [])
    for k in keys:
        e0 = next((r.metrics[k] for r in every if k in r.metrics), {})
        chance = _chance(every, k)
        rows.append({
            "key": k, "metric": e0.get("metric", ""), "higher_is_better": e0.get("higher_is_better"),
            "headline": k in specs and specs[k].headline,
            "chance": _num(chance) if chance is not None else "–",
            "ceiling": cell(ref.metrics.get(k), None, undetected(ref, k, specs)) if ref else None,
            "cells": [cell(r.metrics.get(k), chance, undetected(r, k, specs), overall_test(r, k, specs)) for r in gens],
        })
    return rows


def breakdown_section(gens: list[Run], ref: Run | None, keys: list[str], group: str, charts: bool,
                      specs: dict) -> list[dict]:
    """Per key: a table (group value x runs) and, for predicates, a bar chart."""
    every = gens + ([ref] if ref else [])
    values = sorted({v for r in every for v in r.summary.get(group, {})})
    out = []
    for k in keys:
        if not any(k in r.summary.get(group, {}).get(v, {}) for r in every for v in values):
            continue
        tests = [breakdown_tests(r, k, specs, group) for r in gens]
        rows = []
        for v in values:
            chance = _chance(every, k, group, v)
            rows.append({"group": v, "chance": _num(chance) if chance is not None else "–",
                         "ceiling": cell(ref.summary.get(group, {}).get(v, {}).get(k), None,
                                         undetected(ref, k, specs, group, v)) if ref else None,
                         "cells": [cell(r.summary.get(group, {}).get(v, {}).get(k), chance,
                                        undetected(r, k, specs, group, v), _test_of(t, v))
                                   for r, t in zip(gens, tests)]})
        svg = None
        if charts:
            svg = _chart(k, values, every, group, specs)
        out.append({"key": k, "rows": rows, "chart": svg})
    return out


def _chart(key: str, values: list[str], runs: list[Run], group: str, specs: dict):
    from markupsafe import Markup

    from relbench.reports.charts import bar_chart

    series = []
    for r in runs:
        es = [r.summary.get(group, {}).get(v, {}).get(key) or {} for v in values]
        nd = [undetected(r, key, specs, group, v) for v in values]
        series.append({"label": "reference (ceiling)" if r.is_reference else r.label,
                       "values": [None if u else e.get("value") for e, u in zip(es, nd)],
                       "lo": [None if u else e.get("ci_low") for e, u in zip(es, nd)],
                       "hi": [None if u else e.get("ci_high") for e, u in zip(es, nd)],
                       "not_detected": nd, "ceiling": r.is_reference})
    chance = [_chance(runs, key, group, v) for v in values]
    svg = bar_chart(f"{key} by {group.replace('by_', '').replace('_', ' ')} (95% CI)", values, series,
                    chance if any(c is not None for c in chance) else None)
    return Markup(svg)  # matplotlib's SVG writer escapes every label


def agreement_section(runs: list[Run]) -> list[dict]:
    """Judge agreement recorded in summary.json (relbench.stats.agreement): one table per run and pair."""
    def fmt(v, ci):
        if v is None:
            return {"text": "undefined", "ci": ""}
        return {"text": f"{v:.2f}", "ci": "" if ci[0] is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]"}

    out = []
    for r in runs:
        for pair, e in (r.summary.get("agreement") or {}).items():
            rows = [("all", e["overall"])] + sorted(e["by_predicate"].items())
            out.append({"run": r.label, "pair": pair, "scope": e["predicates"],
                        "rows": [{"group": g, "n": a["n"], "share": fmt(a["share"], a["share_ci"]),
                                  "kappa": fmt(a["kappa"], a["kappa_ci"])} for g, a in rows]})
    return out


#: the peer_scores metric's numbers, by the benchmark whose scoring code defines them
PEER_KEYS = {
    "geneval": ("geneval_position", "geneval_position_prompts"),
    "t2i_compbench": ("t2i_compbench_spatial",),
    "visor": ("visor_oa", "visor_cond", "visor_uncond", "visor_1", "visor_2", "visor_3", "visor_4"),
}


def peer_section(dirs, gens: list[Run]) -> list[dict]:
    """Each peer number with the detector that produced it and whether that is the peer's own
    detector (only then comparable with the peer's published table), as provenance recorded it."""
    out = []
    for d in dirs:
        info = ((d.summary.get("metrics") or {}).get("peer_scores") or {}).get("provenance", {}).get("peer_scores")
        if not info:
            continue
        mine = [r for r in gens if r.path == d.path]
        for bench, det in info.items():
            rows = [{"key": k, "cells": [cell(r.metrics.get(k)) for r in mine]}
                    for k in PEER_KEYS.get(bench, ()) if any(k in r.metrics for r in mine)]
            if rows:
                out.append({"dir": str(d.path), "benchmark": bench, "runs": [r.label for r in mine], "rows": rows,
                            "detector": det.get("detector"), "model": det.get("model") or "",
                            "peer_detector": det.get("peer_detector", ""), "own": bool(det.get("own_detector")),
                            "boxes": det.get("boxes", ""), "note": det.get("note", "")})
    return out


def confusion_section(runs: list[Run]) -> list[dict]:
    """One predicate x predicate heatmap per run and judge, from summary.json's ``confusion``:
    rows are the asked predicates, cells the share of their img_pos where the judge sees each
    candidate; the asked predicate's own cell (the diagonal) comes first, then the whole row."""
    def fmt(v, ci, chance=None):
        title = "" if ci is None else f"95% CI [{ci[0]:.2f}, {ci[1]:.2f}]"
        if chance is not None:
            title += f"{'; ' if title else ''}reference {chance:.2f}"
        return {"text": "–" if v is None else f"{v:.2f}", "style": _shade(v), "title": title}

    out = []
    for r in runs:
        for judge, m in (r.summary.get("confusion") or {}).items():
            preds = m["predicates"]
            rows = []
            for asked, row in m["rows"].items():
                chance = row.get("chance") or {}
                own = fmt(row["seen"].get(asked), row["ci"].get(asked), chance.get(asked)) if asked in preds else None
                rows.append({"asked": asked, "n": row["n"], "n_items": row["n_items"], "own": own,
                             "cells": [{**fmt(row["seen"][p], row["ci"][p], chance.get(p)), "diagonal": p == asked}
                                       for p in preds]})
            out.append({"run": r.label, "judge": judge, "predicates": preds, "rows": rows})
    return out


def baseline_section(gens: list[Run], names: list[str]) -> list[dict]:
    from relbench import baselines

    out = []
    for name in names:
        rec = baselines.load(name)
        metrics = rec["metrics"]
        chance_rows = [{"key": k, "value": _num(v["value"]), "n": v["n"],
                        "p": p_text(chance_test(v["value"], v["n"], v.get("chance", 0.5)))}
                       for k, v in metrics.items() if v.get("kind") == "proportion"]
        rec_rows = [{"key": k, "value": _num(v["value"]), "n": v.get("n"),
                     "se": _num(v["se"]) if v.get("se") is not None else "estimated from each run",
                     "assumed": rec.get("assumed", {}).get(k, "")} for k, v in metrics.items()]
        rows = []
        for r in gens:
            for k, v in metrics.items():
                e = r.metrics.get(k)
                if not e or e.get("value") is None:
                    continue
                d = versus_record(e, v, v.get("higher_is_better"))
                rows.append({"run": r.label, "key": k, "run_value": cell(e), "baseline_value": _num(v["value"]),
                             "diff": diff_cell(d), "alternative": d["alternative"]})
        out.append({"name": name, "description": rec.get("description", ""), "source": rec.get("source", ""),
                    "notes": rec.get("notes", ""), "n_cases": rec.get("n_cases"), "records": rec_rows,
                    "chance_rows": chance_rows, "rows": rows})
    return out


def paired_rows(a: Run, b: Run, keys: list[str], n_resamples: int) -> list[dict]:
    rows = []
    for k in keys:
        if k in a.metrics and k in b.metrics:
            d = compare_paired(a, b, k, n_resamples=n_resamples)
            if d is not None:
                rows.append({"key": k, "a": cell(a.metrics[k]), "b": cell(b.metrics[k]), "diff": diff_cell(d),
                             "n": d["n"], "n_triples": d["n_triples"]})
    return rows


def paired_section(gens: list[Run], keys: list[str], n_resamples: int) -> tuple[list[dict], list[dict]]:
    """(each run vs the first run, relation vs neutral prompt for the same generator)."""
    vs_first = []
    if len(gens) > 1:
        first = gens[0]
        for r in gens[1:]:
            if shared_cases(first, r):
                vs_first.append({"a": first.label, "b": r.label, "rows": paired_rows(first, r, keys, n_resamples),
                                 "warning": pairing_warning(first, r)})
    neutral = []
    for rel in gens:
        if rel.summary.get("prompt_mode") != "relation":
            continue
        for neu in gens:
            if (neu.summary.get("prompt_mode") == "neutral" and neu.summary.get("fingerprint")
                    and neu.summary.get("fingerprint") == rel.summary.get("fingerprint") and shared_cases(rel, neu)):
                neutral.append({"generator": rel.summary.get("generator"), "a": neu.label, "b": rel.label,
                                "rows": paired_rows(neu, rel, keys, n_resamples), "warning": None})
    return vs_first, neutral


def _severity(row: dict) -> tuple:
    """Sort key, worst first: relation judged wrong, CLIP preferring the wrong text, then the
    smallest g+/g- difference (the graph ignored). Unknown values sort after known ones."""
    def col(suffix):
        for c, v in row.items():
            if c.endswith(suffix) and isinstance(v, float):
                return v
        return None

    out = []
    for suffix in ("pair_correct", "clip_acc", "clip_pos_margin", "pair_mse"):
        v = col(suffix)
        out += [v is None, v if v is not None else 0.0]
    return (*out, row.get("case_id", ""))


def _gallery_values(row: dict) -> list[tuple[str, str]]:
    """(column, value) for the gallery caption; a rule-set-prefixed spatial column stands in for
    its plain name (the first rule set's)."""
    out = []
    for c in GALLERY_COLUMNS:
        col = c if c in row else next((x for x in row if x.endswith("_" + c)), None)
        if col is not None and isinstance(row.get(col), float):
            out.append((col, _num(row[col])))
    return out


def _verdict_columns(gens: list[Run]) -> list[tuple[str, tuple[str, ...]]]:
    """(per-case column, its detection columns) of each headline judge (spatial pair_correct
    with pos/neg_detected, clip_acc with none): what makes a case a failure in the gallery."""
    cols: list[tuple[str, tuple[str, ...]]] = []
    for g in gens:
        for spec in g.specs.values():
            dets = tuple(g.specs[d].column for d in spec.requires_detected if d in g.specs)
            if spec.headline and (spec.column, dets) not in cols:
                cols.append((spec.column, dets))
    return cols


def case_verdict(row: dict, columns: list[tuple[str, tuple[str, ...]]]) -> str:
    """"failure" when a headline judge that found its objects scored the case below 1 (the
    relation judged wrong, or one of CLIP's two comparisons lost), "right" when every judge
    that scored it gave 1; else "undetected" (a judge found no object: its 0 is about
    detection, not the relation) or "unjudged" (no judge scored it)."""
    vals, blind = [], False
    for col, dets in columns:
        if any(row.get(d) == 0.0 for d in dets):
            blind = True
        elif isinstance(row.get(col), float):
            vals.append(row[col])
    if vals:
        return "failure" if min(vals) < 1.0 else "right"
    return "undetected" if blind else "unjudged"


#: what a gallery badge reads for each case verdict
VERDICT_TEXT = {"failure": "failure", "right": "judged right", "undetected": NOT_DETECTED, "unjudged": "not judged"}


def gallery_section(gens: list[Run], per_predicate: int, max_pairs: int, thumb_px: int) -> tuple[list[dict], dict]:
    """Per predicate and run: its failures, worst first, where it has any; else one case, marked
    as judged right (a run without failures has no "worst" case to show). Without a headline
    judge, the first cases by severity."""
    from relbench.reports.thumbs import image_path, parse_boxes, thumbnail

    columns = _verdict_columns(gens)
    predicates = sorted({r["predicate"] for g in gens for r in g.rows})
    sections, shown, total, failures = [], 0, 0, 0
    for pred in predicates:
        runs_out = []
        for g in gens:
            rows = sorted((r for r in g.rows if r["predicate"] == pred), key=_severity)
            total += len(rows)
            verdict = {r["case_id"]: case_verdict(r, columns) for r in rows}
            fails = [r for r in rows if verdict[r["case_id"]] == "failure"]
            failures += len(fails)
            if not columns:
                pick, note = rows[:per_predicate], f"{min(per_predicate, len(rows))} of {len(rows)}"
            elif fails:
                pick = fails[:per_predicate]
                note = f"{len(fails)} failure{'s' if len(fails) != 1 else ''} of {len(rows)} cases; {len(pick)} shown"
            else:
                right = sum(v == "right" for v in verdict.values())
                blind = sum(v == "undetected" for v in verdict.values())
                said = (f"all {right} cases judged right" if right == len(rows) else
                        f"{right} of {len(rows)} cases judged right"
                        + (f", {blind} not detected" if blind else "")
                        + (f", {len(rows) - right - blind} not judged" if len(rows) - right - blind else ""))
                pick, note = rows[:1], f"no failures: {said}; one shown"
            items = []
            for r in pick:
                if shown >= max_pairs:
                    break
                shown += 1
                subj_obj = [r.get("subject", ""), r.get("object", "")]
                values = _gallery_values(r)
                items.append({
                    "case_id": r["case_id"], "seed": r.get("seed"), "kind": r.get("negative_kind"),
                    "graph_pos": r.get("graph_pos"), "graph_neg": r.get("graph_neg"),
                    "prompt_pos": r.get("prompt_pos"), "prompt_neg": r.get("prompt_neg"),
                    "subject": subj_obj[0], "object": subj_obj[1],
                    "img_pos": thumbnail(image_path(g.path, r.get("image_pos", "")), parse_boxes(r.get("pos_boxes")),
                                         subj_obj, thumb_px),
                    "img_neg": thumbnail(image_path(g.path, r.get("image_neg", "")), parse_boxes(r.get("neg_boxes")),
                                         subj_obj, thumb_px),
                    "scores": values,
                    "verdict": verdict[r["case_id"]] if columns else "",
                    "verdict_text": VERDICT_TEXT[verdict[r["case_id"]]] if columns else "",
                })
            if items:
                runs_out.append({"label": g.label, "cases": items, "n": len(rows), "note": note})
        if runs_out:
            sections.append({"predicate": pred, "runs": runs_out})
    return sections, {"shown": shown, "total": total, "failures": failures, "capped": shown >= max_pairs,
                      "judged": bool(columns)}


# ---------------------------------------------------------------------------------------------
# build


def _env():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("relbench.reports", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    return env


def build_context(run_dirs, baselines=None, per_predicate: int = 3, max_pairs: int = 240, thumb_px: int = 112,
                  n_resamples: int = 1000, charts: bool = True) -> dict:
    from relbench.stats.bootstrap import MIN_TRIPLES

    dirs = [load_run_dir(d) for d in run_dirs]
    runs = collect_runs(dirs)
    gens = [r for r in runs if not r.is_reference]
    ref = next((r for r in runs if r.is_reference), None)
    specs = {k: v for d in dirs for k, v in d.specs.items()}
    keys = summary_order(_keys_in_order(runs), specs)
    answer_keys = headline_keys(specs, keys)
    heads = charted_keys(runs)
    chart_note = ""
    if charts:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            charts, chart_note = False, "charts need matplotlib (pip install matplotlib); tables only"
    gallery, gstats = gallery_section(gens, per_predicate, max_pairs, thumb_px)
    vs_first, neutral = paired_section(gens, answer_keys, n_resamples)
    first = dirs[0].summary
    return {
        "title": f"relbench report: {', '.join(sorted({d.summary.get('benchmark', '?') for d in dirs}))}",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dirs": [{"path": str(d.path), "benchmark": d.summary.get("benchmark"), "suite": d.summary.get("suite"),
                  "n_cases": d.summary.get("n_cases"), "n_triples": d.summary.get("n_triples"),
                  "seeds": d.summary.get("seeds"), "interval": d.summary.get("interval")} for d in dirs],
        "interval": first.get("interval", ""),
        "runs": [{"label": r.label, "generator": r.summary.get("generator"), "prompt_mode": r.summary.get("prompt_mode"),
                  "n_cases": r.summary.get("n_cases"), "n_triples": r.summary.get("n_triples"), "dir": str(r.path)}
                 for r in gens],
        "has_reference": ref is not None,
        # metric warnings recorded in summary.json (e.g. an uncalibrated random LPIPS backbone)
        "flags": [{"dir": str(d.path), "metric": name, "flag": flag}
                  for d in dirs for name, info in (d.summary.get("metrics") or {}).items()
                  for flag in (info.get("flags") or [])],
        # cases left out of every run for want of a usable image made elsewhere (allow_missing)
        "left_out": [{"dir": str(d.path), "run": run, "n": n}
                     for d in dirs for run, n in (d.summary.get("cases_left_out") or {}).items()],
        "descriptions": {k: v for d in dirs for info in (d.summary.get("metrics") or {}).values()
                         for k, v in (info.get("aggregates") or {}).items()},
        "answer": answer_section(gens, ref, specs, answer_keys + [k for k in HUMAN_KEYS if k in keys], charts),
        "verdicts": verdicts(gens, specs, answer_keys),
        "min_triples": MIN_TRIPLES,
        "breakdown_test": BREAKDOWN_TEST,
        "summary": summary_section(gens, ref, keys, specs),
        "by_predicate": breakdown_section(gens, ref, heads, "by_predicate", charts, specs),
        "by_kind": breakdown_section(gens, ref, heads, "by_negative_kind", False, specs),
        "agreement": agreement_section(gens + ([ref] if ref else [])),
        "peers": peer_section(dirs, gens),
        "confusion": confusion_section(gens + ([ref] if ref else [])),
        "chart_note": chart_note,
        "chance_test": CHANCE_TEST,
        # a record only when asked for, or when every directory's benchmark declares it comparable
        "baselines": baseline_section(gens, baselines if baselines is not None else declared_baselines(dirs)),
        "vs_first": vs_first,
        "neutral": neutral,
        "gallery": gallery,
        "gallery_stats": gstats,
        "human": _human_rows(dirs),
        "per_predicate": per_predicate,
        "manifests": [{"path": str(d.path), "text": json.dumps(d.manifest, indent=2)} for d in dirs],
    }


def _human_rows(dirs) -> list[dict]:
    from relbench.results.human import report_rows

    return report_rows(dirs)


def render(context: dict) -> str:
    return _env().get_template("report.html.j2").render(**context)


def build_report(run_dirs, out, baselines=None, **options) -> dict:
    from relbench.io.atomic import write_text

    t0 = time.perf_counter()
    html = render(build_context(list(run_dirs), baselines=baselines, **options))
    write_text(out, html)
    return {"path": str(out), "bytes": len(html.encode("utf-8")), "seconds": time.perf_counter() - t0}
