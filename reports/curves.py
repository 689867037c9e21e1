"""Training curves: loss terms and every evaluation metric against step, one column per arm.

The seed's lesson is that a falling loss says nothing about the relation; so the loss rows
and the metric rows share the step axis, and each metric panel shows its 95% interval band
(from the evaluation's own summary.json), the chance level (the detector's chance model, as
summary.json records it) and the ceiling (the reference images' value when the evaluation
scored them, else the metric's bound 1.0 for proportions, drawn dotted). Read from files only:
``train_log.jsonl`` and ``eval/step-*/summary.json`` of each training output directory.

The page answers the question first: the judges' headline relation accuracies, then every other
metric with a chance level, then the loss terms, then the rest, as a grid of small panels. Every
panel spans the same step axis (0 to the last logged step), so an evaluation made once sits at
its step instead of alone on an axis of its own (96-104 for step 100), and a metric with a
chance level is drawn on [0, 1].
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from relbench.errors import UserError

LOSS_KEYS = ("loss", "l_gen", "l_rank", "rank_acc", "graph_sep", "l_clip", "clip_acc")


@dataclass
class Curve:
    steps: list[int] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    lo: list[float | None] = field(default_factory=list)
    hi: list[float | None] = field(default_factory=list)
    chance: float | None = None
    ceiling: float | None = None
    headline: bool = False


@dataclass
class Arm:
    name: str
    path: Path
    losses: dict[str, Curve]
    metrics: dict[str, Curve]


def training_dirs(path: str | Path) -> list[Path]:
    """A training output directory itself, or the arms of a lab output directory (arms/*)."""
    p = Path(path)
    if (p / "train_log.jsonl").is_file():
        return [p]
    return sorted(d for d in (p / "arms").glob("*") if (d / "train_log.jsonl").is_file())


def read_arm(path: Path) -> Arm:
    losses: dict[str, Curve] = {}
    for n, line in enumerate((path / "train_log.jsonl").read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path / 'train_log.jsonl'}:{n}: not JSON") from None
        if rec.get("event"):
            continue
        for k in LOSS_KEYS:
            if rec.get(k) is not None:
                c = losses.setdefault(k, Curve())
                c.steps.append(int(rec["step"]))
                c.values.append(float(rec[k]))
    metrics: dict[str, Curve] = {}
    for d in sorted((path / "eval").glob("step-*"), key=lambda d: int(d.name.split("-")[1])):
        f = d / "summary.json"
        if not f.is_file():
            continue
        summary = json.loads(f.read_text())
        step = int(d.name.split("-")[1])
        headline = {k for info in (summary.get("metrics") or {}).values()
                    for k, spec in (info.get("specs") or {}).items() if spec.get("headline")}
        runs = summary.get("runs", {})
        ref = next((r for name, r in runs.items() if name == "reference"), None)
        for name, run in runs.items():
            if name == "reference":
                continue
            for key, e in run.get("metrics", {}).items():
                if e.get("value") is None:
                    continue
                c = metrics.setdefault(key, Curve())
                c.steps.append(step)
                c.values.append(e["value"])
                c.lo.append(e.get("ci_low"))
                c.hi.append(e.get("ci_high"))
                c.chance = e.get("chance", c.chance)
                c.headline = c.headline or key in headline
                ref_e = (ref or {}).get("metrics", {}).get(key) if ref else None
                if ref_e and ref_e.get("value") is not None:
                    c.ceiling = ref_e["value"]
                elif key.endswith(("_acc", "_detected", "_acc_given_detected")):
                    c.ceiling = 1.0
    return Arm(path.name, path, losses, metrics)


def last_step(arms: list[Arm]) -> int:
    """The step axis every panel shares: 0 to the last step any arm logged or evaluated."""
    return max([s for a in arms for c in (*a.losses.values(), *a.metrics.values()) for s in c.steps] + [1])


def panel_order(arms: list[Arm]) -> list[tuple[str, str]]:
    """(key, kind) for every panel, the relation first: headline accuracies, other metrics with
    a chance level, loss terms, then the remaining metrics (each group in first-seen order)."""
    metric_keys: list[str] = []
    for a in arms:
        metric_keys += [k for k in a.metrics if k not in metric_keys]

    def curves(k):
        return [a.metrics[k] for a in arms if k in a.metrics]

    headline = [k for k in metric_keys if any(c.headline for c in curves(k))]
    with_chance = [k for k in metric_keys if k not in headline and any(c.chance is not None for c in curves(k))]
    rest = [k for k in metric_keys if k not in headline and k not in with_chance]
    losses = [k for k in LOSS_KEYS if any(k in a.losses for a in arms)]
    return ([(k, "metric") for k in headline + with_chance] + [(k, "loss") for k in losses]
            + [(k, "metric") for k in rest])


def curves_figure(arms: list[Arm], key: str, kind: str, steps: int | None = None) -> str:
    """One SVG: a panel per arm (shared y axis) for one loss term or eval metric, on the step
    axis [0, ``steps``] (default: the arms' last step)."""
    import io

    from relbench.reports.charts import _inline, _pyplot

    plt = _pyplot()
    steps = steps or last_step(arms)
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "relbench", "font.size": 7,
                         "axes.spines.top": False, "axes.spines.right": False}):
        fig, axes = plt.subplots(1, len(arms), figsize=(2.4 * len(arms) + 0.6, 1.8), sharey=True, squeeze=False)
        for ax, arm in zip(axes[0], arms):
            c = (arm.losses if kind == "loss" else arm.metrics).get(key)
            ax.set_title(arm.name, fontsize=7)
            ax.set_xlabel("step")
            ax.set_xlim(0, steps * 1.03)
            if c is None or not c.steps:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="#888")
                continue
            vals = [float("nan") if v is None else v for v in c.values]
            ax.plot(c.steps, vals, color="#1b6ca8", marker="o" if kind == "metric" else None, markersize=2.5, linewidth=1)
            if c.lo and all(v is not None for v in c.lo + c.hi):
                ax.fill_between(c.steps, c.lo, c.hi, color="#1b6ca8", alpha=0.18, linewidth=0)
                if len(c.steps) == 1:  # a band needs two points: one evaluation shows its interval as a bar
                    ax.vlines(c.steps, c.lo, c.hi, color="#1b6ca8", alpha=0.5, linewidth=2)
            if c.chance is not None:
                ax.axhline(c.chance, color="black", linestyle="--", linewidth=0.8, label="chance")
            if c.ceiling is not None:
                ax.axhline(c.ceiling, color="#888888", linestyle=":", linewidth=0.9, label="ceiling")
            if c.chance is not None:  # a proportion: its whole range, chance and ceiling in view
                ax.set_ylim(-0.03, 1.03)
        axes[0][0].set_ylabel(key)
        fig.subplots_adjust(left=0.5 / (2.4 * len(arms) + 0.6) + 0.06, right=0.98, bottom=0.24, top=0.85, wspace=0.12)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)
    return _inline(buf.getvalue())


def build_curves(paths, out) -> dict:
    """Write the curves page for training output directories (or lab output directories)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    from relbench.io.atomic import write_text

    t0 = time.perf_counter()
    dirs = [d for p in paths for d in training_dirs(p)]
    if not dirs:
        raise UserError(f"report: no train_log.jsonl in {', '.join(map(str, paths))} (nor in their arms/*/)")
    arms = [read_arm(d) for d in dirs]
    steps = last_step(arms)
    rows = [{"key": k, "kind": kind, "svg": curves_figure(arms, k, kind, steps)} for k, kind in panel_order(arms)]
    env = Environment(loader=PackageLoader("relbench.reports", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    # a panel's width on the page: its natural size (2.4 in per arm + 0.6 in at 96 px per inch)
    panel_px = round((2.4 * len(arms) + 0.6) * 96)
    html = env.get_template("curves.html.j2").render(arms=[{"name": a.name, "path": str(a.path)} for a in arms],
                                                     rows=rows, panel_px=panel_px)
    write_text(out, html)
    return {"path": str(out), "bytes": len(html.encode()), "seconds": time.perf_counter() - t0}
