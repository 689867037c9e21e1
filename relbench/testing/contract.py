"""Plugin contract checks for tests, in the spirit of torchmetrics' MetricTester and diffusers'
PipelineTesterMixin: run a plugin on a few tiny shapes-world cases and apply the same checks
the runner applies on every call (relbench.plugin.contract), plus the properties the harness relies on
(an image depends only on its own request; a row only on its own sample).

    from relbench.testing import check_generator, check_metric

    check_generator(MyGenerator(MyGenerator.Args(), tiny_context()))
    check_metric(MyMetric(MyMetric.Args(), tiny_context()))
"""

from __future__ import annotations

from relbench.plugin.contract import ContractError, check_declaration, check_images, check_rows


def tiny_context():
    from relbench.plugin.context import Context
    from relbench.spec.predicates import load_vocabulary

    return Context(vocab=load_vocabulary())


def tiny_cases(n: int = 3, seed: int = 0):
    """``n`` shapes-world cases (swap and replace negatives), deterministic."""
    from relbench.spec.negatives import build_cases
    from relbench.spec.predicates import load_vocabulary
    from relbench.shapes.suite import shapes_items

    vocab = load_vocabulary()
    items = shapes_items(1, vocab, seed=seed)
    cases, _ = build_cases(items, [0], ["swap", "replace"], vocab, "one", seed)
    if len(cases) < n:
        raise ValueError(f"the shapes suite gave only {len(cases)} cases")
    step = len(cases) // n
    return [cases[i * step] for i in range(n)], vocab


def check_generator(generator, sizes=((32, 32), (48, 32)), batch_invariance: bool = True,
                    prompt_mode: str = "relation") -> list:
    """Draw the g+ and g- of a few cases at each size, prompted as ``prompt_mode`` would
    ("neutral": g+ and g- share one prompt); returns the images.

    Checks one uint8 (H, W, 3) image per request of the requested (width, height), and, with
    ``batch_invariance``, that the last request drawn alone gives the same pixels (to within the
    generator's declared ``batch_tolerance``, float rounding of batched kernels).
    """
    from relbench.plugin.generator import Generator, Wanted
    from relbench.spec.data import Request
    from relbench.spec.prompts import build_prompt

    cases, vocab = tiny_cases(2)
    wanted = [Wanted(Request(build_prompt(g if prompt_mode == "relation" else c.pos, prompt_mode, vocab), g,
                             c.noise_seed, tuple(size)), c.id, side, 0)
              for size in sizes for c in cases for side, g in (("pos", c.pos), ("neg", c.neg))]
    requests = [w.request for w in wanted]
    if type(generator).prepare is not Generator.prepare:  # as the runner does before drawing
        generator.prepare(wanted)
    images = generator.generate(list(requests))
    check_images(generator, requests, images)
    if batch_invariance:
        import numpy as np

        alone = generator.generate([requests[-1]])
        check_images(generator, [requests[-1]], alone)
        diff = np.abs(np.asarray(alone[0], dtype=np.int16) - np.asarray(images[-1], dtype=np.int16)).max()
        if diff > generator.batch_tolerance:
            raise ContractError(f"generator {generator.name!r}: image {len(requests) - 1} differs when drawn "
                                f"alone (by up to {diff} levels, allowed {generator.batch_tolerance}); an image "
                                f"must depend only on its own request")
    return images


def tiny_samples(size=(64, 64), modes=("relation", "neutral")):
    """Samples of a few cases with shapes-world images (g+ drawn right, g- drawn as g-), in each
    prompt mode, plus one reference-style sample whose g- image is missing."""
    from relbench.plugin.metric import Sample
    from relbench.testing.samples import make_sample
    from relbench.shapes.reference import render_reference

    cases, vocab = tiny_cases(3)
    images: dict[str, object] = {}
    samples = []
    for mode in modes:
        for c in cases:
            keys = []
            for tag, graph in (("pos", c.pos), ("neg", c.neg)):
                key = f"{c.id}:{tag}"
                images.setdefault(key, render_reference(graph, c.seed, size)[0])
                keys.append(key)
            samples.append(make_sample(c, *keys, images.__getitem__, mode, vocab, run=f"tiny-{mode}"))
    last = samples[0]
    samples.append(Sample(last.case, "reference", last.prompt_pos, last.prompt_neg, last.image_pos_key, None,
                          _load=images.__getitem__, texts=last.texts))
    return samples


def check_metric(metric, samples=None, rel_tol: float = 1e-5, unread_ok=()) -> list[dict]:
    """Score tiny samples; returns the rows.

    Checks the declaration (every aggregate reads a declared column), one row per sample with
    exactly the declared columns, that a sample scored alone gives its row of the batch, and
    ``consumes`` against what the metric reads: the samples open only the declared inputs (as
    in a run), and a declared input it never reads is refused too (the manifest would claim
    it), except those in ``unread_ok`` (an input read only for samples these lack).
    """
    import math

    from relbench.plugin.metric import metric_view

    columns = check_declaration(metric)
    samples = tiny_samples() if samples is None else samples
    views, reads = metric_view(metric, samples)
    rows = metric.score(views)
    reads.check()
    check_rows(metric, columns, rows, len(samples))
    unread = sorted(set(metric.consumes) - reads.read_kinds - set(unread_ok))
    if unread:
        raise ContractError(f"metric {metric.name!r}: declares {unread[0]!r} in consumes but never reads it "
                            f"(read: {', '.join(sorted(reads.read_kinds)) or 'nothing'})")
    for i in (0, len(samples) - 1):
        alone = metric.score(metric_view(metric, [samples[i]])[0])
        check_rows(metric, columns, alone, 1)
        for c in columns:
            a, b = alone[0][c], rows[i][c]
            same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=rel_tol))
            if not same:
                raise ContractError(f"metric {metric.name!r}: column {c!r} of sample {i} is {b!r} in a batch and "
                                    f"{a!r} alone; a row must depend only on its own sample")
    return rows
