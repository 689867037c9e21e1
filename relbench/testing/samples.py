"""Samples built the way the runner builds them, in either prompt mode, for metric tests."""

from __future__ import annotations

from typing import Any, Callable

from relbench.spec.data import Case
from relbench.plugin.metric import Sample


def make_sample(case: Case, image_pos_key: str | None, image_neg_key: str | None, load: Callable[[str], Any],
                mode: str = "relation", vocab=None, run: str = "run") -> Sample:
    """The generator's prompts follow ``mode`` (neutral: one object-only prompt for both
    images); the relation texts a metric judges against are the relation prompts of g+ / g-
    in both modes, as in ``relbench.engine.execute``."""
    from relbench.spec.predicates import load_vocabulary
    from relbench.spec.prompts import build_prompt

    vocab = vocab or load_vocabulary()
    texts = (build_prompt(case.pos, "relation", vocab), build_prompt(case.neg, "relation", vocab))
    prompts = texts if mode == "relation" else (build_prompt(case.pos, mode, vocab),) * 2
    return Sample(case, run, *prompts, image_pos_key, image_neg_key, _load=load, texts=texts)
