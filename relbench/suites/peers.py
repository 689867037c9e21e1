"""Other benchmarks' prompt sets read as relbench triples: GenEval, GenEval 2, T2I-CompBench, VISOR.

Each reader turns the lines that state one relation between two objects into a SuiteItem (the
negatives are then built as for any suite) and returns every other line as a ``Rejected`` with
its line number and reason, so nothing is dropped silently (the run's manifest lists them).

Formats (as published):

geneval        ``evaluation_metadata.jsonl``: {"tag": "position", "include": [{"class": "bench",
               "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}],
               "prompt": "a photo of a dog right of a bench"} -> (dog, right of, bench). Only tag
               "position" holds a relation; other tags (single_object, counting, colors...) are
               rejected by tag.
geneval2       ``geneval2_data.jsonl``: {"prompt", "atom_count", "vqa_list", "skills"}. The file
               has no structured relation, so the prompt is parsed: it must read
               "[a photo of] <a|an|one|the> X <predicate> <a|an|one|the> Y" with exactly one
               predicate of the vocabulary (by name or alias); anything else is rejected.
               Its vqa_list ([question, answer] pairs) is kept on the item: the vlm_judge's
               atoms mode scores those questions as GenEval 2 does (Soft-TIFA AM / GM).
t2i_compbench  the spatial prompt files (``spatial_val.txt``), one prompt per line, e.g. "a girl on
               the top of a frog". T2I-CompBench's phrases map to the vocabulary: "on the left
               of" -> left of, "on the right of" -> right of, "on the top of" -> above, "on the
               bottom of" -> below, "on side of" / "next to" / "near" -> near (its evaluation
               checks these by box geometry, so top/bottom mean above/below, not support).
visor          SR2D ``text_spatial_rel_phrases.json``: a JSON list of {unique_id, num_objects,
               obj_1_attributes, obj_2_attributes, rel_type, text}; the object is the first
               attribute (as VISOR's own evaluation reads it), rel_type "to the left of" / "to the
               right of" / "above" / "below". rel_type "and" and num_objects != 2 are rejected.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from relbench.data import SuiteItem, Triple
from relbench.errors import UserError
from relbench.predicates import Vocabulary, normalise
from relbench.suites.jsonl import clean_name

KINDS = ("geneval", "geneval2", "t2i_compbench", "visor")

#: T2I-CompBench spatial phrases -> vocabulary predicates (see the module docstring)
T2I_COMPBENCH_RELATIONS = {
    "on the left of": "left of", "on the right of": "right of", "on the top of": "above",
    "on the bottom of": "below", "on side of": "near", "next to": "near", "near": "near",
}
_ARTICLE = r"(?:a|an|one|the)"


@dataclass(frozen=True)
class Rejected:
    """A line of a peer's file that relbench could not turn into a triple, and why."""

    line: int  # 1-based line (JSONL / text) or list index + 1 (JSON list)
    reason: str
    text: str


def _item(kind: str, line: int, subject: str, predicate: str, obj: str, vocab: Vocabulary) -> SuiteItem | str:
    name = vocab.resolve(predicate)
    if name is None:
        return f"relation {predicate!r} is not in the vocabulary"
    s, o = clean_name(subject), clean_name(obj)
    if not s or not o:
        return "empty object name"
    if s == o:
        return "subject and object are the same class"
    return SuiteItem(id=f"{kind}{line}", graph=(Triple(s, name, o),))


def _read_lines(path: Path) -> Iterator[str]:
    """The file's lines as they are read, so a run with ``limit`` stops reading at its last item."""
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"suite: cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        try:
            for line in fh:
                yield line.rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise UserError(f"suite: cannot read {path}: not UTF-8 text ({exc.reason})") from None


def _geneval(lines: Iterable[str], vocab: Vocabulary, kind: str):
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            tag = rec.get("tag")
        except (json.JSONDecodeError, AttributeError):
            yield Rejected(i, "not a JSON object", raw[:200])
            continue
        if tag != "position":
            yield Rejected(i, f"tag {tag!r} holds no relation (only 'position' does)", rec.get("prompt", raw)[:200])
            continue
        include = rec.get("include") or []
        rel = [(j, o) for j, o in enumerate(include) if isinstance(o, dict) and o.get("position")]
        if len(include) != 2 or len(rel) != 1:
            yield Rejected(i, "position entry without exactly two classes and one position", rec.get("prompt", "")[:200])
            continue
        j, o = rel[0]
        try:
            predicate, anchor = o["position"]
            other = include[int(anchor)]
            if int(anchor) == j:
                raise ValueError
        except (ValueError, TypeError, IndexError, KeyError):
            yield Rejected(i, "malformed 'position' (expected [relation, index of the other class])", raw[:200])
            continue
        item = _item(kind, i, str(o.get("class", "")), str(predicate), str(other.get("class", "")), vocab)
        yield item if isinstance(item, SuiteItem) else Rejected(i, item, rec.get("prompt", "")[:200])


def _phrases(vocab: Vocabulary) -> list[str]:
    out = []
    for name in vocab.names():
        p = vocab.get(name)
        out += [name, *p.aliases] + ([p.phrase] if p.phrase else [])
    return sorted({normalise(x) for x in out}, key=len, reverse=True)


def _parse_prompt(prompt: str, vocab: Vocabulary, phrases: list[str], extra: dict[str, str] | None = None):
    """(subject, predicate, object) of 'a X <pred> a Y', or a reason string."""
    text = normalise(prompt).rstrip(".")
    text = re.sub(r"^(?:a photo of|an image of|a picture of)\s+", "", text)
    table = {**{p: p for p in phrases}, **(extra or {})}
    alternatives = "|".join(re.escape(p) for p in sorted(table, key=len, reverse=True))
    pattern = re.compile(rf"^{_ARTICLE} (.+?) ({alternatives}) {_ARTICLE} (.+)$")
    m = pattern.match(text)
    if not m:
        return "not '<a X> <relation> <a Y>' with a known relation"
    subject, pred, obj = m.groups()
    if re.search(rf" (?:{alternatives}) ", f" {subject} ") or re.search(rf" (?:{alternatives}) ", f" {obj} "):
        return "more than one relation in the prompt"
    if re.search(r"\b(?:and|with|while)\b|,", f"{subject} {obj}"):
        return "more than two objects or clauses in the prompt"
    return subject, table[pred], obj


def _prompt_item(i: int, prompt: str, vocab: Vocabulary, kind: str, phrases: list[str], extra=None):
    """The SuiteItem of line ``i``'s prompt, or its Rejected."""
    parsed = _parse_prompt(prompt, vocab, phrases, extra)
    if isinstance(parsed, str):
        return Rejected(i, parsed, prompt[:200])
    item = _item(kind, i, *parsed, vocab)
    return item if isinstance(item, SuiteItem) else Rejected(i, item, prompt[:200])


def _geneval2(lines: Iterable[str], vocab: Vocabulary, kind: str):
    phrases = _phrases(vocab)
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            prompt = rec["prompt"]
            if not isinstance(prompt, str):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError):
            yield Rejected(i, "not a JSON object with a 'prompt' string", raw[:200])
            continue
        vqa = rec.get("vqa_list") or []
        if not (isinstance(vqa, list) and all(isinstance(x, list) and len(x) == 2 for x in vqa)):
            yield Rejected(i, "vqa_list is not a list of [question, answer] pairs", prompt[:200])
            continue
        item = _prompt_item(i, prompt, vocab, kind, phrases)
        if isinstance(item, SuiteItem):  # its own questions feed the vlm_judge's atoms
            item = SuiteItem(id=item.id, graph=item.graph, questions=tuple((str(q), str(a)) for q, a in vqa))
        yield item


def _t2i_compbench(lines: Iterable[str], vocab: Vocabulary, kind: str):
    for i, raw in enumerate(lines, 1):  # T2I-CompBench's own phrase table replaces the vocabulary's
        if raw.strip():
            yield _prompt_item(i, raw.strip(), vocab, kind, [], T2I_COMPBENCH_RELATIONS)


def _visor(path: Path, vocab: Vocabulary, kind: str):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"suite: cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not JSON ({exc.msg}); allowed: VISOR's JSON list of "
                        f"{{unique_id, num_objects, obj_1_attributes, obj_2_attributes, rel_type, text}}") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list (VISOR's text_spatial_rel_phrases.json)")
    for i, rec in enumerate(data, 1):
        try:
            rel, n = rec["rel_type"], rec["num_objects"]
            a, b = rec["obj_1_attributes"], rec["obj_2_attributes"]
            text = str(rec.get("text", ""))
        except (KeyError, TypeError):
            yield Rejected(i, "entry lacks rel_type / num_objects / obj_1_attributes / obj_2_attributes", str(rec)[:200])
            continue
        if rel == "and":
            yield Rejected(i, "rel_type 'and' is not a relation", text)
            continue
        if n != 2 or not a or not b:
            yield Rejected(i, f"num_objects {n} (a relation needs 2 objects)", text)
            continue
        uid = rec.get("unique_id", i - 1)
        item = _item(kind, i, str(a[0]), str(rel), str(b[0]), vocab)
        if isinstance(item, SuiteItem):
            item = SuiteItem(id=f"{kind}{uid}", graph=item.graph)
            yield item
        else:
            yield Rejected(i, item, text)


def load_peer_suite(kind: str, path: str, vocab: Vocabulary,
                    limit: int | None = None) -> tuple[list[SuiteItem], list[Rejected]]:
    """(items, rejected lines) of a peer benchmark's prompt file; with ``limit``, its first
    ``limit`` items and the lines rejected before the last of them (reading stops there)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"suite: {kind} file {path!r} not found")
    if kind == "visor":
        stream = _visor(p, vocab, kind)
    else:
        reader = {"geneval": _geneval, "geneval2": _geneval2, "t2i_compbench": _t2i_compbench}[kind]
        stream = reader(_read_lines(p), vocab, kind)
    items, rejected = [], []
    for x in stream:
        if isinstance(x, Rejected):
            rejected.append(x)
            continue
        items.append(x)
        if len(items) == limit:
            stream.close()  # closes the file now, not when the generator is collected
            break
    return items, sorted(rejected, key=lambda r: r.line)


def rejected_summary(rejected: list[Rejected]) -> dict:
    """{"n": .., "by_reason": {reason: count}, "lines": [...]} for the manifest."""
    by: dict[str, int] = {}
    for r in rejected:
        by[r.reason] = by.get(r.reason, 0) + 1
    return {"n": len(rejected), "by_reason": dict(sorted(by.items(), key=lambda kv: -kv[1])),
            "lines": [{"line": r.line, "reason": r.reason, "text": r.text} for r in rejected]}
