"""From per-sample rows to summary.json's numbers: each metric's aggregates with their
cluster-bootstrap intervals over items, chance levels, seed consistency and judge agreement.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from relbench.io.atomic import read_json_cache, write_text
from relbench.spec.data import stable_hash


def _entries(rows: list[dict], aggs: list, bench) -> list[dict]:
    """Every aggregate over one set of rows, with intervals from one shared bootstrap per unit
    (cases, g+ images, prompts: see ``Aggregate.unit``), each resampling items."""
    from relbench.stats.bootstrap import cluster_bootstrap_many

    found: list[dict | None] = [None] * len(aggs)
    for unit in ("case", "image_pos", "prompt"):
        idx = [i for i, a in enumerate(aggs) if getattr(a, "unit", "case") == unit]
        if not idx:
            continue
        columns, units = _unit_values(rows, [aggs[i] for i in idx], unit)
        entries = cluster_bootstrap_many(
            [(vals, aggs[i].statistic) for i, vals in zip(idx, columns)], units,
            n_resamples=bench.bootstrap_resamples, seed=bench.bootstrap_seed,
        )
        for i, entry in zip(idx, entries):
            entry["chance"] = _chance(rows, aggs[i]) if unit == "case" else aggs[i].chance
            found[i] = entry
    return found


def _unit_values(rows: list[dict], aggs: list, unit: str) -> tuple[list[list], list[str]]:
    """(each aggregate's values, the item of each value) with one value per ``unit``.

    An item's cases of one seed share their g+ image (built from the item's graph and noise
    seed, whatever the negative), so its value is taken once, from the first case."""
    if unit == "case":
        return [[r.get(a.column) for r in rows] for a in aggs], [r["item_id"] for r in rows]
    first: dict[tuple, dict] = {}
    for r in rows:
        first.setdefault((r["item_id"], r["seed"]), r)
    images = list(first.values())
    if unit == "image_pos":
        return [[r.get(a.column) for r in images] for a in aggs], [r["item_id"] for r in images]
    by_item: dict[str, list[dict]] = {}
    for r in images:
        by_item.setdefault(r["item_id"], []).append(r)
    columns = []
    for a in aggs:
        vals = []
        for ims in by_item.values():
            have = [r.get(a.column) for r in ims if r.get(a.column) is not None]
            vals.append(a.per_prompt(have) if have else None)
        columns.append(vals)
    return columns, list(by_item)


def _chance(rows: list[dict], agg) -> float | None:
    if agg.chance_column:
        vals = [r.get(agg.chance_column) for r in rows if r.get(agg.column) is not None]
        vals = [v for v in vals if v is not None]
        return round(sum(vals) / len(vals), 10) if vals else None
    return agg.chance


def _is_binary(rows: list[dict], agg) -> bool:
    vals = [r.get(agg.column) for r in rows]
    vals = [v for v in vals if v is not None]
    return agg.statistic == "mean" and bool(vals) and all(v in (0.0, 1.0) for v in vals)


def _seed_consistency(rows: list[dict], agg, bench, n_seeds: int) -> dict:
    """VISOR_k style: share of triples with at least k of their seeds judged correct.

    Chance, where the per-case chance c is known, is P(Binomial(n, c) >= k) averaged over triples.
    """
    from math import comb

    per_item: dict[str, list[float]] = {}
    chance_of: dict[str, list[float]] = {}
    for r in rows:
        v = r.get(agg.column)
        if v is not None:
            per_item.setdefault(r["item_id"], []).append(v)
            c = r.get(agg.chance_column) if agg.chance_column else agg.chance
            if c is not None:
                chance_of.setdefault(r["item_id"], []).append(c)
    from relbench.plugin.metric import Aggregate

    complete = {t: vs for t, vs in per_item.items() if len(vs) == n_seeds}
    trip = [{"item_id": t, **{f"k{k}": float(sum(vs) >= k) for k in range(1, n_seeds + 1)}}
            for t, vs in complete.items()]
    ks = range(1, n_seeds + 1)
    # every k under one shared bootstrap of the same triples
    entries = _entries(trip, [Aggregate(f"{agg.key}@{k}", f"k{k}") for k in ks], bench)
    cs = [sum(cv) / len(cv) for t, cv in chance_of.items() if t in complete]
    out = {}
    for k, entry in zip(ks, entries):
        entry["chance"] = (
            round(sum(sum(comb(n_seeds, j) * c**j * (1 - c) ** (n_seeds - j) for j in range(k, n_seeds + 1)) for c in cs) / len(cs), 10)
            if cs and len(cs) == len(trip) else None
        )
        out[f"k{k}"] = entry
    return out


def _aggregate_all(plan, collected, rows) -> dict:
    """Per run: every aggregate overall, by predicate, by negative kind, and seed consistency.

    The result is cached by the content of the rows and the aggregate specs, so a rerun of a
    finished run needs no bootstrap (and no scipy import).
    """
    bench = plan.bench
    aggs = [(mname, a) for mname, info in collected.metrics.items() for a in info.aggregates]
    specs = [[m, a.key, a.column, statistic_name(a.statistic), a.higher_is_better, a.chance, a.chance_column]
             + ([] if a.unit == "case" else [a.unit, statistic_name(a.per_prompt) if a.per_prompt else None])
             for m, a in aggs]
    confusions = confusion_specs(collected)
    key = stable_hash({"rows": rows, "specs": specs, "confusion": confusions,
                       "b": [bench.bootstrap_resamples, bench.bootstrap_seed], "v": 4}, n=32)
    cache = plan.out / "cache" / "aggregates" / f"{key}.json"
    cached = read_json_cache(cache)  # None when missing, or torn by a power loss
    if isinstance(cached, dict):
        return cached

    n_seeds = len(bench.seeds)
    result = {}
    for run in collected.runs:
        mine = [r for r in rows if r["run"] == run.name]
        out: dict = {"metrics": {}, "by_predicate": {}, "by_negative_kind": {}, "seed_consistency": {}}
        just_aggs = [a for _, a in aggs]
        for (mname, agg), entry in zip(aggs, _entries(mine, just_aggs, bench)):
            entry["metric"] = mname
            entry["higher_is_better"] = agg.higher_is_better
            out["metrics"][agg.key] = entry
        for field, group in (("predicate", "by_predicate"), ("negative_kind", "by_negative_kind")):
            for value in sorted({r[field] for r in mine}):
                sub = [r for r in mine if r[field] == value]
                out[group][value] = {a.key: e for a, e in zip(just_aggs, _entries(sub, just_aggs, bench))}
        for mname, agg in aggs:
            if n_seeds > 1 and agg.unit == "case" and _is_binary(mine, agg):
                out["seed_consistency"][agg.key] = _seed_consistency(mine, agg, bench, n_seeds)
        result[run.name] = out
    if confusions:
        from relbench.engine.plan import REFERENCE
        from relbench.results.confusion import run_confusions

        found = run_confusions({run.name: [r for r in rows if r["run"] == run.name] for run in collected.runs},
                               confusions, REFERENCE, bench.bootstrap_resamples, bench.bootstrap_seed)
        for name, matrices in found.items():
            if matrices:
                result[name]["confusion"] = matrices
    write_text(cache, json.dumps(result))
    return result


def confusion_specs(collected) -> list[dict]:
    """The confusions the metrics' columns hold, one per judge (the first metric naming it)."""
    out: dict[str, dict] = {}
    for info in collected.metrics.values():
        for c in getattr(info, "confusions", None) or ():
            out.setdefault(c.judge, c.to_json())
    return list(out.values())


def statistic_name(statistic) -> str:
    """"mean", "std", or a callable's qualified name (summary.json holds data, not code)."""
    if isinstance(statistic, str):
        return statistic
    return f"{getattr(statistic, '__module__', '')}.{getattr(statistic, '__qualname__', repr(statistic))}"


@dataclass(frozen=True)
class AggregateSpec:
    """What a reader of summary.json needs to know of an aggregate without loading its plugin:
    which column, which statistic, its chance level and better direction, whether it is the
    judge's headline accuracy and which detection rates it depends on."""

    metric: str
    column: str
    statistic: str
    chance: float | None = None
    chance_column: str | None = None
    higher_is_better: bool | None = None
    headline: bool = False
    requires_detected: tuple[str, ...] = ()
    unit: str = "case"  # Aggregate.unit: what one value is (a case, a g+ image, a prompt)

    @classmethod
    def of(cls, metric: str, agg) -> "AggregateSpec":
        return cls(metric, agg.column, statistic_name(agg.statistic), agg.chance, agg.chance_column,
                   agg.higher_is_better, bool(agg.headline), tuple(agg.requires_detected), agg.unit)

    @classmethod
    def from_json(cls, d: dict) -> "AggregateSpec":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        return cls(**{**d, "requires_detected": tuple(d.get("requires_detected") or ())})

    def to_json(self) -> dict:
        # a number over cases (every aggregate but a few) keeps the spec summary.json always had
        d = {**asdict(self), "requires_detected": list(self.requires_detected)}
        if d["unit"] == "case":
            del d["unit"]
        return d


def aggregate_spec(metric: str, agg) -> dict:
    """The JSON form of an aggregate's spec, as summary.json stores it."""
    return AggregateSpec.of(metric, agg).to_json()


def _agreement(plan, collected, rows: list[dict]) -> dict:
    """Where two judges scored the same images: how often they agree (relbench.stats.agreement).
    Box judges are the metrics whose provenance names verdict columns (one per detector)."""
    from relbench.stats.agreement import judge_agreement

    def geometric(p: str) -> bool:
        return p in plan.vocab and plan.vocab.get(p).geometric

    boxes = {name: tuple(info.provenance["verdicts"]) for name, info in collected.metrics.items()
             if len((info.provenance or {}).get("verdicts") or ()) == 2}
    found = judge_agreement(rows, geometric, resamples=plan.bench.bootstrap_resamples, seed=plan.bench.bootstrap_seed,
                            spatial=boxes or None)
    return {"agreement": found} if found else {}


def summarise(plan, collected, columns_rows) -> dict:
    from relbench.engine.plan import REFERENCE

    _, rows = columns_rows
    bench = plan.bench
    aggregated = _aggregate_all(plan, collected, rows)
    out_runs = {}
    for run in collected.runs:
        mine = [r for r in rows if r["run"] == run.name]
        clusters = [r["item_id"] for r in mine]
        out_runs[run.name] = {
            "generator": run.info.get("generator"),
            "prompt_mode": run.info.get("prompt_mode"),
            "fingerprint": run.info.get("fingerprint"),
            "is_reference": run.name == REFERENCE,
            "n_cases": len(mine),
            "n_triples": len(set(clusters)),
            **aggregated[run.name],
            **_agreement(plan, collected, mine),
        }
    return {
        "benchmark": bench.name,
        "suite": bench.suite.kind,
        "n_cases": len(plan.cases),
        "n_triples": len({c.item_id for c in plan.cases}),
        "seeds": list(bench.seeds),
        "confidence": 0.95,
        "interval": f"percentile bootstrap over triples, {bench.bootstrap_resamples} resamples, seed {bench.bootstrap_seed}",
        "comparable_with": list(getattr(bench, "comparable_with", [])),
        "metrics": {
            name: {"flags": info.flags, "aggregates": {a.key: a.description for a in info.aggregates},
                   "specs": {a.key: aggregate_spec(name, a) for a in info.aggregates},
                   **({"provenance": info.provenance} if info.provenance else {}),
                   **({"confusion": [c.to_json() for c in info.confusions]} if getattr(info, "confusions", None) else {})}
            for name, info in collected.metrics.items()
        },
        "runs": out_runs,
        # cases a run of files made elsewhere had no usable image for (allow_missing), left out of every run
        **({"cases_left_out": {run: len(ids) for run, ids in plan.left_out.items()}}
           if getattr(plan, "left_out", None) else {}),
    }
