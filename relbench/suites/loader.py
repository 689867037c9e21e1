"""Turn a suite spec from benchmark.yaml into suite items."""

from __future__ import annotations

from relbench.data import SuiteItem
from relbench.predicates import Vocabulary


def load_items(spec, vocab: Vocabulary) -> list[SuiteItem]:
    if spec.kind == "shapes":
        from relbench.shapes.suite import shapes_items

        return shapes_items(spec.triples_per_predicate, vocab, spec.predicates, spec.seed)
    if spec.kind == "jsonl":
        from relbench.suites.jsonl import load_jsonl_suite

        return load_jsonl_suite(spec.path, vocab, spec.images_root)
    raise ValueError(f"unknown suite kind {spec.kind!r}")
