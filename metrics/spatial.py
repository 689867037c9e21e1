"""spatial: detect subject and object in each image, then judge the predicate from the boxes.

img_pos is judged against its own graph g+, img_neg against g-. Detection and relation are
reported separately, as VISOR does: OA (both objects detected), accuracy given detection
(cond), and the unconditional rate (detected and correct, over checkable images). Predicates
a rule set has no rule for (all non-geometric ones, e.g. "eating") make the image not
checkable: they are counted in their own aggregate, never silently passed.

The rules themselves are plain functions: ``relation_holds(rule_set, predicate, A, B)``.
With ``depth:`` set, a depth model's nearness map judges "in front of" / "behind" under the
depth rule sets (relbench.spec.depth_rules), in columns and aggregates of their own.

For the confusion matrix (what it drew instead), img_pos's tested triple is also judged against
every candidate predicate (the vocabulary's geometric predicates the first rule set covers):
``spatial_seen`` lists those that hold (';'-joined; several may hold at once, e.g. "above" and
"near", and each counts), ``spatial_seen_n`` how many (None where the boxes could not be judged).

Over 400 lines: one metric whose judges (box rules, the depth judge, the confusion
row) share one detection cache per image; the rules are in relbench.spec.spatial_rules and
relbench.spec.depth_rules, the detectors in relbench.models.detectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from pydantic import Field, field_validator

from relbench.spec.spatial_rules import (  # noqa: F401  (re-exported: relbench.metrics.spatial.relation_holds)
    RULE_SETS,
    check_rule_set,
    covered,
    geneval_relations,
    relation_holds,
    t2i_compbench_image_score,
    t2i_compbench_position_score,
)
from relbench.spec.data import Graph, graph_objects
from relbench.spec.depth_rules import DEPTH_PREDICATES, DEPTH_RULE_SETS
from relbench.errors import UserError
from relbench.models.detectors import Detector
from relbench.plugin.metric import Aggregate, Confusion, Metric, MetricArgs, Sample
from relbench.plugin.registry import register_metric

if TYPE_CHECKING:  # numpy stays out of plugin discovery
    import numpy as np

class SpatialArgs(MetricArgs):
    rule_set: Union[str, list[str]] = "relbench"
    detector: str = Field("shapes", description="shapes, shapes_snap, grounding_dino, owlvit, owlv2, mask2former")
    model: Optional[str] = Field(None, description="grounding_dino / owlvit / owlv2 / mask2former: local directory or HF-cache id")
    box_threshold: float = Field(0.35, ge=0.0, le=1.0)
    text_threshold: float = Field(0.25, ge=0.0, le=1.0)
    score_threshold: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="owlvit / owlv2 / mask2former: keep boxes scoring above it "
                                          "(default: the peer's, 0.1 VISOR's for OWL, 0.3 GenEval's for Mask2Former)")
    judge: Optional[str] = Field(
        None, pattern=r"^[a-z][a-z0-9_]*$",
        description="a name for this detector's verdicts: columns become {judge}_..., aggregates spatial_{judge}_..., "
                    "so a second spatial metric with another detector can judge the same run")
    device: Optional[str] = None
    batch_size: int = Field(8, ge=1)
    depth: str = Field("none", description="depth judge of 'in front of' / 'behind': none | dpt | depth_anything")
    depth_model: Optional[str] = Field(None, description="depth: local directory or HF-cache id (default per model)")
    depth_rule_set: Union[str, list[str]] = "depth"

    @field_validator("rule_set")
    @classmethod
    def _known(cls, v):
        return _rule_set_names(v, RULE_SETS, "rule_set")

    @field_validator("depth_rule_set")
    @classmethod
    def _known_depth(cls, v):
        return _rule_set_names(v, DEPTH_RULE_SETS, "depth_rule_set")


def _rule_set_names(v, known, key: str):
    names = [v] if isinstance(v, str) else list(v)
    if not names:
        raise ValueError(f"{key}: give at least one rule set")
    for n in names:
        if n not in known:
            raise ValueError(f"unknown rule set {n!r} (known: {', '.join(known)})")
    if len(set(names)) != len(names):
        raise ValueError(f"{key}: listed twice")
    return v


#: img_pos's confusion: the candidate predicates that hold (';'-joined), and how many
SEEN_COLUMNS = ("spatial_seen", "spatial_seen_n")

#: the share of a run's images with no object found above which the detector is reported blind
BLIND_SHARE = 0.95


def _not_detectable_count(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Number of images (bootstrap-weighted) with an object the detector has no class for."""
    import numpy as np

    return np.sum(weights * (values == 1.0), axis=-1)


def _not_checkable_count(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    import numpy as np

    """Number of images (bootstrap-weighted) whose graph could not be judged; weights (B, N) -> (B,)."""
    return np.sum(weights * (values == 0.0), axis=-1)


@register_metric("spatial")
class Spatial(Metric):
    """Spatial relation accuracy from detected boxes, under selectable published rule sets."""

    Args = SpatialArgs
    consumes = frozenset({"images", "graphs"})
    version = "7"  # 7: spatial_seen (the predicates that hold for img_pos's tested triple); 6: names a
    # closed-vocabulary detector cannot detect make their image not checkable

    def __init__(self, args: SpatialArgs, ctx):
        super().__init__(args, ctx)
        self.rule_sets = [args.rule_set] if isinstance(args.rule_set, str) else list(args.rule_set)
        for r in self.rule_sets:
            check_rule_set(r)
        self.prefixed = not isinstance(args.rule_set, str)
        from relbench.models.detectors import LazyDetector

        self._detector = LazyDetector("spatial", args.detector, args, args.device or ctx.device, ctx.progress)
        self._cache: dict[tuple[str, str], Any] = {}  # (image key, name) -> detection
        self.depth_rule_sets = _depth_rule_sets(args)
        self._depth = None
        self._depth_stats: dict[tuple[str, str], Optional[dict]] = {}  # (image key, name) -> rule set -> value

    # --- plumbing -----------------------------------------------------------------------------

    def weights_identity(self):
        from relbench.models.detectors import DETECTORS

        out = {"detector": DETECTORS[self.args.detector].identity(self.args)}
        if self.depth_rule_sets:
            from relbench.models.depth import DEPTH_MODELS

            out["depth"] = DEPTH_MODELS[self.args.depth].identity(self.args)
        return out

    def key(self) -> str:
        return f"spatial_{self.args.judge}" if self.args.judge else "spatial"

    def provenance(self) -> dict:
        """Which detector judged (its settings and weights' digest), and the verdict columns
        agreement between judges reads."""
        from relbench.models.detectors import DETECTORS

        cls = DETECTORS[self.args.detector]
        rule = self._p("relbench" if "relbench" in self.rule_sets else self.rule_sets[0])
        return {**cls.settings(self.args), "weights_sha256": cls.identity(self.args),
                "verdicts": [self._col(f"{rule}pos_uncond"), self._col(f"{rule}neg_uncond")]}

    def _col(self, column: str) -> str:
        return f"{self.args.judge}_{column}" if self.args.judge else column

    def _closed(self) -> bool:
        from relbench.models.detectors import DETECTORS

        return DETECTORS[self.args.detector].detectable is not Detector.detectable

    @property
    def detector(self):
        return self._detector.get()

    @property
    def depth_model(self):
        if self._depth is None:
            from relbench.io.progress import library_bars
            from relbench.models.depth import DEPTH_MODELS, build_depth

            with library_bars(self.ctx.progress, DEPTH_MODELS[self.args.depth].libraries):
                self._depth = build_depth(self.args.depth, self.args, self.args.device or self.ctx.device)
        return self._depth

    def _p(self, rule: str) -> str:
        return f"{rule}_" if self.prefixed or rule in DEPTH_RULE_SETS else ""

    def columns(self) -> list[str]:
        return [self._col(c) for c in self._columns()]

    def _columns(self) -> list[str]:
        cols = ["pos_detected", "neg_detected", "pos_boxes", "neg_boxes"]
        if self._closed():
            cols += ["pos_undetectable", "neg_undetectable"]
        if self.depth_rule_sets:
            cols += ["pos_nearness", "neg_nearness"]
        for r in self.rule_sets + self.depth_rule_sets:
            p = self._p(r)
            for side in ("pos", "neg"):
                cols += [f"{p}{side}_checkable", f"{p}{side}_correct", f"{p}{side}_uncond", f"{p}{side}_chance"]
                if r in GRADED:
                    cols.append(f"{p}{side}_score")
            cols += [f"{p}pair_correct", f"{p}pair_chance"]
        return cols + list(SEEN_COLUMNS)

    def candidates(self) -> tuple[str, ...]:
        """The predicates a confusion row can see: geometric, covered by the first rule set, in
        vocabulary order (several rule sets: the first one's matrix is reported)."""
        vocab, have = self.ctx.vocab, set(covered(self.rule_sets[0]))
        return tuple(n for n in vocab.names() if vocab.get(n).geometric and n in have)

    def confusions(self) -> list[Confusion]:
        return [Confusion("spatial", SEEN_COLUMNS[0], SEEN_COLUMNS[1], self.candidates(), "set")]

    def aggregates(self) -> list[Aggregate]:
        import dataclasses

        def named(a: Aggregate) -> Aggregate:
            return dataclasses.replace(
                a, key=a.key.replace("spatial", self.key(), 1), column=self._col(a.column),
                chance_column=a.chance_column and self._col(a.chance_column),
                requires_detected=tuple(k.replace("spatial", self.key(), 1) for k in a.requires_detected))

        return [named(a) for a in self._aggregates()]

    def _aggregates(self) -> list[Aggregate]:
        aggs = [
            Aggregate("spatial_pos_detected", "pos_detected", description="img_pos: share with every object of g+ detected (OA)"),
            Aggregate("spatial_neg_detected", "neg_detected", description="img_neg: share with every object of g- detected (OA)"),
        ]
        for r in self.rule_sets + self.depth_rule_sets:
            p, k = self._p(r), f"spatial_{self._p(r)}"
            for side, g in (("pos", "g+"), ("neg", "g-")):
                aggs += [
                    Aggregate(f"{k}{side}_acc", f"{p}{side}_uncond", chance_column=f"{p}{side}_chance",
                              requires_detected=(f"spatial_{side}_detected",),
                              description=f"[{r}] img_{side}: detected and {g} relation holds, over checkable images (VISOR_uncond)"),
                    Aggregate(f"{k}{side}_acc_given_detected", f"{p}{side}_correct", chance_column=f"{p}{side}_chance",
                              requires_detected=(f"spatial_{side}_detected",),
                              description=f"[{r}] img_{side}: {g} relation holds, given both objects detected (VISOR_cond)"),
                    Aggregate(f"{k}{side}_checkable", f"{p}{side}_checkable", higher_is_better=None,
                              description=f"[{r}] img_{side}: share of images whose {g} the rule set can judge"),
                    Aggregate(f"{k}{side}_not_checkable", f"{p}{side}_checkable", statistic=_not_checkable_count,
                              higher_is_better=None,
                              description=f"[{r}] img_{side}: number of images whose {g} has a predicate without a rule (not judged)"),
                ]
                if r in GRADED:
                    aggs.append(Aggregate(f"{k}{side}_score", f"{p}{side}_score", description=f"[{r}] img_{side}: {GRADED[r]}"))
            aggs.append(Aggregate(f"{k}pair_acc", f"{p}pair_correct", chance_column=f"{p}pair_chance",
                                  headline=r not in DEPTH_RULE_SETS,
                                  requires_detected=("spatial_pos_detected", "spatial_neg_detected"),
                                  description=f"[{r}] img_pos holds g+ and img_neg holds g- (both detected and correct)"))
        if self._closed():
            aggs += [Aggregate(f"spatial_{side}_not_detectable", f"{side}_undetectable", statistic=_not_detectable_count,
                               higher_is_better=None,
                               description=f"img_{side}: number of images with an object the {self.args.detector} "
                                           f"detector has no class for (not detectable, not judged)")
                     for side in ("pos", "neg")]
        return aggs

    # --- scoring ------------------------------------------------------------------------------

    def run_flags(self, run: str, rows: list[dict]) -> list[str]:
        """A detector that found no object in (nearly) every image of a run: its accuracies are
        zeros about the detector, not the generator (the shapes detector on FLUX images)."""
        from relbench.models.detectors import DETECTORS

        boxes = [r[self._col(f"{side}_boxes")] for r in rows for side in ("pos", "neg")
                 if r.get(self._col(f"{side}_boxes")) is not None]
        empty = sum(b == "{}" for b in boxes)
        if not boxes or empty < BLIND_SHARE * len(boxes):
            return []
        return [f"run {run}: the {self.args.detector} detector found no object in {100 * empty // len(boxes)}% of "
                f"its images ({empty} of {len(boxes)}): {DETECTORS[self.args.detector].blind_hint}"]

    def score(self, samples: list[Sample]) -> list[dict[str, Optional[float]]]:
        self._detect_all(samples)
        if self.depth_rule_sets:
            self._depth_all(samples)
        return [self._row(s) for s in samples]

    def _detect_all(self, samples: list[Sample]) -> None:
        """Detect every (image, name) pair not seen before, in batches; each image loads once."""
        wanted: dict[str, tuple[Sample, str, list[str]]] = {}
        for s in samples:
            for key, graph, side in ((s.image_pos_key, s.case.pos, "pos"), (s.image_neg_key, s.case.neg, "neg")):
                if key is None:
                    continue
                names = [n for n in _names(graph) if (key, n) not in self._cache]
                if names:
                    _, _, have = wanted.setdefault(key, (s, side, []))
                    have.extend(n for n in names if n not in have)
        keys = list(wanted)
        for start in range(0, len(keys), self.args.batch_size):
            chunk = keys[start : start + self.args.batch_size]
            items = []
            for key in chunk:
                s, side, names = wanted[key]
                items.append((s.image_pos if side == "pos" else s.image_neg, names))
            for key, (_, names), found in zip(chunk, items, self.detector.detect_many(items)):
                for n in names:
                    self._cache[(key, n)] = found.get(n)

    def _depth_all(self, samples: list[Sample]) -> None:
        """Nearness of every detected (image, name) pair whose graph has a depth predicate, in
        batches; each map is reduced to one value per object and rule set, then dropped."""
        from relbench.spec.depth_rules import region_median, t2i_compbench_3d_map, t2i_compbench_3d_mean

        wanted: dict[str, tuple[Sample, str, list[str]]] = {}
        for s in samples:
            for key, graph, side in ((s.image_pos_key, s.case.pos, "pos"), (s.image_neg_key, s.case.neg, "neg")):
                if key is None or not any(self.ctx.vocab.get(t.predicate).name in DEPTH_PREDICATES for t in graph):
                    continue
                names = [n for n in _names(graph) if (key, n) not in self._depth_stats]
                if names:
                    _, _, have = wanted.setdefault(key, (s, side, []))
                    have.extend(n for n in names if n not in have)
        keys = list(wanted)
        masks = getattr(self.detector, "masks", None)  # visible pixels, where the detector knows them
        for start in range(0, len(keys), self.args.batch_size):
            chunk = keys[start : start + self.args.batch_size]
            images = [(s.image_pos if side == "pos" else s.image_neg) for s, side, _ in (wanted[k] for k in chunk)]
            for key, image, near in zip(chunk, images, self.depth_model.nearness_many(images)):
                names = wanted[key][2]
                theirs = t2i_compbench_3d_map(near) if "t2i_compbench_3d" in self.depth_rule_sets else None
                regions = masks(image, names) if masks is not None else {}
                for n in names:
                    det = self._cache.get((key, n))
                    if det is None:
                        self._depth_stats[(key, n)] = None
                        continue
                    mask = regions.get(n)
                    stats = {"depth": region_median(near, det[0] if mask is None or not mask.any() else mask)}
                    if theirs is not None:
                        stats["t2i_compbench_3d"] = t2i_compbench_3d_mean(theirs, det[0])
                    self._depth_stats[(key, n)] = stats

    def _row(self, s: Sample) -> dict[str, Optional[float]]:
        return {self._col(k): v for k, v in self._plain_row(s).items()}

    def _plain_row(self, s: Sample) -> dict[str, Optional[float]]:
        row: dict[str, Optional[float]] = {}
        closed = self._closed()
        judged = {}
        for side, key, graph in (("pos", s.image_pos_key, s.case.pos), ("neg", s.image_neg_key, s.case.neg)):
            if key is None:
                row[f"{side}_detected"] = None
                row[f"{side}_boxes"] = None
                judged[side] = None
                if closed:
                    row[f"{side}_undetectable"] = None
                if self.depth_rule_sets:
                    row[f"{side}_nearness"] = None
                continue
            dets = {n: self._cache.get((key, n)) for n in _names(graph)}
            blind = closed and not all(self.detector.detectable(n) for n in dets)
            if closed:
                row[f"{side}_undetectable"] = float(blind)
            # an object the detector has no class for is neither found nor missed
            row[f"{side}_detected"] = None if blind else float(all(d is not None for d in dets.values()))
            row[f"{side}_boxes"] = boxes_json(dets)
            judged[side] = dets
            if self.depth_rule_sets:
                row[f"{side}_nearness"] = self._nearness_json(key, dets)
        keys = {"pos": s.image_pos_key, "neg": s.image_neg_key}
        for r in self.rule_sets + self.depth_rule_sets:
            p = self._p(r)
            uncond, chances = {}, {}
            for side, graph in (("pos", s.case.pos), ("neg", s.case.neg)):
                dets = judged[side]
                if dets is None:
                    checkable, correct, score = None, None, None
                elif row[f"{side}_detected"] is None:  # a name the detector cannot see
                    checkable, correct, score = 0.0, None, None
                elif r in DEPTH_RULE_SETS:
                    checkable, correct, score = self._judge_depth(r, graph, dets, keys[side])
                else:
                    checkable, correct, score = self._judge(r, graph, dets)
                row[f"{p}{side}_checkable"] = checkable
                row[f"{p}{side}_correct"] = correct
                u = None
                if checkable == 1.0:
                    u = float(row[f"{side}_detected"] == 1.0 and correct == 1.0)
                row[f"{p}{side}_uncond"] = uncond[side] = u
                row[f"{p}{side}_chance"] = chances[side] = self._chance(s, side, graph, r) if checkable == 1.0 else None
                if r in GRADED:
                    row[f"{p}{side}_score"] = score
            both = (uncond["pos"], uncond["neg"])
            row[f"{p}pair_correct"] = None if None in both else float(both == (1.0, 1.0))
            cp, cn = chances["pos"], chances["neg"]
            row[f"{p}pair_chance"] = None if cp is None or cn is None else cp * cn  # independent images
        row.update(self._seen(s, judged["pos"]))
        return row

    def _seen(self, s: Sample, dets: Optional[dict]) -> dict[str, Optional[float | str]]:
        """Which candidate predicates hold between img_pos's tested subject and object boxes."""
        from relbench.results.write import tested_triple

        t, _ = tested_triple(s.case)
        a, b = (None, None) if dets is None else (dets.get(t.subject), dets.get(t.object))
        if a is None or b is None or t.subject == t.object:
            return dict.fromkeys(SEEN_COLUMNS)
        rule, vocab = self.rule_sets[0], self.ctx.vocab
        held = [p for p in self.candidates() if relation_holds(rule, p, a[0], b[0], vocab=vocab)]
        return {SEEN_COLUMNS[0]: ";".join(held), SEEN_COLUMNS[1]: float(len(held))}

    def _chance(self, s: Sample, side: str, graph: Graph, rule: str) -> Optional[float]:
        """The detector's chance model for this graph (the shapes world has one), else None."""
        model = getattr(self.detector, "chance", None)
        if model is None or rule in DEPTH_RULE_SETS:  # the shapes chance model simulates boxes, not depth
            return None
        image = s.image_pos if side == "pos" else s.image_neg
        return model(graph, rule, (image.shape[1], image.shape[0]), self.ctx.vocab)

    def _judge(self, rule: str, graph: Graph, dets: dict) -> tuple[float, Optional[float], Optional[float]]:
        """(checkable, correct given detection, T2I graded score) for one image and its graph.

        A graph is checkable only when every triple is (no triple is skipped silently); a
        triple whose subject and object share a name cannot be told apart by name-queried
        detectors and is not checkable. Correct = every triple holds. The T2I score of a graph
        is the mean of its triples' image scores (0 when an object is missing)."""
        vocab = self.ctx.vocab
        verdicts, scores = [], []
        for t in graph:
            pred = vocab.get(t.predicate, where="spatial")
            if t.subject == t.object or not pred.geometric or pred.name not in covered(rule):
                return 0.0, None, None
            a, b = dets.get(t.subject), dets.get(t.object)
            if a is None or b is None:
                verdicts.append(None)
                scores.append(0.0)
                continue
            verdicts.append(relation_holds(rule, pred.name, a[0], b[0], vocab=vocab))
            if rule == "t2i_compbench":
                pos = t2i_compbench_position_score(pred.name, a[0], b[0])
                scores.append(t2i_compbench_image_score(pos, a[1], b[1]))
        correct = None if None in verdicts else float(all(verdicts))
        score = sum(scores) / len(scores) if rule == "t2i_compbench" else None
        return 1.0, correct, score

    def _judge_depth(self, rule: str, graph: Graph, dets: dict, key: str) -> tuple[float, Optional[float], Optional[float]]:
        """As ``_judge``, from the objects' nearness: a graph is checkable only when every triple
        is "in front of" / "behind". T2I-CompBench++'s graded score keeps 0.25·conf of an object
        found alone (their 3D script has no cut below 0.5)."""
        from relbench.spec.depth_rules import (
            depth_order_holds,
            t2i_compbench_3d_image_score,
            t2i_compbench_3d_position_score,
        )

        verdicts, scores = [], []
        for t in graph:
            pred = self.ctx.vocab.get(t.predicate, where="spatial").name
            if t.subject == t.object or pred not in DEPTH_PREDICATES:
                return 0.0, None, None
            a, b = dets.get(t.subject), dets.get(t.object)
            if a is None or b is None:
                verdicts.append(None)
                scores.append(t2i_compbench_3d_image_score(0.0, a and a[1], b and b[1]))
                continue
            na, nb = self._depth_stats[(key, t.subject)][rule], self._depth_stats[(key, t.object)][rule]
            if rule == "depth":
                verdicts.append(depth_order_holds(pred, na, nb))
            else:
                pos = t2i_compbench_3d_position_score(pred, a[0], b[0], na, nb)
                verdicts.append(pos == 1.0)
                scores.append(t2i_compbench_3d_image_score(pos, a[1], b[1]))
        correct = None if None in verdicts else float(all(verdicts))
        return 1.0, correct, (sum(scores) / len(scores) if rule in GRADED else None)

    def _nearness_json(self, key: str, dets: dict) -> Optional[str]:
        """relbench's median nearness of each detected object, as JSON text (for reports and audits)."""
        import json

        got = {n: round(self._depth_stats[(key, n)]["depth"], 4) for n in dets
               if self._depth_stats.get((key, n)) is not None}
        return json.dumps(got, sort_keys=True, separators=(",", ":")) if got else None

    def close(self) -> None:
        self._detector.close()  # the lazy handle stays: a later call loads the model again
        if self._depth is not None:
            self._depth.close()
        self._depth = None
        self._cache.clear()
        self._depth_stats.clear()


#: rule sets with a graded image score column, and what it is
GRADED = {
    "t2i_compbench": "T2I-CompBench graded image score (their spatial number)",
    "t2i_compbench_3d": "T2I-CompBench++ 3D spatial graded image score (their number, with their depth rule)",
}


def _depth_rule_sets(args: SpatialArgs) -> list[str]:
    """The depth rule sets judged: none without a depth model."""
    if args.depth == "none":
        return []
    from relbench.models.depth import DEPTH_MODELS

    if args.depth not in DEPTH_MODELS:
        raise UserError(f"spatial: unknown depth model {args.depth!r} (known: none, {', '.join(sorted(DEPTH_MODELS))})")
    return [args.depth_rule_set] if isinstance(args.depth_rule_set, str) else list(args.depth_rule_set)


def boxes_json(dets: dict) -> str:
    """The detections of one image as JSON text, ``{name: [x0, y0, x1, y1, score]}`` (detected
    names only), so reports can draw them; a text column that aggregates never read."""
    import json

    out = {n: [round(float(v), 2) for v in d[0]] + [round(float(d[1]), 4)] for n, d in dets.items() if d is not None}
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def _names(graph: Graph) -> list[str]:
    return graph_objects(graph)
