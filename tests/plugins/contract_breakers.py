"""Test-only plugins that break the contract the way a new user's first plugin does."""

import numpy as np

from relbench.generators.shapes import ShapesOracle
from relbench.plugin.metric import Aggregate, Metric, MetricArgs
from relbench.plugin.registry import register_generator, register_metric


class BrightnessArgs(MetricArgs):
    row_key: str = "brigthness"  # what score() writes
    agg_column: str = "brightnes"  # what the aggregate reads


@register_metric("brightness")
class Brightness(Metric):
    """Test only: mean brightness of img_pos, with configurable typos."""

    Args = BrightnessArgs

    def columns(self):
        return ["brightness"]

    def score(self, samples):
        return [{self.args.row_key: float(np.mean(s.image_pos))} for s in samples]

    def aggregates(self):
        return [Aggregate("b_mean", self.args.agg_column, "mean")]


class _OneColumn(Metric):
    """One column "v" of mean img_pos brightness, averaged; subclasses vary what they read."""

    def columns(self):
        return ["v"]

    def score(self, samples):
        return [{"v": float(np.mean(s.image_pos))} for s in samples]

    def aggregates(self):
        return [Aggregate("v_mean", "v")]


@register_metric("sneaky_pixels")
class SneakyPixels(_OneColumn):
    """Test only: reads images although it declares only prompts."""

    consumes = frozenset({"prompts"})


@register_generator("transposed_shapes")
class TransposedShapes(ShapesOracle):
    """Test only: returns (W, H, 3) images, wrong for any non-square request."""

    def generate(self, requests):
        return [np.ascontiguousarray(img.transpose(1, 0, 2)) for img in super().generate(requests)]


@register_generator("lazy_missing")
class LazyMissing(ShapesOracle):
    """Test only: imports a library that is not installed when it first draws (as model plugins do)."""

    def generate(self, requests):
        import fancylib_not_installed  # noqa: F401

        return super().generate(requests)


@register_generator("batch_dimmed_shapes")
class BatchDimmedShapes(ShapesOracle):
    """Test only: darkens every image by the batch size, so an image depends on its batch."""

    batch_tolerance = 1

    def generate(self, requests):
        return [(img // 2 + 100 - 2 * len(requests)).astype(np.uint8) for img in super().generate(requests)]


@register_metric("sneaky_texts")
class SneakyTexts(_OneColumn):
    """Test only: judges img_pos against its relation text, which it does not declare."""

    consumes = frozenset({"images"})

    def score(self, samples):
        return [{"v": float(np.mean(s.image_pos)) + len(s.text_pos)} for s in samples]


@register_metric("swallowed_graphs")
class SwallowedGraphs(_OneColumn):
    """Test only: reads the graphs undeclared and hides the refusal behind a fallback."""

    consumes = frozenset({"images"})

    def score(self, samples):
        rows = []
        for s in samples:
            try:
                n = len(s.case.pos)
            except Exception:  # noqa: BLE001 - the point of this plugin
                n = 0
            rows.append({"v": float(n)})
        return rows


@register_metric("overdeclared")
class Overdeclared(_OneColumn):
    """Test only: declares the prompts, which it never reads."""

    consumes = frozenset({"images", "prompts"})
