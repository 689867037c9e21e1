"""Visual Genome: balanced, image-disjoint relation splits as JSONL suites (see docs/vg.md).

Modules: read (VG's files and the filtering rules), sample (seeded balanced sampling),
boxes (square crop/pad geometry), export (reference images), build (the whole pipeline),
command (the ``relbench data vg`` arguments).
"""

from relbench.vg.build import VGOptions, build_vg_splits
from relbench.vg.command import add_vg_arguments, vg_command

__all__ = ["VGOptions", "build_vg_splits", "add_vg_arguments", "vg_command"]
