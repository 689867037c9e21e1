"""The data model: triples, graphs, cases and generation requests.

A graph is a tuple of triples; cases carry graphs, never bare triples, so nothing downstream
may assume a single relation even though the shipped suites use one triple per graph.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

Box = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in pixels, y grows downward


@dataclass(frozen=True)
class Triple:
    subject: str
    predicate: str
    object: str

    def text(self) -> str:
        return f"{self.subject} {self.predicate} {self.object}"


Graph = tuple[Triple, ...]


def graph_to_json(graph: Graph) -> list[list[str]]:
    return [[t.subject, t.predicate, t.object] for t in graph]


def graph_from_json(items) -> Graph:
    return tuple(Triple(*item) for item in items)


def graph_objects(graph: Graph) -> list[str]:
    """Distinct object names in order of first mention."""
    seen: dict[str, None] = {}
    for t in graph:
        seen.setdefault(t.subject)
        seen.setdefault(t.object)
    return list(seen)


@dataclass(frozen=True)
class Node:
    """An object of a suite item as its prompt states it: how many, and with which attributes
    ("two striped cows" -> Node("cow", 2, ("striped",))). Triples name nodes by ``name``; a node
    in no triple is still an object the prompt asks for ("..., and a purple dog")."""

    name: str
    count: int = 1
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptPart:
    """A piece of a peer's prompt: plain text, the phrase naming a node, or a triple's relation phrase."""

    text: str
    node: str | None = None  # the node (by name) this phrase states, e.g. "two striped cows"
    triple: int | None = None  # the index of the triple whose relation phrase this is


@dataclass(frozen=True)
class PeerPrompt:
    """A peer benchmark's own prompt for g+, cut into parts so that a negative graph that
    changes one triple can be written the way the peer writes (relbench.spec.prompts.peer_prompt).

    ``phrases``: the peer's spelling of each predicate ((name, phrase) pairs, e.g. GenEval 2
    writes "below" as "under"); a predicate it never spells reads as the vocabulary's phrase.
    """

    parts: tuple[PromptPart, ...]
    phrases: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts)


@dataclass(frozen=True)
class Reference:
    """A real (or reference-rendered) image of g+ with the true box of each named object."""

    image: str | None  # path to the image file; None when a suite renders references on demand
    boxes: dict[str, Box] = field(default_factory=dict)
    size: tuple[int, int] | None = None  # (width, height) of the image the boxes refer to


@dataclass(frozen=True)
class SuiteItem:
    """One positive graph from a suite, before negatives and seeds are applied."""

    id: str
    graph: Graph
    reference: Reference | None = None
    #: the suite's own atom questions about this graph, (question, expected answer), e.g. GenEval
    #: 2's vqa_list; the vlm_judge's geneval2 mode scores them (GenEval 2's Soft-TIFA) when present
    questions: tuple[tuple[str, str], ...] = ()
    #: the objects with their counts and attributes, where the suite states them (peer prompts)
    nodes: tuple[Node, ...] = ()
    #: the peer's own prompt for this graph: generators are given it verbatim in relation mode
    prompt: PeerPrompt | None = None


#: how g- is made from g+ (relbench.spec.negatives): the one list config, cases and results allow
NegativeKind = Literal["swap", "replace", "hard", "adversarial"]


@dataclass(frozen=True)
class Case:
    """The unit of evaluation: g+ vs one negative g-, drawn with one seed."""

    id: str
    item_id: str  # the suite item; seeds of one item are correlated (bootstrap clusters)
    pos: Graph
    neg: Graph
    negative_kind: NegativeKind
    seed: int  # the replicate index of the benchmark's `seeds` (reported as is)
    reference: Reference | None = None
    questions: tuple[tuple[str, str], ...] = ()  # the suite's atom questions about g+ (SuiteItem.questions)
    nodes: tuple[Node, ...] = ()  # SuiteItem.nodes
    prompt: PeerPrompt | None = None  # SuiteItem.prompt: the peer's prompt of g+
    changed_triple: int = 0  # the index of the triple of g+ that the negative changed

    @property
    def noise_seed(self) -> int:
        """The seed generators draw this case's g+ and g- with: see ``noise_seed``."""
        return noise_seed(self.seed, self.item_id)


def noise_seed(seed: int, item_id: str) -> int:
    """The sampling seed of one (benchmark seed, suite item): shared by g+ and g- and by every
    run, so pairs and run-vs-run comparisons see the same noise, and distinct across items.

    Why not the benchmark seed itself: then every item of a seed starts from the same initial
    noise, whose layout tendency moves all their outcomes together. In the lab (docs/lab-notebook.md,
    round 5) one arm was right in 0.77 of seed-0 images and 0.33 of seed-1 images, and
    intervals that resample items as independent were too narrow.
    """
    digest = hashlib.sha256(f"relbench-noise:{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Request:
    """What a generator is asked to draw. Size is (width, height)."""

    prompt: str
    graph: Graph
    seed: int
    size: tuple[int, int]
    #: the suite's boxes for this graph, sorted (object name, box as fractions of the image),
    #: filled only for generators whose ``uses`` has "layout" and only where the suite has them
    layout: tuple[tuple[str, Box], ...] | None = None

    def key(self, fingerprint: str, uses: frozenset[str]) -> str:
        """Content address of the image: only the inputs the generator actually reads count,
        so a text-only generator draws "a dog and a horse" once for g+ and g-."""
        payload = {"fp": fingerprint, "seed": self.seed, "size": list(self.size)}
        if "prompt" in uses:
            payload["prompt"] = self.prompt
        if "graph" in uses:
            payload["graph"] = graph_to_json(self.graph)
        if "layout" in uses:
            payload["layout"] = [[name, list(box)] for name, box in self.layout] if self.layout else None
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def stable_hash(obj, n: int = 16) -> str:
    """Short sha256 of a JSON-able object, for fingerprints and cache keys."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def _default(o):
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")
