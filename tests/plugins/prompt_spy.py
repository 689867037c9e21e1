"""Test-only spies: a generator that keeps every prompt it is given, and a judge that keeps every
relation text it judges, so a test can see which text went where."""

import numpy as np

from relbench.plugin.generator import Generator
from relbench.plugin.metric import Aggregate, Metric
from relbench.plugin.registry import register_generator, register_metric

PROMPTS: list[str] = []  # every Request.prompt the generator drew, in order
TEXTS: list[tuple[str, str]] = []  # every (text_pos, text_neg) the judge read


@register_generator("prompt_spy")
class PromptSpy(Generator):
    """Test only: a grey image per request; keeps the request's prompt."""

    def generate(self, requests):
        PROMPTS.extend(r.prompt for r in requests)
        return [np.full((r.size[1], r.size[0], 3), 128, np.uint8) for r in requests]


@register_metric("text_spy")
class TextSpy(Metric):
    """Test only: keeps the relation texts of each sample; scores 1."""

    consumes = frozenset({"texts"})

    def columns(self):
        return ["text_spy"]

    def score(self, samples):
        TEXTS.extend(s.texts for s in samples)
        return [{"text_spy": 1.0} for _ in samples]

    def aggregates(self):
        return [Aggregate("text_spy_mean", "text_spy", "mean")]
