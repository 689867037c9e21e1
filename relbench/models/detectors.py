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
from relbench.models.hub import DOWNLOAD

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
    libraries: tuple[str, ...] = ()  # whose model-loading bars it draws (they follow --no-progress)
    #: what to check when it finds no object in (nearly) every image of a run
    blind_hint = "check that the images show the suite's objects and the detector's settings"

    def __init__(self, options: Any, device: str | None = None):
        self.options = options
        self.device = device

    def detect(self, image, names: list[str]) -> dict[str, Detection]:
        return self.detect_many([(image, names)])[0]

    def detect_many(self, items: list[tuple[Any, list[str]]]) -> list[dict[str, Detection]]:
        raise NotImplementedError

    #: True where ``detect_all_many`` answers every box of a name above the thresholds, not only
    #: the best one (VISOR credits a relation that any pair of boxes shows)
    all_boxes = False

    def detect_all_many(self, items: list[tuple[Any, list[str]]]) -> list[dict[str, list[tuple[Box, float]]]]:
        """``{name: [(box, score), ...]}`` per image, best first. This default has the best box
        only; a backend that keeps every box overrides it and sets ``all_boxes``."""
        return [{n: [] if d is None else [d] for n, d in found.items()} for found in self.detect_many(items)]

    def close(self) -> None:
        pass

    @classmethod
    def identity(cls, options: Any) -> Any:
        """What the detections depend on besides the options (e.g. the weights' content hash),
        computed without loading a model; part of the spatial metric's fingerprint."""
        return None


def build_detector(name: str, options: Any, device: str | None = None) -> Detector:
    if name not in DETECTORS:
        raise UserError(f"spatial: unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})")
    return DETECTORS[name](options, device)


class LazyDetector:
    """A metric's detector, built at its first use (a rerun whose scores are cached loads no
    model), with the loading bars of its libraries following --no-progress."""

    def __init__(self, metric: str, name: str, options: Any, device: str | None, progress: bool):
        if name not in DETECTORS:
            raise UserError(f"{metric}: unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})")
        self.name, self.cls = name, DETECTORS[name]
        self._args = (options, device, progress)
        self._built: Detector | None = None

    def identity(self) -> Any:
        return self.cls.identity(self._args[0])

    def get(self) -> Detector:
        if self._built is None:
            from relbench.io.progress import library_bars

            options, device, progress = self._args
            with library_bars(progress, getattr(self.cls, "libraries", ())):
                self._built = build_detector(self.name, options, device)
        return self._built

    def close(self) -> None:
        if self._built is not None:
            self._built.close()
        self._built = None


@register_detector("shapes")
class ShapesDetector(Detector):
    """The shapes world's exact detector (relbench.shapes.detect): colour masks -> boxes, score 1."""

    blind_hint = "it sees only the shapes world; use detector: grounding_dino"
    all_boxes = True  # each name is one object of the world: its box is its only box

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

    Each object name is queried on its own ("dog.") so a box is attributed to exactly one name.
    A box counts for the name only through the name's own tokens (GroundingDINO's phrase rule,
    ``get_phrases_from_posmap`` over the text-thresholded token map): its score is the best
    probability over the name's token positions, it must exceed ``box_threshold``, and some token
    of the name must exceed ``text_threshold`` (IDEA-Research defaults 0.35 / 0.25, the role
    GenEval gives 0.3 and VISOR 0.1). Probability mass on "." or [CLS]/[SEP] never counts: with
    one name per query, the prompt-wide maximum that GroundingDINO and transformers'
    post-processing use as the box score would credit a box that only matched the punctuation.
    The highest-scoring box wins and is clipped to the image.
    """

    libraries = ("transformers",)
    blind_hint = ("check box_threshold / text_threshold (lower finds more) and that the images show the suite's "
                  "objects")

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
                f"no download is attempted: fetch it once ({DOWNLOAD} {DEFAULT_GROUNDING_DINO}) "
                f"or save_pretrained() it to a directory, then set the spatial metric's model: to that id or path"
            ) from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.box_threshold = float(getattr(options, "box_threshold", 0.35))
        self.text_threshold = float(getattr(options, "text_threshold", 0.25))
        self.batch_size = int(getattr(options, "batch_size", 8))

    @classmethod
    def identity(cls, options: Any) -> Any:
        """sha256 of the model directory's weights and configs (a replaced model rescores);
        None while the model is not available locally (loading then says how to get it)."""
        from relbench.io.content_hash import dir_sha256
        from relbench.models import hub

        model = getattr(options, "model", None) or DEFAULT_GROUNDING_DINO
        path = hub.local_dir(model)
        if path is None:
            try:
                path = hub.snapshot(model)
            except Exception:  # noqa: BLE001 - not cached (or not a repo id): nothing to hash yet
                return None
        return dir_sha256(path, (".safetensors", ".bin", ".json", ".txt")) or None

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
            probs = outputs.logits.sigmoid().float().cpu()
            boxes = outputs.pred_boxes.float().cpu()
            for j, ((i, name), im) in enumerate(zip(chunk, images)):
                where = name_positions(self.processor.tokenizer, name, inputs["input_ids"][j].tolist())
                results[i][name] = best_name_box(probs[j], boxes[j], where, self.box_threshold,
                                                 self.text_threshold, (im.width, im.height))
        return results

    def close(self) -> None:
        self.model = None


def name_positions(tokenizer, name: str, input_ids: list[int]) -> list[int]:
    """Token positions of ``name`` in its query "[CLS] name . [SEP]": the positions whose
    probabilities may attribute a box to the name (never ".", [CLS], [SEP] or padding)."""
    ids = tokenizer(_query_text(name)[:-1], add_special_tokens=False)["input_ids"]
    if not ids or input_ids[1 : 1 + len(ids)] != ids:
        raise RuntimeError(f"GroundingDINO: cannot find the tokens of {name!r} in its query {input_ids[:len(ids) + 3]}")
    return list(range(1, 1 + len(ids)))


def best_name_box(probs, boxes, positions: list[int], box_threshold: float, text_threshold: float,
                  size: tuple[int, int]) -> Detection:
    """The name's best box from one query's outputs, or None (the functional core of the detector).

    probs: (queries, text_len) token probabilities (sigmoid of the logits); boxes: (queries, 4)
    normalised (cx, cy, w, h); positions: the name's token positions; size: (width, height).
    Score = the best probability over the name's tokens; kept when it exceeds box_threshold and
    some name token exceeds text_threshold. The box is returned in pixels, clipped to the image.
    """
    import torch

    name = probs[:, positions]
    score = name.max(dim=1).values
    keep = (score > box_threshold) & (name > text_threshold).any(dim=1)
    if not bool(keep.any()):
        return None
    q = int(torch.where(keep, score, torch.full_like(score, -1.0)).argmax())
    cx, cy, w, h = (float(v) for v in boxes[q])
    width, height = size
    x0, x1 = sorted((min(max((cx - w / 2) * width, 0.0), width), min(max((cx + w / 2) * width, 0.0), width)))
    y0, y1 = sorted((min(max((cy - h / 2) * height, 0.0), height), min(max((cy + h / 2) * height, 0.0), height)))
    return (x0, y0, x1, y1), float(score[q])


def _query_text(name: str) -> str:
    """GroundingDINO's prompt convention: lower case, phrases ending with a period."""
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


@functools.lru_cache(maxsize=None)
def _placement_chance(pattern, rule_set: str, size, kind: str, n: int = 4000) -> float | None:
    import random

    from relbench.spec.spatial_rules import relation_holds
    from relbench.spec.data import Triple
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
