"""Reading Visual Genome's official files and filtering relationships into usable candidates.

image_data.json: a list of {"image_id" (or "id"), "width", "height", "url", ...}.
relationships.json: a list of {"image_id" (or "id"), "relationships": [{"relationship_id",
"predicate", "subject": {...}, "object": {...}}]} where each object has "object_id", "x", "y",
"w", "h" and either "name" (string) or "names" (list; the first is used).

Every relationship either becomes a Candidate or is counted under exactly one drop reason,
the first rule it breaks, in the order of DROP_REASONS. An image listed twice in either file is
read once, from its first entry (its id would otherwise name two items of a split), and the
repeats are counted.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from relbench.spec.data import Box
from relbench.errors import UserError
from relbench.io.jsonstream import iter_json_array
from relbench.spec.predicates import Vocabulary, normalise
from relbench.vg.boxes import Fit, fit_square, transform_box

DROP_REASONS = (
    "malformed",  # not the documented structure (missing subject/object, non-numeric box)
    "image_listed_again",  # in an entry of relationships.json for an image an earlier entry gave
    "image_not_in_image_data",  # no width/height known for the image
    "image_file_missing",  # no file for the image under --images
    "predicate_not_in_vocabulary",
    "predicate_not_selected",  # in the vocabulary but not among --predicates
    "missing_name",
    "degenerate_box",  # w <= 0 or h <= 0
    "box_outside_image",
    "subject_equals_object",  # same object_id, or the same name (boxes are keyed by name)
    "box_too_small",  # a side shorter than --min-box pixels (original image)
    "box_cropped_out",  # less than MIN_VISIBLE of a box survives the square crop
    "duplicate",  # same names, predicate and boxes as an earlier relationship of the image
    "relationship_id_repeated",  # the relationship_id of an earlier kept relationship of the image (5 and "5" alike)
)
MIN_VISIBLE = 0.5


@dataclass(frozen=True)
class ImageInfo:
    image_id: int
    width: int
    height: int
    url: str | None


@dataclass(frozen=True)
class Candidate:
    """One usable relationship, boxes as (x_min, y_min, x_max, y_max) in original pixels."""

    image_id: int
    rel_key: str  # VG relationship_id as a decimal, or "i<index in the image's list>" when absent or not a number
    subject: str
    predicate: str  # canonical vocabulary name
    object: str
    subject_box: Box
    object_box: Box
    raw_predicate: str


def _image_id(entry: dict) -> int | None:
    return _number(entry.get("image_id", entry.get("id")))


def _number(value) -> int | None:
    """An id given as an integer or a string of digits (VG's files hold both), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        try:
            return int(value)
        except ValueError:  # more digits than int() converts
            return None
    return None


def read_image_data(path: str | os.PathLike) -> tuple[dict[int, ImageInfo], int]:
    """(image_id -> size and url, how many entries repeated an image already read): entries
    without a usable id or size are skipped; of an image listed twice, the first entry counts."""
    images: dict[int, ImageInfo] = {}
    repeated = 0
    for entry in iter_json_array(path, progress="image_data"):
        if not isinstance(entry, dict):
            continue
        image_id = _image_id(entry)
        w, h = entry.get("width"), entry.get("height")
        if image_id is None or not isinstance(w, int) or not isinstance(h, int) or w <= 0 or h <= 0:
            continue
        if image_id in images:
            repeated += 1
            continue
        images[image_id] = ImageInfo(image_id, w, h, entry.get("url"))
    if not images:
        raise UserError(f"{os.fspath(path)}: no usable image entries (each needs image_id, width, height)")
    return images, repeated


def image_path_candidates(info: ImageInfo, images_dir: str) -> list[str]:
    """Where VG's image may live: the url's last folder (VG_100K / VG_100K_2) or flat."""
    name = f"{info.image_id}.jpg"
    paths = []
    if info.url:
        parts = info.url.rstrip("/").split("/")
        name = parts[-1] or name
        if len(parts) >= 2:
            paths.append(os.path.join(images_dir, parts[-2], name))
    else:
        paths += [os.path.join(images_dir, "VG_100K", name), os.path.join(images_dir, "VG_100K_2", name)]
    paths.append(os.path.join(images_dir, name))
    return paths


def find_image(info: ImageInfo, images_dir: str) -> str | None:
    for p in image_path_candidates(info, images_dir):
        if os.path.isfile(p):
            return p
    return None


def object_name(obj: dict) -> str:
    """VG objects carry "name" (string) or "names" (list); lowercased, whitespace collapsed."""
    name = obj.get("name")
    if name is None:
        names = obj.get("names")
        if isinstance(names, list) and names:
            name = names[0]
        elif isinstance(names, str):
            name = names
    return normalise(name) if isinstance(name, str) else ""


def object_box(obj: dict) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) as floats, or None when a field is missing or not a number."""
    vals = [obj.get(k) for k in ("x", "y", "w", "h")]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in vals):
        return None
    return tuple(float(v) for v in vals)


class CandidateFilter:
    """Applies the filtering rules to VG's per-image relationship lists, counting drops."""

    def __init__(
        self,
        images: dict[int, ImageInfo],
        images_dir: str,
        vocab: Vocabulary,
        predicates: Iterable[str],
        min_box: float = 0.0,
        export: tuple[int, str] | None = None,
    ):
        self.images, self.images_dir, self.vocab = images, images_dir, vocab
        self.selected = set(predicates)
        self.min_box = min_box
        self.export = export  # (size, fit) when square reference images will be written
        self.drops: Counter[str] = Counter({r: 0 for r in DROP_REASONS})
        self.unmapped: Counter[str] = Counter()  # raw predicates outside the vocabulary
        self.raw_forms: dict[str, Counter[str]] = {p: Counter() for p in self.selected}
        self.read = 0
        self.paths: dict[int, str] = {}
        self.entries_repeated = 0  # entries of relationships.json for an image already read
        self._images_read: set[int] = set()

    def image_candidates(self, entry: Any) -> Iterator[Candidate]:
        """Candidates from one element of relationships.json."""
        rels = entry.get("relationships") if isinstance(entry, dict) else None
        if not isinstance(rels, list):  # an image entry without a relationship list counts as one
            self.drops["malformed"] += 1
            self.read += 1
            return
        self.read += len(rels)
        image_id = _image_id(entry)
        if image_id in self._images_read:
            self.entries_repeated += 1
            self.drops["image_listed_again"] += len(rels)
            return
        if image_id is not None:
            self._images_read.add(image_id)
        info = self.images.get(image_id) if image_id is not None else None
        if info is None:
            self.drops["image_not_in_image_data"] += len(rels)
            return
        path = find_image(info, self.images_dir)
        if path is None:
            self.drops["image_file_missing"] += len(rels)
            return
        self.paths[image_id] = path
        fit = fit_square((info.width, info.height), *self.export) if self.export else None
        seen: set[tuple] = set()
        keys: set[str] = set()  # rel_keys kept: an item's id is the image's and its rel_key
        for index, rel in enumerate(rels):
            reason, cand = self._check(rel, index, info, fit)
            if cand is not None:
                key = (cand.subject, cand.predicate, cand.object, cand.subject_box, cand.object_box)
                if key in seen:
                    reason, cand = "duplicate", None
                elif cand.rel_key in keys:
                    reason, cand = "relationship_id_repeated", None
                else:
                    keys.add(cand.rel_key)
                seen.add(key)
            if cand is None:
                self.drops[reason] += 1
            else:
                self.raw_forms[cand.predicate][normalise(cand.raw_predicate)] += 1
                yield cand

    def _check(self, rel: Any, index: int, info: ImageInfo, fit: Fit | None) -> tuple[str, Candidate | None]:
        if not isinstance(rel, dict) or not isinstance(rel.get("subject"), dict) or not isinstance(rel.get("object"), dict):
            return "malformed", None
        raw = rel.get("predicate")
        canonical = self.vocab.resolve(raw) if isinstance(raw, str) else None
        if canonical is None:
            self.unmapped[normalise(raw) if isinstance(raw, str) else repr(raw)] += 1
            return "predicate_not_in_vocabulary", None
        if canonical not in self.selected:
            return "predicate_not_selected", None
        subj, obj = rel["subject"], rel["object"]
        s_name, o_name = object_name(subj), object_name(obj)
        if not s_name or not o_name:
            return "missing_name", None
        s_xywh, o_xywh = object_box(subj), object_box(obj)
        if s_xywh is None or o_xywh is None:
            return "malformed", None
        if min(s_xywh[2], s_xywh[3], o_xywh[2], o_xywh[3]) <= 0:
            return "degenerate_box", None
        s_box, o_box = _xyxy(s_xywh), _xyxy(o_xywh)
        if not (_inside(s_box, info) and _inside(o_box, info)):
            return "box_outside_image", None
        s_id, o_id = subj.get("object_id"), obj.get("object_id")
        if s_name == o_name or (s_id is not None and s_id == o_id):
            return "subject_equals_object", None
        if self.min_box and min(s_xywh[2], s_xywh[3], o_xywh[2], o_xywh[3]) < self.min_box:
            return "box_too_small", None
        if fit is not None:
            size = (info.width, info.height)
            if min(transform_box(s_box, size, fit)[1], transform_box(o_box, size, fit)[1]) < MIN_VISIBLE:
                return "box_cropped_out", None
        rel_id = _number(rel.get("relationship_id"))
        rel_key = str(rel_id) if rel_id is not None else f"i{index}"
        return "", Candidate(info.image_id, rel_key, s_name, canonical, o_name, s_box, o_box, raw)


def _xyxy(xywh: tuple[float, float, float, float]) -> Box:
    x, y, w, h = xywh
    return (x, y, x + w, y + h)


def _inside(box: Box, info: ImageInfo) -> bool:
    return box[0] >= 0 and box[1] >= 0 and box[2] <= info.width and box[3] <= info.height
