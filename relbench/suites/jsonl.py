"""JSONL suites: one triple per line, optionally with a real reference image and the two boxes.

A line (all keys but the first five optional; see docs/vg.md)::

    {"id": "vg1_15927", "image": "vg_images256/1.jpg", "image_size": [256, 256],
     "subject": "shade", "predicate": "on", "object": "street",
     "subject_box": [43.25, 25.6, 128.5, 128.0], "object_box": [0.0, 60.0, 256.0, 256.0],
     "meta": {"vg_image_id": 1}}

Boxes are [x_min, y_min, x_max, y_max] in pixels of the image as stored (``image_size`` is its
(width, height)), y grows downward. The reference images and boxes let metrics be measured on
real photos, which is how their ceilings are calibrated.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from relbench.spec.data import Box, Reference, SuiteItem, Triple
from relbench.errors import UserError
from relbench.spec.predicates import Vocabulary
from relbench.suites import ids
from relbench.suites.text import read_lines

_BOX_HELP = "allowed: [x_min, y_min, x_max, y_max] in pixels, x_min < x_max, y_min < y_max, inside image_size"
FIELD_HELP = {
    "id": f"{ids.HELP}; a string or an integer",
    "image": "allowed: a path relative to the JSONL file's directory, or absolute, or null",
    "image_size": "allowed: [width, height], positive integers",
    "subject": "allowed: a non-empty name",
    "predicate": "allowed: a predicate name or alias",
    "object": "allowed: a non-empty name",
    "subject_box": _BOX_HELP,
    "object_box": _BOX_HELP,
    "meta": "allowed: a JSON object of free-form provenance",
}


class SuiteRecord(BaseModel):
    """The schema of one JSONL line; unknown keys are errors so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    image: str | None = None
    image_size: tuple[int, int] | None = None
    subject: str
    predicate: str
    object: str
    subject_box: tuple[float, float, float, float] | None = None
    object_box: tuple[float, float, float, float] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _int_id(cls, v):
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("id")
    @classmethod
    def _printable_id(cls, v: str) -> str:
        problem = ids.id_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("subject", "object")
    @classmethod
    def _name(cls, v: str) -> str:
        v = clean_name(v)
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("image_size")
    @classmethod
    def _size(cls, v):
        if v is not None and (v[0] <= 0 or v[1] <= 0):
            raise ValueError(f"must be positive, got {list(v)}")
        return v

    def to_json(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        if not data.get("meta"):
            data.pop("meta", None)
        return json.dumps(data, ensure_ascii=False)


def clean_name(text: str) -> str:
    """Object names: surrounding whitespace dropped, inner runs collapsed; case kept."""
    return re.sub(r"\s+", " ", str(text)).strip()


def check_record(rec: SuiteRecord) -> tuple[str, str] | None:
    """Cross-field rules; returns (field, problem) for the first broken one."""
    if rec.subject.lower() == rec.object.lower():
        return "object", f"same name as the subject ({rec.subject!r}); boxes are keyed by name (allowed: two different objects)"
    if (rec.subject_box is None) != (rec.object_box is None):
        missing = "subject_box" if rec.subject_box is None else "object_box"
        return missing, "missing while the other box is given (allowed: both boxes or neither)"
    for name in ("subject_box", "object_box"):
        box = getattr(rec, name)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        if not (x0 < x1 and y0 < y1):
            return name, f"degenerate box {list(box)} ({_BOX_HELP})"
        if rec.image_size is None:
            return "image_size", "required when boxes are given, so they can be checked (allowed: [width, height])"
        w, h = rec.image_size
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            return name, f"box {list(box)} lies outside the {w}x{h} image ({_BOX_HELP})"
    return None


_LISTS = {"image_size": 2, "subject_box": 4, "object_box": 4}


def _validation_message(exc: ValidationError, data: dict) -> tuple[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "line"
    top = str(err["loc"][0]) if err["loc"] else ""
    if top in _LISTS and (len(err["loc"]) > 1 or err["type"].startswith(("tuple", "too_"))):
        got = json.dumps(data.get(top))
        return top, f"expected a list of {_LISTS[top]} numbers, got {got} ({FIELD_HELP[top]})"
    if err["type"] == "extra_forbidden":
        return field, f"unknown field (allowed: {', '.join(SuiteRecord.model_fields)})"
    if err["type"] == "missing":
        return field, f"required field is missing ({FIELD_HELP.get(top, '')})"
    help_ = FIELD_HELP.get(top)
    return field, f"{err['msg']}" + (f" ({help_})" if help_ else "")


def parse_record(data: Any, where: str) -> SuiteRecord:
    """Validate one parsed line; ``where`` is 'FILE:LINE'."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(data).__name__}")
    try:
        rec = SuiteRecord.model_validate(data)
    except ValidationError as exc:
        field, problem = _validation_message(exc, data)
        raise UserError(f"{where}: {field}: {problem}") from None
    broken = check_record(rec)
    if broken:
        raise UserError(f"{where}: {broken[0]}: {broken[1]}")
    return rec


def load_jsonl_suite(
    path: str | os.PathLike,
    vocab: Vocabulary,
    images_root: str | os.PathLike | None = None,
    check_images: bool = True,
    require_image: str | None = None,
    limit: int | None = None,
) -> list[SuiteItem]:
    """Read a JSONL suite into SuiteItems with one-triple graphs and (optional) references.

    Predicates are resolved to the vocabulary's canonical names. Relative image paths resolve
    against ``images_root`` if given, else against the JSONL file's own directory, so a split
    moved together with its images keeps working. With ``check_images`` an image file that is missing
    or does not open is an error at load time rather than in the middle of a run. ``require_image`` (why, e.g.
    "training needs the photo of g+") makes a line without ``image`` an error naming its line.
    With ``limit``, reading stops at the ``limit``-th item: lines after it are neither read nor checked.
    """
    path = os.fspath(path)
    base = os.fspath(images_root) if images_root is not None else os.path.dirname(os.path.abspath(path))
    items: list[SuiteItem] = []
    seen = ids.UniqueIds(path)
    opened: dict[str, str | None] = {}  # image -> why it does not open (None: it opens)
    for lineno, text in enumerate(read_lines(path, "JSONL suite"), start=1):
        if not text.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise UserError(f"{where}: not valid JSON (nested too deeply to read)") from None
        rec = parse_record(data, where)
        if require_image and rec.image is None:
            raise UserError(f"{where}: image: required field is missing ({require_image}; allowed: a path "
                            f"relative to the JSONL file's directory, or absolute)")
        seen.add(rec.id, lineno)
        predicate = vocab.get(rec.predicate, where=f"{where}: predicate").name
        items.append(SuiteItem(rec.id, (Triple(rec.subject, predicate, rec.object),), _reference(rec, base, where, check_images, opened)))
        if len(items) == limit:
            break
    if not items:
        raise UserError(f"{path}: the JSONL suite has no items (allowed: one JSON object per line)")
    return items


def _reference(rec: SuiteRecord, base: str, where: str, check_images: bool,
               opened: dict[str, str | None]) -> Reference | None:
    if rec.image is None and rec.subject_box is None:
        return None
    image = None
    if rec.image is not None:
        image = os.path.normpath(os.path.join(base, os.path.expanduser(rec.image)))
        if check_images and not os.path.isfile(image):
            raise UserError(f"{where}: image: file not found: {image} (relative paths resolve against {base})")
        if check_images:  # found now, not when the reference is scored after every image is generated
            if image not in opened:  # lines often share a photo
                opened[image] = _problem_opening(image)
            if opened[image]:
                raise UserError(f"{where}: image: {image} does not open as an image ({opened[image]}; allowed: "
                                f"a PNG, JPEG or other image file that Pillow reads)")
    boxes: dict[str, Box] = {}
    if rec.subject_box is not None and rec.object_box is not None:
        boxes = {rec.subject: tuple(rec.subject_box), rec.object: tuple(rec.object_box)}
    return Reference(image=image, boxes=boxes, size=tuple(rec.image_size) if rec.image_size else None)


def _problem_opening(image: str) -> str | None:
    """Why ``image`` does not open as an image, or None."""
    from PIL import Image

    try:
        with Image.open(image) as im:
            im.verify()  # reads the header and structure, not the pixels: cheap at plan time
    except (OSError, SyntaxError, ValueError) as exc:  # PIL reports broken files as any of these
        return str(exc) or type(exc).__name__
    return None
