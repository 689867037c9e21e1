"""Visual Genome: balanced, image-disjoint relation splits as JSONL suites (see docs/vg.md).

Modules: read (VG's files and the filtering rules), sample (seeded balanced sampling),
boxes (square crop/pad geometry), export (reference images), build (the whole pipeline),
command (the ``relbench data vg`` arguments).
"""
