"""peer_scores: GenEval's position score, T2I-CompBench's spatial score and VISOR's scores, each
computed on img_pos as its authors' scoring code computes it, from any detector's boxes.

What is the peers' own and what is not: the rules, thresholds and aggregation are theirs
(djghosh13/geneval evaluation/evaluate_images.py + summary_scores.py; Karine-Huang/T2I-CompBench
UniDet_eval/2D_spatial_eval.py; microsoft/VISOR visor.py + its notebook's process_detection);
the detector is whichever one the config names. A number is comparable with a peer's published
table only when the detector is the peer's own (``PEER_DETECTORS``); provenance says which.
The definitions in prose are in docs/metrics.md ("Peer scores").

Only items whose g+ is one triple with a predicate the peer judges are scored (the peers'
prompts are all of that form); every other row is None for that peer, never a silent 0.
"""

from __future__ import annotations

import json
from typing import Literal, Optional

from pydantic import Field, model_validator

from relbench.plugin.metric import Aggregate, Metric, MetricArgs, Sample
from relbench.plugin.registry import register_metric
from relbench.spec.spatial_rules import covered, relation_holds, t2i_compbench_position_score

Box = tuple[float, float, float, float]
Found = dict[str, list[tuple[Box, float]]]  # name -> its boxes with scores, best first

BENCHMARKS = ("geneval", "t2i_compbench", "visor")

#: each peer's detection threshold: a box counts when its score is strictly above it (GenEval
#: `--options threshold` default 0.3; T2I-CompBench's UniDet `--confidence-threshold` default
#: 0.5, detectron2 keeps scores > it; VISOR's process_detection `score > 0.1`)
THRESHOLDS = {"geneval": 0.3, "t2i_compbench": 0.5, "visor": 0.1}

#: each peer's own detector: (relbench detector names that are it, the checkpoint it ran where
#: relbench can load that checkpoint, what the peer ran, caveat)
PEER_DETECTORS = {
    "geneval": (("mask2former",), None, "Mask2Former Swin-S, mmdet COCO weights",
                "the architecture only: GenEval's mmdet checkpoint has no transformers port, so weights differ"),
    "t2i_compbench": ((), None, "UniDet (Unified_learned_OCIM_RS200, detectron2)",
                      "UniDet has no transformers port: never comparable here"),
    "visor": (("owlvit",), "owlvit-base-patch32", "OWL-ViT google/owlvit-base-patch32", ""),
}

#: T2I-CompBench resizes every image with torchvision Resize(479, max_size=480) before UniDet,
#: and its 150 px "near" distance is measured on the resized image
T2I_RESIZE, T2I_MAX_SIZE = 479, 480

#: VISOR draws 4 images per prompt; VISOR_k = share of prompts with >= k of them correct
VISOR_IMAGES = 4


class PeerScoresArgs(MetricArgs):
    benchmarks: list[Literal["geneval", "t2i_compbench", "visor"]] = Field(default_factory=lambda: list(BENCHMARKS))
    detector: str = "shapes"
    model: Optional[str] = Field(None, description="the detector's model: local directory or HF-cache id")
    # The detector must keep every box some peer counts; each peer's own threshold is applied here.
    box_threshold: float = Field(0.1, ge=0.0, le=1.0)
    text_threshold: float = Field(0.1, ge=0.0, le=1.0)
    device: Optional[str] = None
    batch_size: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _keeps_peer_boxes(self):
        if not self.benchmarks:
            raise ValueError("benchmarks: give at least one of " + ", ".join(BENCHMARKS))
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ValueError("benchmarks: listed twice")
        low = min(THRESHOLDS[b] for b in self.benchmarks)
        for name in ("box_threshold", "text_threshold"):
            if getattr(self, name) > low:
                raise ValueError(f"{name}: {getattr(self, name)} would drop boxes a peer counts; allowed: at most "
                                 f"{low} (the lowest threshold of {', '.join(self.benchmarks)}; each peer's own "
                                 f"threshold is applied to the scores)")
        return self


# --- the peers' per-image rules (pure functions of the boxes) -------------------------------


def _kept(found: Found, name: str, threshold: float) -> list[tuple[Box, float]]:
    return [(tuple(float(v) for v in b), float(s)) for b, s in found.get(name) or () if s > threshold]


def geneval_correct(pred: str, subject: str, obj: str, found: Found) -> float:
    """GenEval evaluate(): each class's most confident box above 0.3 (count 1), the object's
    group matched first; correct iff both exist and ``pred`` is among relative_position(A, B)."""
    a, b = _kept(found, subject, THRESHOLDS["geneval"]), _kept(found, obj, THRESHOLDS["geneval"])
    if not a or not b:
        return 0.0
    return float(bool(relation_holds("geneval", pred, a[0][0], b[0][0])))


def t2i_frame(box: Box, size: tuple[int, int]) -> Box:
    """A box in T2I-CompBench's frame: the image resized as torchvision Resize(479, max_size=480)."""
    w, h = size
    short, long = min(w, h), max(w, h)
    new_short, new_long = T2I_RESIZE, int(T2I_RESIZE * long / short)
    if new_long > T2I_MAX_SIZE:
        new_short, new_long = int(T2I_MAX_SIZE * new_short / new_long), T2I_MAX_SIZE
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    sx, sy = nw / w, nh / h
    return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy


def t2i_compbench_score(pred: str, subject: str, obj: str, found: Found, size: tuple[int, int]) -> float:
    """2D_spatial_eval.py's per-image score: the first (most confident) box of each object above
    0.5; both found: 0.25·conf1 + 0.25·conf2 + determine_position/2; one found: 0.25·its conf;
    then any score below 0.5 is set to 0 (so one object alone always scores 0)."""
    a, b = _kept(found, subject, THRESHOLDS["t2i_compbench"]), _kept(found, obj, THRESHOLDS["t2i_compbench"])
    if a and b:
        position = t2i_compbench_position_score(pred, t2i_frame(a[0][0], size), t2i_frame(b[0][0], size))
        score = 0.25 * a[0][1] + 0.25 * b[0][1] + position / 2
    elif a or b:
        score = 0.25 * (a or b)[0][1]
    else:
        score = 0.0
    return 0.0 if score < 0.5 else score


def visor_image(pred: str, subject: str, obj: str, found: Found) -> tuple[float, float]:
    """(both objects detected, SRA): process_detection keeps boxes scoring > 0.1, and the
    relation holds when ANY pair (a box of A, a box of B) has its centroids the right way round."""
    a, b = _kept(found, subject, THRESHOLDS["visor"]), _kept(found, obj, THRESHOLDS["visor"])
    sra = any(relation_holds("visor", pred, ba, bb) for ba, _ in a for bb, _ in b)
    return float(bool(a and b)), float(sra)


def visor_at_least(k: int):
    def per_prompt(values: list[float]) -> Optional[float]:
        # VISOR_k is defined over the 4 images of a prompt; over another number it is not VISOR's
        return float(sum(values) >= k) if len(values) == VISOR_IMAGES else None

    per_prompt.__qualname__ = f"visor_at_least_{k}"
    return per_prompt


def any_correct(values: list[float]) -> float:
    """summary_scores.py's "% correct prompts": a prompt counts when any of its images is correct."""
    return float(any(v == 1.0 for v in values))


def comparability(benchmark: str, detector: str, model: Optional[str] = None) -> dict:
    """Whether ``detector`` (with ``model``; None = the backend's default) is the peer's own."""
    names, checkpoint, theirs, caveat = PEER_DETECTORS[benchmark]
    own = detector in names
    if own and checkpoint and model is not None and checkpoint not in model:
        own, caveat = False, f"{detector} but not {benchmark}'s checkpoint ({checkpoint}): not comparable with its tables"
    elif not own and names:
        caveat = f"not {benchmark}'s detector: not comparable with its tables"
    return {"detector": detector, "peer_detector": theirs, "own_detector": own, "note": caveat}


# --- the plugin -----------------------------------------------------------------------------

COLUMNS = {
    "geneval": ["geneval_correct"],
    "t2i_compbench": ["t2i_compbench_score"],
    "visor": ["visor_detected", "visor_sra_given_detected", "visor_correct"],
}


@register_metric("peer_scores")
class PeerScores(Metric):
    """The peers' own spatial scores on img_pos, from a pluggable detector's boxes."""

    Args = PeerScoresArgs
    consumes = frozenset({"images", "graphs"})
    version = "1"

    def __init__(self, args: PeerScoresArgs, ctx):
        super().__init__(args, ctx)
        from relbench.models.detectors import LazyDetector

        self._detector = LazyDetector("peer_scores", args.detector, args, args.device or ctx.device, ctx.progress)
        self._cache: dict[str, tuple[Found, tuple[int, int]]] = {}  # image key -> (boxes, (width, height))
        self.flags = [f"{b}: {c['note']}" for b in args.benchmarks if (c := comparability(b, args.detector, args.model))["note"]]

    def weights_identity(self):
        return {"detector": self._detector.identity()}

    def provenance(self) -> dict:
        every = bool(getattr(self._detector.cls, "all_boxes", False))
        return {"peer_scores": {
            b: {**comparability(b, self.args.detector, self.args.model), "model": self.args.model, "threshold": THRESHOLDS[b],
                "boxes": "every box per name" if every else "the best box per name only"}
            for b in self.args.benchmarks}}

    def columns(self) -> list[str]:
        return [c for b in self.args.benchmarks for c in COLUMNS[b]] + ["peer_boxes", "peer_image"]

    def aggregates(self) -> list[Aggregate]:
        d = self.args.detector
        out: list[Aggregate] = []
        if "geneval" in self.args.benchmarks:
            out += [
                Aggregate("geneval_position", "geneval_correct", unit="image_pos",
                          description=f"GenEval position: share of correct img_pos ({d} boxes)"),
                Aggregate("geneval_position_prompts", "geneval_correct", unit="prompt", per_prompt=any_correct,
                          description=f"GenEval '% correct prompts': share of prompts with any img_pos correct ({d} boxes)"),
            ]
        if "t2i_compbench" in self.args.benchmarks:
            out.append(Aggregate("t2i_compbench_spatial", "t2i_compbench_score", unit="image_pos",
                                 description=f"T2I-CompBench spatial: mean image score over img_pos ({d} boxes)"))
        if "visor" in self.args.benchmarks:
            out += [
                Aggregate("visor_oa", "visor_detected", unit="image_pos",
                          description=f"VISOR OA: share of img_pos with both objects detected ({d} boxes)"),
                Aggregate("visor_cond", "visor_sra_given_detected", unit="image_pos",
                          description=f"VISOR_cond: relation right, given both detected ({d} boxes)"),
                Aggregate("visor_uncond", "visor_correct", unit="image_pos",
                          description=f"VISOR_uncond: both detected and relation right ({d} boxes)"),
            ]
            out += [Aggregate(f"visor_{k}", "visor_correct", unit="prompt", per_prompt=visor_at_least(k),
                              description=f"VISOR_{k}: share of prompts with >= {k} of their {VISOR_IMAGES} img_pos "
                                          f"correct ({d} boxes; needs {VISOR_IMAGES} seeds)")
                    for k in range(1, VISOR_IMAGES + 1)]
        return out

    def run_flags(self, run: str, rows: list[dict]) -> list[str]:
        """VISOR_k needs 4 images per prompt (seeds): say when prompts have another number."""
        if "visor" not in self.args.benchmarks:
            return []
        images: dict[str, set] = {}
        for r in rows:
            if r.get("visor_correct") is not None:
                item, seed = json.loads(r["peer_image"])
                images.setdefault(item, set()).add(seed)
        other = sum(len(s) != VISOR_IMAGES for s in images.values())
        if not other:
            return []
        return [f"run {run}: {other} of {len(images)} prompts have other than {VISOR_IMAGES} scored images "
                f"(VISOR draws {VISOR_IMAGES} per prompt: give 4 seeds); VISOR_1..4 leave them out"]

    def score(self, samples: list[Sample]) -> list[dict[str, Optional[float]]]:
        self._detect_all(samples)
        return [self._row(s) for s in samples]

    def _detect_all(self, samples: list[Sample]) -> None:
        wanted: dict[str, tuple[Sample, list[str]]] = {}
        for s in samples:
            key = s.image_pos_key
            if key is not None and key not in self._cache and _judged(s.case.pos, self.ctx.vocab, self.args.benchmarks):
                names = wanted.setdefault(key, (s, []))[1]
                names.extend(n for t in s.case.pos for n in (t.subject, t.object) if n not in names)
        keys = list(wanted)
        for start in range(0, len(keys), self.args.batch_size):
            chunk = keys[start : start + self.args.batch_size]
            items = [(wanted[k][0].image_pos, wanted[k][1]) for k in chunk]
            for key, (image, _), found in zip(chunk, items, self._detector.get().detect_all_many(items)):
                self._cache[key] = (found, (int(image.shape[1]), int(image.shape[0])))

    def _row(self, s: Sample) -> dict[str, Optional[float]]:
        row: dict[str, Optional[float]] = {c: None for c in self.columns()}
        triple = _judged(s.case.pos, self.ctx.vocab, self.args.benchmarks)
        if s.image_pos_key is None or triple is None:
            return row
        subject, pred, obj = triple
        found, size = self._cache[s.image_pos_key]
        # which g+ image this is (an item's cases of one seed share it): run_flags counts a prompt's images
        row["peer_image"] = json.dumps([s.case.item_id, s.case.seed])
        row["peer_boxes"] = json.dumps({n: [[round(float(v), 2) for v in b] + [round(float(sc), 4)] for b, sc in bs]
                                        for n, bs in sorted(found.items()) if bs}, separators=(",", ":"))
        for b in self.args.benchmarks:
            if pred not in covered(b):
                continue
            if b == "geneval":
                row["geneval_correct"] = geneval_correct(pred, subject, obj, found)
            elif b == "t2i_compbench":
                row["t2i_compbench_score"] = t2i_compbench_score(pred, subject, obj, found, size)
            else:
                both, sra = visor_image(pred, subject, obj, found)
                row["visor_detected"] = both
                row["visor_sra_given_detected"] = sra if both else None
                row["visor_correct"] = both * sra
        return row

    def close(self) -> None:
        self._detector.close()
        self._cache.clear()


def _judged(graph, vocab, benchmarks) -> Optional[tuple[str, str, str]]:
    """(subject, canonical predicate, object) of a one-triple g+ with two distinct names (the
    form every peer prompt has) whose predicate one of ``benchmarks`` judges; None for anything
    else (no peer defines a score for it, so its image is not even detected)."""
    if len(graph) != 1 or graph[0].subject == graph[0].object:
        return None
    t = graph[0]
    pred = vocab.get(t.predicate).name
    return (t.subject, pred, t.object) if any(pred in covered(b) for b in benchmarks) else None
