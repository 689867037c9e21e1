"""Other benchmarks' prompt sets read as relbench triples: GenEval, GenEval 2, T2I-CompBench, VISOR.

Each reader turns the lines that state a relation into a SuiteItem (the negatives are then
built as for any suite) and returns every other line as a ``Rejected`` with
its line number and reason, so nothing is dropped silently (the run's manifest lists them).

Formats (as published):

geneval        ``evaluation_metadata.jsonl``: {"tag": "position", "include": [{"class": "bench",
               "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}],
               "prompt": "a photo of a dog right of a bench"} -> (dog, right of, bench). Only tag
               "position" holds a relation; other tags (single_object, counting, colors...) are
               rejected by tag.
geneval2       ``geneval2_data.jsonl``: {"prompt", "atom_count", "vqa_list", "skills"}: graphs of
               one or more triples whose nodes carry counts and attributes, read from the
               prompt and checked against its position / verb questions (relbench.suites.geneval2).
               Its vqa_list ([question, answer] pairs) is kept on the item: the vlm_judge's
               geneval2 mode scores them, with the prompt, as GenEval 2 does (VQAScore, Soft-TIFA).
t2i_compbench  the spatial prompt files (``spatial_val.txt``), one prompt per line, e.g. "a girl on
               the top of a frog". T2I-CompBench's phrases map to the vocabulary: "on the left
               of" -> left of, "on the right of" -> right of, "on the top of" -> above, "on the
               bottom of" -> below, "on side of" / "next to" / "near" -> near (its evaluation
               checks these by box geometry, so top/bottom mean above/below, not support).
visor          SR2D ``text_spatial_rel_phrases.json``: a JSON list of {unique_id, num_objects,
               obj_1_attributes, obj_2_attributes, rel_type, text}; the object is the first
               attribute (as VISOR's own evaluation reads it), rel_type "to the left of" / "to the
               right of" / "above" / "below". rel_type "and" and num_objects != 2 are rejected.
               The item id is "visor<unique_id>": two items with one id (5 and "5" alike) are
               an error naming both entries, since they would be merged into one case.

Every item keeps the peer's own prompt, cut into object and relation phrases (SuiteItem.prompt):
relation-mode generators are given it verbatim, and g- written the same way
(relbench.spec.prompts.peer_prompt); judges judge the relation texts built from the graph.

A file that is not UTF-8 is an error naming the line of the first bad byte; a line (or entry)
that is not the documented structure is rejected with its reason, never a crash.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from relbench.spec.data import PeerPrompt, PromptPart, SuiteItem, Triple
from relbench.errors import UserError
from relbench.spec.predicates import Vocabulary, normalise
from relbench.spec.config import PEER_SUITE_KINDS
from relbench.suites import geneval2, ids
from relbench.suites.jsonl import clean_name
from relbench.suites.rejected import Rejected, json_object as _json_object
from relbench.suites.text import read_lines, read_text

KINDS = PEER_SUITE_KINDS

#: T2I-CompBench spatial phrases -> vocabulary predicates (see the module docstring)
T2I_COMPBENCH_RELATIONS = {
    "on the left of": "left of", "on the right of": "right of", "on the top of": "above",
    "on the bottom of": "below", "on side of": "near", "next to": "near", "near": "near",
}
#: how each peer spells the vocabulary's predicates, for g-'s prompt written its way
PEER_PHRASES = {
    "geneval": {"left of": "left of", "right of": "right of", "above": "above", "below": "below"},
    "t2i_compbench": {"left of": "on the left of", "right of": "on the right of", "above": "on the top of",
                      "below": "on the bottom of", "near": "next to"},
    "visor": {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"},
}
_ARTICLE = r"(?:a|an|one|the)"
_LEAD = r"(?:a photo of|an image of|a picture of)"


def _cut(prompt: str, phrase: str, item: SuiteItem, kind: str) -> SuiteItem:
    """The item with the peer's prompt of its one triple cut at its relation ``phrase``, the
    object phrases either side ("a photo of " + "a dog" + " right of " + "a bench"); unchanged
    where the prompt does not read so (its generators then get relbench's prompts)."""
    rel = r"\s+".join(re.escape(w) for w in phrase.split())
    m = re.fullmatch(rf"(\s*(?:{_LEAD}\s+)?)(\S.*?)(\s+)({rel})(\s+)(.*?\S)(\.?\s*)", prompt, re.IGNORECASE)
    if not m:
        return item
    t = item.graph[0]
    lead, subject, s1, relation, s2, obj, tail = m.groups()
    parts = (PromptPart(lead), PromptPart(subject, node=t.subject), PromptPart(s1), PromptPart(relation, triple=0),
             PromptPart(s2), PromptPart(obj, node=t.object), PromptPart(tail))
    return replace(item, prompt=PeerPrompt(tuple(p for p in parts if p.text), tuple(PEER_PHRASES[kind].items())))


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


def _repr(value, n: int = 60) -> str:
    """At most ``n`` characters of ``repr(value)``, for a reason or an error message."""
    try:
        return repr(value)[:n]
    except RecursionError:
        return "(nested too deeply to show)"


def _shown(value, n: int = 200) -> str:
    """At most ``n`` characters of a value as a Rejected line's text shows it."""
    return value[:n] if isinstance(value, str) else _repr(value, n)


_NOT_TWO = "position entry without exactly two classes and one position"


def _geneval_position(include) -> tuple[str, str, str] | str:
    """(subject, relation, object) of a 'position' entry's two classes, or why there are none."""
    if not isinstance(include, list) or len(include) != 2 or not all(isinstance(o, dict) for o in include):
        return _NOT_TWO
    rel = [j for j, o in enumerate(include) if o.get("position")]
    if len(rel) != 1:
        return _NOT_TWO
    j = rel[0]
    position = include[j]["position"]
    if not (isinstance(position, list) and len(position) == 2 and isinstance(position[0], str)
            and position[1] in (0, 1) and type(position[1]) is int and position[1] != j):
        return "malformed 'position' (expected [relation, index of the other class])"
    subject, obj = include[j].get("class", ""), include[position[1]].get("class", "")
    if not (isinstance(subject, str) and isinstance(obj, str)):
        return "a class that is not a string"
    return subject, position[0], obj


def _geneval(lines: Iterable[str], vocab: Vocabulary, kind: str):
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        rec = _json_object(raw)
        if rec is None:
            yield Rejected(i, "not a JSON object", raw[:200])
            continue
        tag, prompt = rec.get("tag"), rec.get("prompt")
        text = prompt[:200] if isinstance(prompt, str) else raw[:200]
        if tag != "position":
            yield Rejected(i, f"tag {_repr(tag)} holds no relation (only 'position' does)", text)
            continue
        parsed = _geneval_position(rec.get("include"))
        if isinstance(parsed, str):
            yield Rejected(i, parsed, text)
            continue
        item = _item(kind, i, *parsed, vocab)
        if isinstance(item, str):
            yield Rejected(i, item, text)
            continue
        yield _cut(prompt, parsed[1], item, kind) if isinstance(prompt, str) else item


def _parse_prompt(prompt: str, vocab: Vocabulary, phrases: list[str], extra: dict[str, str] | None = None):
    """(subject, predicate, object, the relation phrase as matched) of 'a X <pred> a Y', or a reason string."""
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
    return subject, table[pred], obj, pred


def _prompt_item(i: int, prompt: str, vocab: Vocabulary, kind: str, phrases: list[str], extra=None):
    """The SuiteItem of line ``i``'s prompt, or its Rejected."""
    parsed = _parse_prompt(prompt, vocab, phrases, extra)
    if isinstance(parsed, str):
        return Rejected(i, parsed, prompt[:200])
    item = _item(kind, i, *parsed[:3], vocab)
    return _cut(prompt, parsed[3], item, kind) if isinstance(item, SuiteItem) else Rejected(i, item, prompt[:200])


def _t2i_compbench(lines: Iterable[str], vocab: Vocabulary, kind: str):
    for i, raw in enumerate(lines, 1):  # T2I-CompBench's own phrase table replaces the vocabulary's
        if raw.strip():
            yield _prompt_item(i, raw.strip(), vocab, kind, [], T2I_COMPBENCH_RELATIONS)


_VISOR_FORMAT = "VISOR's JSON list of {unique_id, num_objects, obj_1_attributes, obj_2_attributes, rel_type, text}"


def _visor(path: Path, vocab: Vocabulary, kind: str):
    try:
        data = json.loads(read_text(path, "VISOR file"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not JSON ({exc.msg}); allowed: {_VISOR_FORMAT}") from None
    except RecursionError:
        raise UserError(f"{path}: not JSON that can be read (nested too deeply); allowed: {_VISOR_FORMAT}") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list (VISOR's text_spatial_rel_phrases.json)")
    seen = ids.UniqueIds(str(path), unit="entry")
    for i, rec in enumerate(data, 1):
        if not isinstance(rec, dict) or any(k not in rec for k in ("rel_type", "num_objects", "obj_1_attributes",
                                                                   "obj_2_attributes")):
            yield Rejected(i, "entry lacks rel_type / num_objects / obj_1_attributes / obj_2_attributes", _shown(rec))
            continue
        rel, n = rec["rel_type"], rec["num_objects"]
        a, b = rec["obj_1_attributes"], rec["obj_2_attributes"]
        text = _shown(rec.get("text", ""))
        if rel == "and":
            yield Rejected(i, "rel_type 'and' is not a relation", text)
            continue
        if n != 2:
            yield Rejected(i, f"num_objects {_repr(n)} (a relation needs 2 objects)", text)
            continue
        if not all(isinstance(x, list) and x and isinstance(x[0], str) for x in (a, b)):
            yield Rejected(i, "obj_1_attributes / obj_2_attributes are not lists starting with the object's name", text)
            continue
        if not isinstance(rel, str):
            yield Rejected(i, f"rel_type {_repr(rel)} is not a string", text)
            continue
        uid = rec.get("unique_id", i - 1)
        if isinstance(uid, bool) or not isinstance(uid, (int, str)):
            raise UserError(f"{seen.where(i)}: unique_id: {_repr(uid)} is not an integer or a string "
                            f"(allowed: {_VISOR_FORMAT}, unique ids)")
        item = _item(kind, i, a[0], rel, b[0], vocab)
        if isinstance(item, SuiteItem):
            item_id = ids.check_id(f"{kind}{uid}", seen.where(i))
            seen.add(item_id, i)
            said = rec.get("text")
            item = SuiteItem(id=item_id, graph=item.graph)
            yield _cut(said, rel, item, kind) if isinstance(said, str) else item
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
        reader = {"geneval": _geneval, "geneval2": geneval2.read, "t2i_compbench": _t2i_compbench}[kind]
        stream = reader(read_lines(p, f"{kind} file"), vocab, kind)
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
