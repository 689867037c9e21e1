"""Items read from each peer prompt file, and the lines rejected by reason.

    python benchmarks/peer_items.py [--geneval2 FILE] [--geneval FILE] [--t2i-compbench FILE]
                                    [--visor FILE] [--json benchmarks/results/peer_items.json]

Without a file for a kind, the repository's tiny fixture of that kind is read (its counts say the
reader runs, not what the peer's file holds). Items by number of triples, the cases built with
both negative kinds (per_item: all), and how many of those give generators the peer's own
prompts (the rest fall back to relbench's, see docs/benchmark.md).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIX = ROOT / "tests" / "fixtures" / "peers"
FIXTURES = {"geneval": FIX / "evaluation_metadata.jsonl", "geneval2": FIX / "geneval2_data.jsonl",
            "t2i_compbench": FIX / "spatial_val.txt", "visor": FIX / "text_spatial_rel_phrases.json"}


def count(kind: str, path: Path) -> dict:
    from relbench.spec.negatives import build_cases
    from relbench.spec.prompts import peer_prompt
    from relbench.spec.predicates import load_vocabulary
    from relbench.suites.peers import load_peer_suite, rejected_summary

    vocab = load_vocabulary()
    items, rejected = load_peer_suite(kind, str(path), vocab)
    cases, skipped = build_cases(items, [0], ["swap", "replace"], vocab, "all")
    peer = [c for c in cases if c.prompt is not None
            and peer_prompt(c.prompt, c.pos, c.neg, c.changed_triple, vocab) is not None]
    summary = rejected_summary(rejected)
    import hashlib

    return {"kind": kind, "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "fixture": path == FIXTURES[kind], "lines": len(items) + len(rejected),
            "items": len(items), "items_by_triples": dict(sorted(Counter(len(i.graph) for i in items).items())),
            "rejected": summary["n"], "rejected_by_reason": summary["by_reason"],
            "cases": len(cases), "cases_peer_prompts": len(peer), "items_without_negative": len(skipped)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for kind in FIXTURES:
        ap.add_argument(f"--{kind.replace('_', '-')}", type=Path, metavar="FILE")
    ap.add_argument("--json", metavar="FILE", help="write the figures (with provenance) here")
    args = ap.parse_args()
    out = []
    for kind, fixture in FIXTURES.items():
        r = count(kind, getattr(args, kind) or fixture)
        out.append(r)
        print(f"{kind}: {r['items']} of {r['lines']} lines read as items {r['items_by_triples']} (triples: items)"
              f"{' [fixture]' if r['fixture'] else ''}; {r['cases']} cases, {r['cases_peer_prompts']} with the "
              f"peer's prompts; {r['rejected']} rejected")
        for reason, n in r["rejected_by_reason"].items():
            print(f"    {n:4d}  {reason}")
    if args.json:
        from record import write_json

        write_json(args.json, {"peers": out}, device="cpu")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
