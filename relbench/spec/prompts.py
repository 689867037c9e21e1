"""Prompt builders: the relation prompt names the predicate, the neutral one only the objects.

Comparing a generator under both isolates what its graph input contributes.
"""

from __future__ import annotations

from relbench.spec.data import Graph, graph_objects
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
