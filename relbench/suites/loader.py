"""Turn a suite spec from benchmark.yaml into suite items."""

from __future__ import annotations

from relbench.spec.config import PEER_SUITE_KINDS
from relbench.spec.data import SuiteItem
from relbench.spec.predicates import Vocabulary


def load_suite(spec, vocab: Vocabulary, limit: int | None = None) -> tuple[list[SuiteItem], list]:
    """(items, rejected lines): peers' prompt files may hold lines that are not one triple;
    they are returned (relbench.suites.peers.Rejected) so the run can list them.

    ``limit``: only the first N items, and a file is read no further than the N-th."""
    if spec.kind in PEER_SUITE_KINDS:
        from relbench.suites.peers import load_peer_suite

        return load_peer_suite(spec.kind, spec.path, vocab, limit)
    return load_items(spec, vocab, limit), []


def load_items(spec, vocab: Vocabulary, limit: int | None = None) -> list[SuiteItem]:
    if spec.kind == "shapes":
        from relbench.shapes.suite import shapes_items

        return shapes_items(spec.triples_per_predicate, vocab, spec.predicates, spec.seed)[:limit]
    if spec.kind == "jsonl":
        from relbench.suites.jsonl import load_jsonl_suite

        return load_jsonl_suite(spec.path, vocab, spec.images_root, limit=limit)
    raise ValueError(f"unknown suite kind {spec.kind!r}")
