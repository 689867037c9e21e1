"""GenEval 2's prompts (``geneval2_data.jsonl``) read as graphs of several triples whose nodes
carry counts and attributes.

A line is {"prompt", "atom_count", "vqa_list": [[question, answer], ...], "skills": [...]}, one
skill per question. The prompt is one or more clauses joined by ", and " (or "and"); a clause is a chain of
object phrases joined by relation phrases, each relation binding the phrases either side of it:
"two croissants on top of seven plastic giraffes in front of five checkered rabbits" ->
(croissant, on, giraffe), (giraffe, in front of, rabbit). An object phrase is
"<count> [attributes] <noun>" (count: a / an / one ... ten; the noun in the plural above one),
or "the <noun>" for an object named before ("two cows to the left of a bench and a bird above
the bench": the bench is one node in two triples).
Every relation the chain reads must be one of the vqa_list's "position" / "verb" questions
("Are the croissants on top of the giraffes?", "Yes") and the other way round, so a prompt is
never read another way than GenEval 2 asks it; a line where they disagree is rejected.
"""

from __future__ import annotations

import re
from typing import Iterable

from relbench.spec.data import Node, PeerPrompt, PromptPart, SuiteItem, Triple
from relbench.spec.predicates import Vocabulary
from relbench.suites.rejected import Rejected, json_object

#: GenEval 2's relation phrases -> vocabulary predicates: its 6 positions and 3 verbs (and
#: "above" / "below", which its file does not use but hand-written prompts of its grammar do)
RELATIONS = {
    "to the left of": "left of", "to the right of": "right of", "in front of": "in front of", "behind": "behind",
    "under": "below", "on top of": "on", "chasing": "chasing", "playing with": "playing with",
    "jumping over": "jumping over", "above": "above", "below": "below",
}
#: how GenEval 2 writes each predicate it uses, for g-'s prompt (relbench.spec.prompts.peer_prompt)
WRITES = {"left of": "to the left of", "right of": "to the right of", "in front of": "in front of",
          "behind": "behind", "below": "under", "on": "on top of", "chasing": "chasing",
          "playing with": "playing with", "jumping over": "jumping over"}
COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10}
RELATION_SKILLS = ("position", "verb")

_ALTS = "|".join(re.escape(p) for p in sorted(RELATIONS, key=len, reverse=True))
_SPLIT = re.compile(rf"(,? and | (?:{_ALTS}) )")
_QUESTION = re.compile(rf"^(?:Is|Are) the ([a-z]+) ({_ALTS}) the ([a-z]+)\?$")
_PHRASE = re.compile(rf"^({'|'.join(COUNTS)}) ((?:[a-z]+ )*)([a-z]+)$")
_AGAIN = re.compile(r"^the ([a-z]+)$")  # "the bench": an object named before


def _singular(noun: str, count: int) -> str:
    """The class name of a counted noun: GenEval 2 adds -s to every plural ("sheeps")."""
    if count == 1 or not noun.endswith("s"):
        return noun
    return noun[:-2] if noun.endswith(("ches", "shes", "xes", "sses")) else noun[:-1]


def _relation_questions(rec: dict) -> list[tuple[str, str, str]] | str:
    """(subject, phrase, object) as written in each position / verb question, or why not."""
    vqa, skills = rec.get("vqa_list"), rec.get("skills")
    if not (isinstance(vqa, list) and all(isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x)
                                          for x in vqa)):
        return "vqa_list is not a list of [question, answer] pairs"
    if not (isinstance(skills, list) and len(skills) == len(vqa)):
        return "skills is not a list with one skill per vqa_list question"
    out = []
    for (question, answer), skill in zip(vqa, skills):
        if skill not in RELATION_SKILLS:
            continue
        m = _QUESTION.match(question)
        if not m:
            return (f"a {skill} question is not 'Is the X <relation> the Y?' with a relation relbench maps "
                    f"({', '.join(RELATIONS)})")
        if answer != "Yes":
            return f"{skill} question answered {answer[:20]!r} (only 'Yes' states the relation)"
        out.append(m.groups())
    return out or "no position or verb question in its vqa_list (the prompt states no relation)"


def parse(prompt: str, asked: list[tuple[str, str, str]], vocab: Vocabulary) -> SuiteItem | str:
    """The graph, nodes and cut prompt of one GenEval 2 prompt (id left empty), or why not."""
    pieces = _SPLIT.split(prompt)
    nodes, mentions, written, parts, triples, chain = [], [], {}, [], [], []
    for k, piece in enumerate(pieces):
        if k % 2:  # a separator: ", and " ends a clause, " <relation> " links two phrases
            phrase = piece.strip()
            if phrase in (", and", "and"):
                parts.append(PromptPart(piece))
                continue
            chain.append((len(mentions) - 1, phrase))
            parts += [PromptPart(" "), PromptPart(phrase, triple=len(chain) - 1), PromptPart(" ")]
            continue
        again = _AGAIN.match(piece)
        if again:
            if again.group(1) not in written:
                return "'the X' names no object before it"
            mentions.append(written[again.group(1)])
            parts.append(PromptPart(piece, node=mentions[-1]))
            continue
        m = _PHRASE.match(piece)
        if not m:
            return "an object phrase is not '<count> [attributes] <noun>' or 'the <noun>'"
        count = COUNTS[m.group(1)]
        noun = m.group(3)
        name = _singular(noun, count)
        if name in {n.name for n in nodes}:
            return "a class is named twice (a graph names each object by its class)"
        nodes.append(Node(name, count, tuple(m.group(2).split())))
        mentions.append(name)
        written[noun] = name
        parts.append(PromptPart(piece, node=name))
    for left, phrase in chain:
        predicate = vocab.resolve(RELATIONS[phrase])
        if predicate is None:
            return f"relation {phrase!r} is not in the vocabulary"
        triples.append(Triple(mentions[left], predicate, mentions[left + 1]))
    said = sorted((s, p, o) for s, p, o in ((t.subject, RELATIONS[ph], t.object)
                                            for t, (_, ph) in zip(triples, chain)))
    heard = sorted((written.get(s, s), RELATIONS[p], written.get(o, o)) for s, p, o in asked)
    if said != heard:
        return "the prompt's relations are not its vqa_list's position / verb questions"
    # the prompt's own spelling of a predicate wins over GenEval 2's usual one
    phrases = tuple(WRITES.items()) + tuple((t.predicate, ph) for t, (_, ph) in zip(triples, chain))
    return SuiteItem(id="", graph=tuple(triples), nodes=tuple(nodes),
                     prompt=PeerPrompt(tuple(parts), phrases))


def read(lines: Iterable[str], vocab: Vocabulary, kind: str):
    """SuiteItems and Rejected lines of a GenEval 2 file, in file order."""
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        rec = json_object(raw)
        prompt = rec.get("prompt") if rec is not None else None
        if not isinstance(prompt, str):
            yield Rejected(i, "not a JSON object with a 'prompt' string", raw[:200])
            continue
        asked = _relation_questions(rec)
        item = asked if isinstance(asked, str) else parse(prompt, asked, vocab)
        if isinstance(item, str):
            yield Rejected(i, item, prompt[:200])
            continue
        # its own questions feed the vlm_judge's atoms mode
        yield SuiteItem(id=f"{kind}{i}", graph=item.graph, questions=tuple((q, a) for q, a in rec["vqa_list"]),
                        nodes=item.nodes, prompt=item.prompt)
