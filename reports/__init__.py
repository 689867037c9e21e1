"""HTML reports built from run directories only (summary.json, samples.csv, manifest.json).

One self-contained file (CSS, inline SVG charts, base64 JPEG thumbnails; no script, no network
request: a Content-Security-Policy forbids them) so it can be mailed, archived or opened
offline. Heavy imports (matplotlib, Pillow) happen inside ``build_report``.
"""

from __future__ import annotations


def build_report(run_dirs, out, baselines=None, **options) -> dict:
    """Write the report for ``run_dirs`` to ``out``; returns {"path", "bytes", "seconds"}."""
    from relbench.reports.build import build_report as _build

    return _build(run_dirs, out, baselines=baselines, **options)
