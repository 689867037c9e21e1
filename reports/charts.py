"""Charts as inline SVG (matplotlib, Agg): the report's dot-and-interval panel (each run's
headline accuracy against chance and ceiling) and per-predicate bar charts (runs side by side,
95% interval error bars, the chance level as a black tick per predicate, the reference ceiling
as a grey bar).

SVG keeps text as text (``svg.fonttype: none``) so a chart is a few kB and searchable; its labels
(run and predicate names, user text) are XML-escaped by matplotlib's SVG writer.
"""

from __future__ import annotations

import io
import re

_PALETTE = ["#1b6ca8", "#e07b00", "#2a9d4b", "#c0392b", "#7d3c98", "#8c564b", "#d6489b", "#5d6d7e"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def bar_chart(title: str, groups: list[str], series: list[dict], chance: list[float | None] | None = None,
              ylabel: str = "") -> str:
    """An SVG string. ``series``: [{"label", "values", "lo", "hi", "ceiling": bool, "not_detected"}],
    each list aligned with ``groups`` (None where a run has no value for a group).

    Zero and missing look different: a zero is a short dark stub on the axis, a missing value
    draws nothing (an "n/a" or "not detected" label stands at its place). A series without any
    bar gets no legend entry, nor does chance when no chance line is drawn.
    """
    import numpy as np

    plt = _pyplot()
    n_g, n_s = len(groups), max(len(series), 1)
    width = 0.8 / n_s
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "relbench", "font.size": 8,
                         "axes.spines.top": False, "axes.spines.right": False}):
        plot_w = max(2.8, 0.42 * n_g * max(1.0, n_s / 2.5) + 0.5)  # the axes' width in inches
        fig, ax = plt.subplots(figsize=(plot_w + 2.5, 2.7))
        # the axes get their final width now, so the margins measured below stay right
        fig.subplots_adjust(left=0.8 / (plot_w + 2.5), right=(0.8 + plot_w) / (plot_w + 2.5))
        x = np.arange(n_g)
        colour = iter(_PALETTE * 4)
        top = max([v for s in series for v in list(s["values"]) + list(s["hi"]) if v is not None] + [1e-9])
        for i, s in enumerate(series):
            vals = np.array([np.nan if v is None else v for v in s["values"]], dtype=float)
            lo = np.array([np.nan if v is None else v for v in s["lo"]], dtype=float)
            hi = np.array([np.nan if v is None else v for v in s["hi"]], dtype=float)
            err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
            pos = x - 0.4 + width * (i + 0.5)
            style = {"color": "#bbbbbb", "hatch": "///", "edgecolor": "#888888"} if s.get("ceiling") else {"color": next(colour)}
            have = ~np.isnan(vals)
            if have.any():
                ax.bar(pos[have], vals[have], width * 0.92, label=s["label"], **style)
                # an undefined interval draws no bar at all: a zero-length one with caps would
                # read as an interval of width 0, i.e. certainty
                ci = have & ~np.isnan(lo) & ~np.isnan(hi)
                if ci.any():
                    ax.errorbar(pos[ci], vals[ci], yerr=err[:, ci], fmt="none", capsize=1.5, elinewidth=0.7,
                                ecolor="#222222")
                zero = have & (vals == 0)
                if zero.any():  # a zero bar has no height: a stub on the axis says "measured, 0"
                    ax.hlines(np.zeros(int(zero.sum())), pos[zero] - width * 0.46, pos[zero] + width * 0.46,
                              colors=style.get("edgecolor", style["color"]), linewidth=2.5)
            not_detected = s.get("not_detected") or [False] * n_g
            for p, v, nd in zip(pos, vals, not_detected):
                if np.isnan(v):
                    ax.text(p, 0.02 * top, "not detected" if nd else "n/a", rotation=90, ha="center", va="bottom",
                            fontsize=6, color="#b35c00" if nd else "#999999")
        if chance and any(c is not None for c in chance):
            for xi, c in zip(x, chance):
                if c is not None:
                    ax.hlines(c, xi - 0.45, xi + 0.45, colors="black", linestyles="dashed", linewidth=0.9)
            ax.plot([], [], "k--", linewidth=0.9, label="chance")
        ax.set_xticks(x)
        ax.set_xticklabels(groups, rotation=30 if n_g > 4 else 0, ha="right" if n_g > 4 else "center")
        ax.set_title(title, fontsize=9)
        if ylabel:
            ax.set_ylabel(ylabel)
        legend = None
        if ax.get_legend_handles_labels()[0]:
            legend = ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        _fit_width(fig, plot_w, left=_ticklabel_width(fig, ax, "x", 0.5) + 0.3,
                   right=_artist_width(fig, legend) + 0.15, bottom=0.3 if n_g > 4 else 0.15, top=0.88)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)
    return _inline(buf.getvalue())


def _artist_width(fig, artist) -> float:
    """An artist's laid-out width in inches (0 for None): text is measured, not guessed, so a
    long run name widens the figure instead of running off its edge."""
    if artist is None:
        return 0.0
    return artist.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi


def _ticklabel_width(fig, ax, axis: str, least: float) -> float:
    """How far (inches) the tick labels of ``axis`` reach left of the axes, at least ``least``:
    y labels stand there, and rotated x labels anchored at their right end lean there."""
    renderer = fig.canvas.get_renderer()
    left = ax.get_window_extent(renderer).x0
    labels = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    reach = [left - t.get_window_extent(renderer).x0 for t in labels if t.get_text()]
    return max([least] + [r / fig.dpi for r in reach])


def _fit_width(fig, plot_w: float, left: float, right: float, bottom: float, top: float) -> None:
    """Size the figure to the axes' width plus measured margins: fixed fractions (the old
    layout) clipped long legend entries; tight_layout costs as much as drawing the chart."""
    w = left + plot_w + right
    fig.set_size_inches(w, fig.get_size_inches()[1])
    fig.subplots_adjust(left=left / w, right=(left + plot_w) / w, bottom=bottom, top=top)


def dot_interval_chart(title: str, rows: list[dict]) -> str:
    """One accuracy per run as a dot on [0, 1] with its 95% interval as a line, the run's chance
    level as a dashed tick and the reference ceiling as a grey band across all rows.

    ``rows``: [{"label", "value", "lo", "hi", "chance", "ceiling": bool, "not_detected": bool}];
    a run without a value reads "not detected" or "no value" instead of a dot.
    """
    plt = _pyplot()
    runs = [r for r in rows if not r.get("ceiling")]
    ceiling = next((r for r in rows if r.get("ceiling") and r.get("value") is not None), None)
    n = max(len(runs), 1)
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "relbench", "font.size": 8,
                         "axes.spines.top": False, "axes.spines.right": False, "axes.spines.left": False}):
        h = 1.1 + 0.32 * n
        fig, ax = plt.subplots(figsize=(7.0, h))
        fig.subplots_adjust(left=0.24, right=0.9, bottom=0.5 / h, top=1 - 0.6 / h)
        ys = list(range(n))[::-1]
        if ceiling is not None:
            lo = ceiling["lo"] if ceiling["lo"] is not None else ceiling["value"]
            hi = ceiling["hi"] if ceiling["hi"] is not None else ceiling["value"]
            ax.axvspan(lo, hi, color="#dddddd", zorder=0)
            ax.axvline(ceiling["value"], color="#888888", linewidth=1.2, zorder=1, label="ceiling (reference)")
        drew_chance = drew_run = False
        for y, r in zip(ys, runs):
            if r.get("chance") is not None:
                ax.vlines(r["chance"], y - 0.32, y + 0.32, colors="black", linestyles="dashed", linewidth=1.0,
                          label=None if drew_chance else "chance")
                drew_chance = True
            if r.get("value") is None:
                ax.text(0.01, y, "not detected" if r.get("not_detected") else "no value", va="center",
                        fontsize=7.5, color="#b35c00" if r.get("not_detected") else "#777777")
                continue
            if r.get("lo") is not None and r.get("hi") is not None:
                ax.hlines(y, r["lo"], r["hi"], colors="#1b6ca8", linewidth=2.2)
            ax.plot([r["value"]], [y], "o", color="#1b6ca8", markersize=6, label=None if drew_run else "run (95% CI)")
            drew_run = True
            ax.text(1.04, y, f"{r['value']:.3g}", va="center", fontsize=7.5, transform=ax.get_yaxis_transform())
        ax.set_yticks(ys)
        ax.set_yticklabels([r["label"] if len(r["label"]) <= 28 else r["label"][:27] + "…" for r in runs])
        ax.set_ylim(-0.6, n - 0.4)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("accuracy")
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="x", color="#eeeeee", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_title(title, fontsize=9, loc="left", pad=14)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3,
                      borderaxespad=0.2)
        # run labels (up to 28 characters) may need more room than the default left margin
        fig.subplots_adjust(left=max(0.24, (_ticklabel_width(fig, ax, "y", 0.0) + 0.1) / 7.0))
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)
    return _inline(buf.getvalue())


def _inline(svg: str) -> str:
    """Drop the XML prolog/doctype and the fixed size so the SVG scales inside the page."""
    svg = svg[svg.index("<svg"):]
    head, rest = svg.split(">", 1)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    return head + ' class="chart" role="img">' + rest
