"""Prompt builders: the relation prompt names the predicate, the neutral one only the objects.

Comparing a generator under both isolates what its graph input contributes.
"""

from __future__ import annotations

from relbench.spec.data import Graph, PeerPrompt, graph_objects
from relbench.spec.predicates import Vocabulary

# Words whose spelling misleads the a/an rule, and names that take no article.
_AN_EXCEPTIONS = ("hour", "honest", "honor", "honour", "heir", "herb")
_A_EXCEPTIONS = ("uni", "use", "usu", "uten", "one", "once", "eu", "ewe", "ufo", "ukulele", "uran", "euro")
_NO_ARTICLE = {
    "grass", "water", "snow", "sand", "hair", "sky", "people", "clothes", "glasses", "jeans",
    "pants", "shorts", "sunglasses", "food", "dirt", "ground", "skis", "trees", "leaves",
    "rocks", "clouds", "bushes", "flowers", "shoes", "gloves", "boots", "men", "women",
}


def with_article(noun: str) -> str:
    """'a dog', 'an orange triangle', 'an hour glass', 'a unicorn', 'grass'."""
    word = noun.strip()
    low = word.lower()
    if low in _NO_ARTICLE or low.startswith(("the ", "a ", "an ")):
        return word
    if low.startswith(_AN_EXCEPTIONS):
        return f"an {word}"
    if low.startswith(_A_EXCEPTIONS):
        return f"a {word}"
    return f"{'an' if low[:1] in 'aeiou' else 'a'} {word}"


def _join(parts: list[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def relation_prompt(graph: Graph, vocab: Vocabulary) -> str:
    """'a photo of a dog riding a horse' (several triples are joined with 'and')."""
    clauses = []
    for t in graph:
        pred = vocab.get(t.predicate)
        clauses.append(f"{with_article(t.subject)} {pred.text} {with_article(t.object)}")
    return "a photo of " + _join(clauses)


def neutral_prompt(graph: Graph, vocab: Vocabulary | None = None) -> str:
    """'a photo of a dog and a horse': same objects, no relation."""
    return "a photo of " + _join([with_article(o) for o in graph_objects(graph)])


PROMPT_MODES = ("relation", "neutral")


def build_prompt(graph: Graph, mode: str, vocab: Vocabulary) -> str:
    if mode == "relation":
        return relation_prompt(graph, vocab)
    if mode == "neutral":
        return neutral_prompt(graph, vocab)
    raise ValueError(f"unknown prompt mode {mode!r} (allowed: {', '.join(PROMPT_MODES)})")


def peer_prompt(prompt: PeerPrompt, pos: Graph, neg: Graph, index: int, vocab: Vocabulary) -> str | None:
    """g-'s prompt written the way the peer wrote g+'s (``prompt``), or None where its grammar
    cannot state g-. ``index``: the one triple in which g- differs from g+.

    - g- == g+: the peer's prompt itself.
    - replace (same objects, another predicate): the triple's relation phrase becomes the new
      predicate's, in the peer's spelling ("a dog behind a cat" -> "a dog in front of a cat").
    - swap (objects exchanged): where neither object takes part in another triple, the two
      object phrases trade places, so g- has exactly g+'s words ("a glass trumpet behind a
      candle" -> "a candle behind a glass trumpet"). In a chain ("A behind B on top of C") that
      would move B's other relation, so the relation phrase becomes the inverse predicate's
      ("A in front of B on top of C" states "B behind A"); a predicate without an inverse
      (chasing) then has no peer prompt.
    """
    if neg == pos:
        return prompt.text
    p, n = pos[index], neg[index]
    if pos[:index] + pos[index + 1:] != neg[:index] + neg[index + 1:]:
        return None
    phrases = dict(prompt.phrases)

    def spelled(predicate: str) -> str:
        return phrases.get(predicate) or vocab.get(predicate).text

    def with_relation(predicate: str) -> str:
        return "".join(spelled(predicate) if part.triple == index else part.text for part in prompt.parts)

    if (n.subject, n.object) == (p.subject, p.object):
        return with_relation(n.predicate)
    if (n.subject, n.predicate, n.object) != (p.object, p.predicate, p.subject):
        return None
    others = {x for k, t in enumerate(pos) if k != index for x in (t.subject, t.object)}
    if p.subject not in others and p.object not in others:
        said = {part.node: part.text for part in prompt.parts if part.node in (p.subject, p.object)}
        if len(said) != 2 or sum(part.node in said for part in prompt.parts) != 2:
            return None
        trade = {p.subject: said[p.object], p.object: said[p.subject]}
        return "".join(trade.get(part.node, part.text) if part.node else part.text for part in prompt.parts)
    inverse = vocab.get(p.predicate).inverse
    return with_relation(inverse) if inverse else None
