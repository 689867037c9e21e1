"""Per-predicate bar charts as inline SVG (matplotlib, Agg): runs side by side, 95% interval
error bars, the chance level as a black tick per predicate, the reference ceiling as a grey bar.

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
    """An SVG string. ``series``: [{"label", "values", "lo", "hi", "ceiling": bool}], each list
    aligned with ``groups`` (None where a run has no value for a group)."""
    import numpy as np

    plt = _pyplot()
    n_g, n_s = len(groups), max(len(series), 1)
    width = 0.8 / n_s
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "relbench", "font.size": 8,
                         "axes.spines.top": False, "axes.spines.right": False}):
        w = max(4.5, 0.42 * n_g * max(1.0, n_s / 2.5) + 2.2)
        fig, ax = plt.subplots(figsize=(w, 2.7))
        # fixed margins (legend at the right): tight_layout costs as much as drawing the chart
        fig.subplots_adjust(left=0.8 / w, right=1 - 1.7 / w, bottom=0.3 if n_g > 4 else 0.15, top=0.88)
        x = np.arange(n_g)
        colour = iter(_PALETTE * 4)
        for i, s in enumerate(series):
            vals = np.array([np.nan if v is None else v for v in s["values"]], dtype=float)
            lo = np.array([np.nan if v is None else v for v in s["lo"]], dtype=float)
            hi = np.array([np.nan if v is None else v for v in s["hi"]], dtype=float)
            err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
            pos = x - 0.4 + width * (i + 0.5)
            style = {"color": "#bbbbbb", "hatch": "///", "edgecolor": "#888888"} if s.get("ceiling") else {"color": next(colour)}
            ax.bar(pos, np.nan_to_num(vals), width * 0.92, yerr=np.nan_to_num(err), capsize=1.5,
                   error_kw={"elinewidth": 0.7, "ecolor": "#222222"}, label=s["label"], **style)
        if chance:
            for xi, c in zip(x, chance):
                if c is not None:
                    ax.hlines(c, xi - 0.45, xi + 0.45, colors="black", linestyles="dashed", linewidth=0.9)
            ax.plot([], [], "k--", linewidth=0.9, label="chance")
        ax.set_xticks(x)
        ax.set_xticklabels(groups, rotation=30 if n_g > 4 else 0, ha="right" if n_g > 4 else "center")
        ax.set_title(title, fontsize=9)
        if ylabel:
            ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
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
