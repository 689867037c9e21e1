"""Example metric plugin (docs/extending.md): how far apart g+ and g- images are in brightness."""

from pydantic import Field

from relbench.plugin import Aggregate, Metric, MetricArgs, register_metric


class BrightnessGapArgs(MetricArgs):
    channel: int | None = Field(None, ge=0, le=2, description="one RGB channel; None: all three")


@register_metric("brightness_gap")
class BrightnessGap(Metric):
    """|mean level of img_pos - mean level of img_neg| (0-255): 0 when both images are the same."""

    Args = BrightnessGapArgs
    consumes = frozenset({"images"})  # the samples open nothing else

    def columns(self):
        return ["brightness_gap"]

    def score(self, samples):
        return [{"brightness_gap": None if s.image_neg_key is None  # a reference photo has no g- twin
                 else abs(self._level(s.image_pos) - self._level(s.image_neg))} for s in samples]

    def _level(self, image) -> float:
        return float(image.mean() if self.args.channel is None else image[..., self.args.channel].mean())

    def aggregates(self):
        return [Aggregate("brightness_gap_mean", "brightness_gap", "mean", higher_is_better=None,
                          description="mean |brightness(img_pos) - brightness(img_neg)| over cases")]
