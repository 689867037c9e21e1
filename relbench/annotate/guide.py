"""What annotators are told before they answer: whose viewpoint positions are read from, when
"can't tell" is the answer, and what each relation in the study's captions means in a picture.

Without it people settle these differently (is "left of" the viewer's left or the object's?
a missing object: guess or abstain?), and their disagreement would be read as the images'.
"""

from __future__ import annotations

import re

RULES = (
    "Pick the caption that describes the image. The two captions name the same objects; they differ in who does "
    "what to whom, or in the relation.",
    "Read positions as you see the picture (the camera's viewpoint): left and right are your left and right, "
    "\"in front of\" is nearer to you, \"behind\" farther away. Never take an object's own viewpoint.",
    "Choose can't tell (0) when an object a caption names is missing or cannot be recognised, or when both "
    "captions (or neither) fit the picture. Do not guess.",
)

#: the vocabulary's predicates (relbench/spec/vocab/predicates.yaml), as a picture shows them; A is
#: the object named first, B the one named second
MEANINGS = {
    "above": "A is higher up in the picture than B (touching or not)",
    "below": "A is lower down in the picture than B (touching or not)",
    "left of": "A is to the left of B as you see the picture",
    "right of": "A is to the right of B as you see the picture",
    "in front of": "A is nearer to you than B (it may hide part of B)",
    "behind": "A is farther from you than B (B may hide part of A)",
    "near": "A and B are close together (the same either way round)",
    "far from": "A and B are far apart (the same either way round)",
    "on": "A rests on top of B, touching it",
    "in": "A is inside B",
    "sitting on": "A sits on B",
    "standing on": "A stands on B",
    "riding": "A rides B (on its back or seat)",
    "hanging from": "A hangs down from B",
    "carrying": "A carries B",
    "holding": "A holds B",
    "eating": "A eats B",
    "wearing": "A wears B",
    "looking at": "A looks at B",
}
FALLBACK = "as in everyday language: A {name} B"


def meanings(predicates, captions=()) -> list[tuple[str, str]]:
    """(predicate, meaning) for the study's predicates and any vocabulary predicate its captions
    use (a predicate-replacement negative brings another one), in alphabetical order."""
    found = set(predicates)
    for text in captions:
        rest = f" {text.lower()} "
        for name in sorted(MEANINGS, key=len, reverse=True):  # "sitting on" before "on"
            pattern = rf"\s{re.escape(name)}\s"
            if re.search(pattern, rest):
                found.add(name)
                rest = re.sub(pattern, " | ", rest)
    return [(p, MEANINGS.get(p) or FALLBACK.format(name=p)) for p in sorted(found)]


def guide_for(plan) -> dict:
    """What the annotation pages show as instructions for this plan."""
    return {"rules": RULES,
            "meanings": meanings({it.predicate for it in plan.items},
                                 [t for it in plan.items for t in (it.text_pos, it.text_neg)])}
