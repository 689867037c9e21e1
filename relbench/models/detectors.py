"""Detector backends for the spatial metric: image + object names -> best box per name.

A detector answers, for one image and a list of names, ``{name: (box, score) | None}`` with
the single highest-scoring box per name (None when nothing passes its thresholds). Backends
register by name so a benchmark (or a test) can add its own with ``@register_detector``.
Heavy libraries are imported inside the backends that need them.
"""

from __future__ import annotations

import functools

from typing import Any, Callable, Optional

from relbench.errors import UserError

Box = tuple[float, float, float, float]
Detection = Optional[tuple[Box, float]]

DETECTORS: dict[str, type["Detector"]] = {}


def register_detector(name: str) -> Callable[[type], type]:
    def deco(cls):
        cls.name = name
        DETECTORS[name] = cls
        return cls

    return deco


class Detector:
    """Base class; ``options`` are the spatial metric's arguments (model, thresholds, device)."""

    name = ""

    def __init__(self, options: Any, device: str | None = None):
        self.options = options
        self.device = device

    def detect(self, image, names: list[str]) -> dict[str, Detection]:
        return self.detect_many([(image, names)])[0]

    def detect_many(self, items: list[tuple[Any, list[str]]]) -> list[dict[str, Detection]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def build_detector(name: str, options: Any, device: str | None = None) -> Detector:
    if name not in DETECTORS:
        raise UserError(f"spatial: unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})")
    return DETECTORS[name](options, device)


@register_detector("shapes")
class ShapesDetector(Detector):
    """The shapes world's exact detector (relbench.shapes.detect): colour masks -> boxes, score 1."""

    def __init__(self, options: Any, device: str | None = None):
        super().__init__(options, device)
        try:
            from relbench.shapes.detect import detect_objects
        except ImportError as exc:
            raise UserError(f"spatial: detector 'shapes' needs relbench.shapes.detect ({exc})") from None
        self._detect = detect_objects

    def detect_many(self, items):
        out = []
        for image, names in items:
            found = self._detect(image, list(names))
            out.append({n: _as_detection(found.get(n)) for n in names})
        return out

    def chance(self, graph, rule_set: str, size: tuple[int, int], vocab) -> float | None:
        """Chance that a generator ignoring the relation draws ``graph`` right: the share of the
        world's random placements (sizes as the oracle draws them) whose boxes satisfy every
        triple under ``rule_set``. Estimated by simulation of the geometry, 4000 layouts."""
        from relbench.shapes.world import COLOURS, DRAWABLE, SHAPE_KINDS

        if any(vocab.get(t.predicate).name not in DRAWABLE for t in graph):
            return None
        names = {}
        for t in graph:
            for n in (t.subject, t.object):
                names.setdefault(n, len(names))
        pattern = tuple((names[t.subject], vocab.get(t.predicate).name, names[t.object]) for t in graph)
        if len(names) > len(COLOURS):
            return None
        return _placement_chance(pattern, rule_set, tuple(size), SHAPE_KINDS[0])


@register_detector("shapes_snap")
class SnappedShapesDetector(ShapesDetector):
    """The shapes detector for images a model drew: pixels snapped to the nearest world colour
    first, boxes from each colour's largest component (relbench.shapes.detect.snap_to_palette)."""

    def __init__(self, options: Any, device: str | None = None):
        super().__init__(options, device)
        from relbench.shapes.detect import detect_objects_snapped

        self._detect = detect_objects_snapped


def _as_detection(found) -> Detection:
    if found is None:
        return None
    box, score = found
    return tuple(float(v) for v in box), float(score)


DEFAULT_GROUNDING_DINO = "IDEA-Research/grounding-dino-tiny"


@register_detector("grounding_dino")
class GroundingDinoDetector(Detector):
    """Open-vocabulary detection with transformers' GroundingDinoForObjectDetection.

    Why transformers and not the ``groundingdino-py`` package: that package is unmaintained,
    pins supervision 0.6.0 and fails to import with transformers 5
    (IDEA-Research/GroundingDINO#446); transformers ships the same model with HF-converted
    weights. Weights come from a local directory or the Hugging Face cache
    (``local_files_only=True``): this never downloads.

    Each object name is queried on its own ("dog.") so a box is attributed to exactly one name;
    a box counts when its best token probability exceeds ``box_threshold`` and some token of
    the name exceeds ``text_threshold`` (the IDEA-Research defaults 0.35 / 0.25, also the
    confidence threshold role GenEval gives 0.3 and VISOR 0.1); the highest-scoring box wins.
    """

    def __init__(self, options: Any, device: str | None = None):
        super().__init__(options, device)
        import torch
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        self.model_id = getattr(options, "model", None) or DEFAULT_GROUNDING_DINO
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_id, local_files_only=True)
            self.model = GroundingDinoForObjectDetection.from_pretrained(self.model_id, local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"spatial: GroundingDINO model {self.model_id!r} is not available locally ({first}); "
                f"no download is attempted: fetch it once (huggingface-cli download {DEFAULT_GROUNDING_DINO}) "
                f"or save_pretrained() it to a directory, then set the spatial metric's model: to that id or path"
            ) from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.box_threshold = float(getattr(options, "box_threshold", 0.35))
        self.text_threshold = float(getattr(options, "text_threshold", 0.25))
        self.batch_size = int(getattr(options, "batch_size", 8))

    def detect_many(self, items):
        import torch
        from PIL import Image

        queries = [(i, name) for i, (_, names) in enumerate(items) for name in names]
        results: list[dict[str, Detection]] = [{n: None for n in names} for _, names in items]
        for start in range(0, len(queries), self.batch_size):
            chunk = queries[start : start + self.batch_size]
            images = [Image.fromarray(items[i][0]) for i, _ in chunk]
            texts = [_query_text(name) for _, name in chunk]
            inputs = self.processor(images=images, text=texts, return_tensors="pt", padding=True).to(self.device)
            with torch.no_grad():
                outputs = self.model(**inputs)
            sizes = [(im.height, im.width) for im in images]
            post = self.processor.post_process_grounded_object_detection(
                outputs,
                inputs["input_ids"],
                threshold=self.box_threshold,
                text_threshold=self.text_threshold,
                target_sizes=sizes,
            )
            for (i, name), res in zip(chunk, post):
                best = None
                for box, score, label in zip(res["boxes"], res["scores"], res["text_labels"]):
                    if not str(label).strip():  # no token of the name passed text_threshold
                        continue
                    if best is None or float(score) > best[1]:
                        best = (tuple(float(v) for v in box.tolist()), float(score))
                results[i][name] = best
        return results

    def close(self) -> None:
        self.model = None


def _query_text(name: str) -> str:
    """GroundingDINO's prompt convention: lower case, phrases ending with a period."""
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


@functools.lru_cache(maxsize=None)
def _placement_chance(pattern, rule_set: str, size, kind: str, n: int = 4000) -> float | None:
    import random

    from relbench.spatial_rules import relation_holds
    from relbench.data import Triple
    from relbench.shapes.world import COLOURS, layout, pixel_box

    colours = list(COLOURS)
    name = [f"{colours[i]} {kind}" for i in range(len(colours))]
    graph = tuple(Triple(name[a], p, name[b]) for a, p, b in pattern)
    rng = random.Random(f"relbench-chance:{pattern}:{rule_set}:{size}")
    hits = 0
    for _ in range(n):
        boxes = {o.name: pixel_box(o) for o in layout(graph, rng, size, "random")}
        verdicts = [relation_holds(rule_set, t.predicate, boxes[t.subject], boxes[t.object]) for t in graph]
        if None in verdicts:
            return None
        hits += all(verdicts)
    return hits / n
