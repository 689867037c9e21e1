"""Detector backends for the spatial metric: image + object names -> best box per name.

A detector answers, for one image and a list of names, ``{name: (box, score) | None}`` with
the single highest-scoring box per name (None when nothing passes its thresholds). Backends
register by name so a benchmark (or a test) can add its own with ``@register_detector``.
Heavy libraries are imported inside the backends that need them.

Over 400 lines: one registry of detector backends, each a class with its own box
post-processing (~60 lines); kept in one module so that registration stays eager and
`relbench.models.detectors.DETECTORS` holds every built-in backend without an import cycle.
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

    def detectable(self, name: str) -> bool:
        """Whether the detector can answer for ``name`` at all; a closed-vocabulary detector
        says False for names outside its classes, which makes their images not checkable."""
        return True

    @classmethod
    def settings(cls, options: Any) -> dict:
        """What judged, in words, for summary.json and reports: the detector, its model and
        thresholds (the model's content hash is ``identity``)."""
        return {"detector": cls.name}

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

    def masks(self, image, names: list[str]) -> dict:
        """Each named object's visible pixels (its colour), for judges that read a region rather
        than a box: the depth judge's median over an occluded object's box would count its occluder."""
        from relbench.shapes.detect import colour_box

        out = {}
        for n in names:
            found = colour_box(image, n.strip().lower().split()[0]) if self.detect(image, [n]).get(n) else None
            out[n] = None if found is None else found[1]
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

    masks = None  # colours of a drawn image are only near the palette: the depth judge reads boxes


def _as_detection(found) -> Detection:
    if found is None:
        return None
    box, score = found
    return tuple(float(v) for v in box), float(score)


DEFAULT_GROUNDING_DINO = "IDEA-Research/grounding-dino-tiny"


class HubDetector(Detector):
    """A detector whose weights are a transformers model directory (local or in the HF cache).

    Loading never downloads (``local_files_only=True``); a missing model is one line saying how
    to fetch it. The weights' content hash is the detector's identity: a replaced model rescores.
    """

    libraries = ("transformers",)
    #: what the model is called in messages, and the repo id used when ``model:`` is not given
    title = ""
    default_model = ""

    def _load(self, *loaders):
        """``loaders``: transformers classes with ``from_pretrained``; returns their instances."""
        import torch

        self.model_id = getattr(self.options, "model", None) or self.default_model
        try:
            loaded = [cls.from_pretrained(self.model_id, local_files_only=True) for cls in loaders]
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"spatial: {self.title} model {self.model_id!r} is not available locally ({first}); "
                f"no download is attempted: fetch it once ({DOWNLOAD} {self.default_model}) "
                f"or save_pretrained() it to a directory, then set the spatial metric's model: to that id or path"
            ) from None
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        loaded[-1].to(self.device).eval()
        return loaded

    @classmethod
    def identity(cls, options: Any) -> Any:
        """sha256 of the model directory's weights and configs (a replaced model rescores);
        None while the model is not available locally (loading then says how to get it)."""
        from relbench.io.content_hash import dir_sha256
        from relbench.models import hub

        model = getattr(options, "model", None) or cls.default_model
        path = hub.local_dir(model)
        if path is None:
            try:
                path = hub.snapshot(model)
            except Exception:  # noqa: BLE001 - not cached (or not a repo id): nothing to hash yet
                return None
        return dir_sha256(path, (".safetensors", ".bin", ".json", ".txt")) or None

    def close(self) -> None:
        self.model = None

    @classmethod
    def settings(cls, options: Any) -> dict:
        return {"detector": cls.name, "model": getattr(options, "model", None) or cls.default_model}


@register_detector("grounding_dino")
class GroundingDinoDetector(HubDetector):
    """Open-vocabulary detection with transformers' GroundingDinoForObjectDetection.

    Why transformers and not the ``groundingdino-py`` package: that package is unmaintained,
    pins supervision 0.6.0 and fails to import with transformers 5
    (IDEA-Research/GroundingDINO#446); transformers ships the same model with HF-converted
    weights.

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

    title = "GroundingDINO"
    default_model = DEFAULT_GROUNDING_DINO
    blind_hint = ("check box_threshold / text_threshold (lower finds more) and that the images show the suite's "
                  "objects")

    def __init__(self, options: Any, device: str | None = None):
        super().__init__(options, device)
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        self.processor, self.model = self._load(AutoProcessor, GroundingDinoForObjectDetection)
        self.box_threshold = float(getattr(options, "box_threshold", 0.35))
        self.text_threshold = float(getattr(options, "text_threshold", 0.25))
        self.batch_size = int(getattr(options, "batch_size", 8))

    @classmethod
    def settings(cls, options: Any) -> dict:
        return {**super().settings(options), "box_threshold": float(getattr(options, "box_threshold", 0.35)),
                "text_threshold": float(getattr(options, "text_threshold", 0.25))}

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


def _threshold(options: Any, default: float) -> float:
    value = getattr(options, "score_threshold", None)
    return default if value is None else float(value)


@register_detector("owlvit")
class OwlVitDetector(HubDetector):
    """VISOR's detector: OWL-ViT (transformers' OwlViTForObjectDetection), text-queried.

    As VISOR's notebook does it: one forward per image with every object name as a query
    "a photo of a {name}"; each predicted box belongs to the query with its highest logit and
    scores the sigmoid of that logit (transformers' ``post_process_object_detection``); boxes
    scoring above ``score_threshold`` (VISOR's 0.1) are kept, and the best box per name answers.
    OWL-ViT resizes the image to a square without keeping its aspect ratio, so its normalised
    boxes scale by the image's width and height.
    """

    title = "OWL-ViT"
    default_model = "google/owlvit-base-patch32"  # VISOR's
    default_threshold = 0.1  # VISOR's
    #: the processor pads the image to a square (bottom and right) before resizing
    pads_to_square = False
    blind_hint = "check score_threshold (lower finds more) and that the images show the suite's objects"

    def __init__(self, options: Any, device: str | None = None):
        super().__init__(options, device)
        import transformers

        model_cls = getattr(transformers, "Owlv2ForObjectDetection" if self.pads_to_square else "OwlViTForObjectDetection")
        self.processor, self.model = self._load(transformers.AutoProcessor, model_cls)
        self.threshold = _threshold(options, self.default_threshold)
        self.batch_size = int(getattr(options, "batch_size", 8))
        self.text_length = int(self.model.config.text_config.max_position_embeddings)

    @classmethod
    def settings(cls, options: Any) -> dict:
        return {**super().settings(options), "score_threshold": _threshold(options, cls.default_threshold),
                "query": "a photo of a {name}"}

    #: every box of a name above the threshold, for VISOR's any-pair rule (peer_scores)
    all_boxes = True

    def detect_many(self, items):
        return [{n: found[0] if found else None for n, found in per.items()} for per in self.detect_all_many(items)]

    def detect_all_many(self, items):
        import torch
        from PIL import Image

        results: list[dict[str, list[tuple[Box, float]]]] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            images = [Image.fromarray(image) for image, _ in chunk]
            most = max(len(names) for _, names in chunk)
            # every image gets as many queries as the longest list; the filler never answers
            texts = [[f"a photo of a {n}" for n in names] + [" "] * (most - len(names)) for _, names in chunk]
            # every image's queries padded to the text model's length, as OWL-ViT was trained
            inputs = self.processor(text=texts, images=images, return_tensors="pt", padding="max_length",
                                    max_length=self.text_length, truncation=True).to(self.device)
            with torch.no_grad():
                outputs = self.model(**inputs)
            logits, boxes = outputs.logits.float().cpu(), outputs.pred_boxes.float().cpu()
            for j, ((_, names), im) in enumerate(zip(chunk, images)):
                results.append(query_boxes(logits[j, :, : len(names)], boxes[j], names, self.threshold,
                                           (im.width, im.height), self.pads_to_square))
        return results


@register_detector("owlv2")
class Owlv2Detector(OwlVitDetector):
    """OWLv2 (Owlv2ForObjectDetection), queried as OWL-ViT. Its processor pads the image to a
    square at the bottom and right before resizing, so its normalised boxes are fractions of the
    padded square's side, not of the image's width and height."""

    title = "OWLv2"
    default_model = "google/owlv2-base-patch16-ensemble"
    pads_to_square = True


def best_query_boxes(logits, boxes, names: list[str], threshold: float, size: tuple[int, int],
                     pads_to_square: bool) -> dict[str, Detection]:
    """The best box per name from one image's OWL outputs (the functional core of the detector):
    the first of ``query_boxes``."""
    return {n: found[0] if found else None
            for n, found in query_boxes(logits, boxes, names, threshold, size, pads_to_square).items()}


def query_boxes(logits, boxes, names: list[str], threshold: float, size: tuple[int, int],
                pads_to_square: bool) -> dict[str, list[tuple[Box, float]]]:
    """Every box of each name from one image's OWL outputs, best first.

    logits: (boxes, queries) with query i asking for names[i]; boxes: (boxes, 4) normalised
    (cx, cy, w, h); size: (width, height). A box belongs to its arg-max query and scores the
    sigmoid of that logit; it is kept above ``threshold``. Pixels: the normalised box times
    (width, height), or times the padded square's side ``max(width, height)`` when the processor
    padded; clipped to the image. Equal scores keep the model's box order.
    """
    probs = logits.sigmoid()
    score, label = probs.max(dim=1)
    width, height = size
    sx, sy = (max(size), max(size)) if pads_to_square else (width, height)
    out: dict[str, list[tuple[Box, float]]] = {}
    for q, name in enumerate(names):
        kept = [int(b) for b in ((label == q) & (score > threshold)).nonzero().flatten()]
        kept.sort(key=lambda b: -float(score[b]))  # stable: ties keep the model's order
        found = []
        for b in kept:
            cx, cy, w, h = (float(v) for v in boxes[b])
            x0, x1 = (min(max(v * sx, 0.0), width) for v in (cx - w / 2, cx + w / 2))
            y0, y1 = (min(max(v * sy, 0.0), height) for v in (cy - h / 2, cy + h / 2))
            found.append(((x0, y0, x1, y1), float(score[b])))
        out[name] = found
    return out


@register_detector("mask2former")
class Mask2FormerDetector(HubDetector):
    """GenEval's detector architecture: Mask2Former COCO instance segmentation
    (transformers' Mask2FormerForUniversalSegmentation), a closed vocabulary of COCO's 80 classes.

    GenEval runs mmdet's Mask2Former Swin-S checkpoint; this runs transformers' COCO instance
    checkpoints: the same architecture, other weights, so its numbers are not GenEval's. The
    post-processing is mmdet's (MaskFormerFusionHead.instance_postprocess), which GenEval reads:
    class probabilities are the softmax without the no-object class; the 100 best (query, class)
    pairs are candidates; a candidate's mask is its logits upsampled to the model's input,
    cropped to the resized image (the processor pads bottom and right), upsampled to the image
    and thresholded at logit 0; its score is the class probability times the mean mask
    probability inside the mask; its box is the mask's extent (right and bottom edges + 1 px).
    GenEval keeps boxes above 0.3 and judges its most confident box per class: so does this.
    A name maps to a class through relbench.models.coco's table; a name with no class is not
    detectable (its images are not checkable and counted), never guessed.
    """

    title = "Mask2Former"
    default_model = "facebook/mask2former-swin-small-coco-instance"  # GenEval's backbone size
    default_threshold = 0.3  # GenEval's
    max_per_image = 100  # mmdet's test_cfg
    blind_hint = ("check score_threshold (lower finds more) and that the suite's objects are COCO classes "
                  "(relbench.models.coco)")

    def __init__(self, options: Any, device: str | None = None):
        super().__init__(options, device)
        from transformers import AutoImageProcessor, Mask2FormerForUniversalSegmentation

        from relbench.models.coco import COCO_CLASSES, coco_class

        self.processor, self.model = self._load(AutoImageProcessor, Mask2FormerForUniversalSegmentation)
        labels = self.model.config.id2label
        self.class_ids = {coco_class(str(labels[i])): int(i) for i in sorted(labels, key=int)}
        if set(self.class_ids) != set(COCO_CLASSES):
            raise UserError(f"spatial: Mask2Former model {self.model_id!r} is not a COCO instance checkpoint "
                            f"(its {len(labels)} labels are not COCO's 80 classes); use a *-coco-instance model")
        self.threshold = _threshold(options, self.default_threshold)
        self.batch_size = int(getattr(options, "batch_size", 8))

    @classmethod
    def settings(cls, options: Any) -> dict:
        return {**super().settings(options), "score_threshold": _threshold(options, cls.default_threshold),
                "vocabulary": "COCO 80 classes (relbench.models.coco)"}

    def detectable(self, name: str) -> bool:
        from relbench.models.coco import coco_class

        return coco_class(name) is not None

    def detect_many(self, items):
        import torch

        from relbench.models.coco import coco_class

        results: list[dict[str, Detection]] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            inputs = self.processor(images=[image for image, _ in chunk], return_tensors="pt")
            with torch.no_grad():
                outputs = self.model(pixel_values=inputs["pixel_values"].to(self.device),
                                     pixel_mask=inputs["pixel_mask"].to(self.device))
            cls_logits = outputs.class_queries_logits.float().cpu()
            mask_logits = outputs.masks_queries_logits.float().cpu()
            for j, (image, names) in enumerate(chunk):
                wanted = {n: self.class_ids[c] for n in names if (c := coco_class(n)) is not None}
                found = instance_boxes(cls_logits[j], mask_logits[j], inputs["pixel_mask"][j],
                                       (image.shape[1], image.shape[0]), set(wanted.values()), self.max_per_image)
                best: dict[str, Detection] = {}
                for n in names:
                    mine = [(score, box) for label, score, box in found
                            if n in wanted and label == wanted[n] and score > self.threshold]
                    best[n] = None if not mine else max(mine)[::-1]
                results.append(best)
        return results


def instance_boxes(class_logits, mask_logits, pixel_mask, size: tuple[int, int], labels: set[int],
                   max_per_image: int = 100) -> list[tuple[int, float, Box]]:
    """mmdet's Mask2Former instance post-processing for one image, as (label, score, box).

    class_logits: (queries, classes + 1); mask_logits: (queries, h, w) at a quarter of the input;
    pixel_mask: (H_in, W_in) with 1 on the resized image, 0 on the padding; size: the image's
    (width, height). Only candidates whose label is in ``labels`` are turned into masks (the
    others cannot answer); the top ``max_per_image`` pairs are chosen over every class first,
    as mmdet does, so which candidates exist does not depend on ``labels``.
    """
    import torch
    import torch.nn.functional as F

    scores = class_logits.softmax(-1)[:, :-1]
    n_classes = scores.shape[1]
    top, index = scores.flatten().topk(min(max_per_image, scores.numel()))
    query, label = index // n_classes, index % n_classes
    keep = torch.tensor([int(v) in labels for v in label], dtype=torch.bool)
    if not bool(keep.any()):
        return []
    top, query, label = top[keep], query[keep], label[keep]
    rows = int(pixel_mask.any(dim=1).sum())
    cols = int(pixel_mask.any(dim=0).sum())
    masks = F.interpolate(mask_logits[query][None], size=tuple(pixel_mask.shape), mode="bilinear",
                          align_corners=False)[0, :, :rows, :cols]
    width, height = size
    masks = F.interpolate(masks[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    binary = masks > 0
    mask_score = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    out = []
    for k in range(len(top)):
        ys, xs = torch.where(binary[k])
        if not len(xs):
            continue
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        out.append((int(label[k]), float(top[k] * mask_score[k]), box))
    return out
