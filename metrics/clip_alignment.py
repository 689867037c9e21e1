"""clip_alignment: does CLIP prefer each image's own relation text over the other graph's?

Per case, with S(img, text) = CLIP's scaled cosine similarity (logit_scale.exp() · cos, the
model's own logit scale; about 13 for ViT-B/32 on 256 px images) and p+ / p- the relation texts
of g+ / g- (``Sample.text_pos`` / ``text_neg``, "a dog riding a horse" / "a horse riding a dog"),
whatever the generator was prompted with: in neutral mode both images got the same object-only
prompt, and judging against that would score every pair exactly 0.5:

    clip_pos_correct = S(img_pos, p+)    clip_pos_wrong = S(img_pos, p-)
    clip_neg_correct = S(img_neg, p-)    clip_neg_wrong = S(img_neg, p+)
    clip_pos_margin  = clip_pos_correct - clip_pos_wrong
    clip_neg_margin  = clip_neg_correct - clip_neg_wrong
    clip_pos_acc     = 1 if pos margin > 0, 0.5 if it is exactly 0, else 0 (clip_neg_acc alike)
    clip_acc         = mean of the available comparisons (pos and neg; pos only for a
                       reference image without a g- twin)  -> aggregate clip_alignment_acc
    clip_both_acc    = 1 iff both comparisons are strictly right (None without img_neg)

So ``clip_alignment_acc`` counts two comparisons per case, img_pos prefers p+ and img_neg
prefers p-, each 1 (0.5 for an exact tie), averaged per case: chance is 0.5, and a generator
that draws the same image for g+ and g- scores exactly 0.5 (and clip_both_acc 0).

CLIP reads relations like a bag of words (ARO VG-Relation ~0.59 for ViT-B/32, chance 0.5), so
read this metric next to its ceiling on reference images.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from relbench.plugin.metric import Aggregate, Metric, MetricArgs, Sample
from relbench.plugin.registry import register_metric

COLUMNS = (
    "clip_pos_correct", "clip_pos_wrong", "clip_neg_correct", "clip_neg_wrong", "clip_pos_margin",
    "clip_neg_margin", "clip_pos_acc", "clip_neg_acc", "clip_acc", "clip_both_acc",
)


def _vote(margin: float) -> float:
    return 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0


def alignment_from_scores(
    pos_correct: float, pos_wrong: float, neg_correct: Optional[float] = None, neg_wrong: Optional[float] = None
) -> dict[str, Optional[float]]:
    """The per-case columns from the four CLIP scores (functional twin of the metric).

    pos_correct = S(img_pos, p+), pos_wrong = S(img_pos, p-), neg_correct = S(img_neg, p-),
    neg_wrong = S(img_neg, p+); neg_* are None when the case has no img_neg.
    """
    pos_margin = pos_correct - pos_wrong
    row = dict.fromkeys(COLUMNS)
    row.update(clip_pos_correct=pos_correct, clip_pos_wrong=pos_wrong, clip_pos_margin=pos_margin,
               clip_pos_acc=_vote(pos_margin), clip_acc=_vote(pos_margin))
    if neg_correct is not None and neg_wrong is not None:
        neg_margin = neg_correct - neg_wrong
        row.update(clip_neg_correct=neg_correct, clip_neg_wrong=neg_wrong, clip_neg_margin=neg_margin,
                   clip_neg_acc=_vote(neg_margin),
                   clip_acc=(_vote(pos_margin) + _vote(neg_margin)) / 2.0,
                   clip_both_acc=float(pos_margin > 0 and neg_margin > 0))
    return row


class ClipPreprocess(BaseModel):
    """Image preprocessing of the weights (open_clip's PreprocessCfg fields); unset fields come
    from the pretrained tag's config, else the architecture's defaults."""

    model_config = ConfigDict(extra="forbid")
    mean: Optional[tuple[float, float, float]] = None
    std: Optional[tuple[float, float, float]] = None
    interpolation: Optional[Literal["bicubic", "bilinear", "nearest"]] = None
    resize_mode: Optional[Literal["shortest", "longest", "squash"]] = None


class ClipAlignmentArgs(MetricArgs):
    model: str = Field("ViT-B-32", description="open_clip architecture name (open_clip.list_models())")
    pretrained: Optional[str] = Field(
        None, description="open_clip pretrained tag (openai, laion2b_s34b_b79k, webli, ...): quick_gelu and "
                          "preprocessing come from its pretrained config; weights from checkpoint: or the HF cache",
    )
    checkpoint: Optional[str] = Field(
        None, description="local weights file, or a directory holding one (or an open_clip local-dir with open_clip_config.json)",
    )
    quick_gelu: Optional[bool] = Field(None, description="QuickGELU activations (OpenAI weights); default: the tag's")
    preprocess: Optional[ClipPreprocess] = None
    device: Optional[str] = None
    batch_size: int = Field(32, ge=1)

    def weights(self) -> dict:
        """The keyword arguments of relbench.models.clip.resolve / load / identity."""
        return {"pretrained": self.pretrained, "quick_gelu": self.quick_gelu,
                "preprocess": self.preprocess.model_dump() if self.preprocess else None}


@register_metric("clip_alignment")
class ClipAlignment(Metric):
    """CLIP prefers each image's own relation text: accuracy and margins with the seed report's keys."""

    Args = ClipAlignmentArgs
    consumes = frozenset({"images", "texts"})
    version = "2"  # 2: judged against the relation texts (v1 used the prompts: 0.5 in neutral mode)

    def __init__(self, args: ClipAlignmentArgs, ctx):
        super().__init__(args, ctx)
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:
            from relbench.models import clip as _clip_model

            device = self.args.device or self.ctx.device or "cpu"
            model, preprocess, tokenizer = _clip_model.load(self.args.model, self.args.checkpoint, device,
                                                             **self.args.weights())
            self._encoder = _clip_model.ClipEncoder(model, preprocess, tokenizer, device, self.args.batch_size)
        return self._encoder

    @property
    def encodings(self) -> dict[str, int]:
        """How many images and texts went through CLIP so far (each unique one once)."""
        return dict(self._encoder.counts) if self._encoder else {"image": 0, "text": 0}

    @property
    def flags(self) -> list[str]:
        """A weights file with nothing said about how it was trained is built with the
        architecture's defaults; OpenAI weights built that way (GELU for QuickGELU) score
        differently without any error, so the summary says which defaults were assumed."""
        import os

        a = self.args
        ckpt = os.path.expanduser(a.checkpoint or "")
        if a.pretrained or a.quick_gelu is not None or a.preprocess is not None or not ckpt or (
                os.path.isfile(os.path.join(ckpt, "open_clip_config.json"))):
            return []
        return [f"no pretrained tag: {os.path.basename(ckpt.rstrip(os.sep))} built as {a.model}'s defaults (no QuickGELU, "
                f"its default preprocessing); state pretrained: TAG (e.g. openai) or quick_gelu / preprocess if the "
                f"weights were trained otherwise"]

    def weights_identity(self):
        from relbench.models import clip as _clip_model

        return _clip_model.identity(self.args.model, self.args.checkpoint, **self.args.weights())

    def columns(self) -> list[str]:
        return list(COLUMNS)

    def aggregates(self) -> list[Aggregate]:
        return [
            Aggregate("clip_alignment_acc", "clip_acc", chance=0.5, headline=True,
                      description="share of comparisons where the image's own relation text scores higher "
                                  "(img_pos: p+ > p-, img_neg: p- > p+; ties 0.5)"),
            Aggregate("clip_pos_margin", "clip_pos_margin", description="mean S(img_pos,p+) - S(img_pos,p-)"),
            Aggregate("clip_neg_margin", "clip_neg_margin", description="mean S(img_neg,p-) - S(img_neg,p+)"),
            Aggregate("clip_pos_correct", "clip_pos_correct", higher_is_better=None, description="mean S(img_pos, p+)"),
            Aggregate("clip_pos_wrong", "clip_pos_wrong", higher_is_better=None, description="mean S(img_pos, p-)"),
            Aggregate("clip_neg_correct", "clip_neg_correct", higher_is_better=None, description="mean S(img_neg, p-)"),
            Aggregate("clip_neg_wrong", "clip_neg_wrong", higher_is_better=None, description="mean S(img_neg, p+)"),
            Aggregate("clip_pos_acc", "clip_pos_acc", chance=0.5, description="img_pos: S(p+) > S(p-) (ties 0.5)"),
            Aggregate("clip_neg_acc", "clip_neg_acc", chance=0.5, description="img_neg: S(p-) > S(p+) (ties 0.5)"),
            Aggregate("clip_both_acc", "clip_both_acc",
                      description="both comparisons of a case strictly right (chance depends on the generator)"),
        ]

    def score(self, samples: list[Sample]) -> list[dict[str, Optional[float]]]:
        enc = self.encoder
        enc.encode_texts(t for s in samples if s.image_pos_key is not None for t in s.texts)
        images = []
        for s in samples:
            if s.image_pos_key is not None:
                images.append((s.image_pos_key, lambda s=s: s.image_pos))
            if s.image_pos_key is not None and s.image_neg_key is not None:
                images.append((s.image_neg_key, lambda s=s: s.image_neg))
        enc.encode_images(images)
        rows = []
        for s in samples:
            if s.image_pos_key is None:
                rows.append(dict.fromkeys(COLUMNS))
                continue
            pc, pw = enc.score(s.image_pos_key, s.text_pos), enc.score(s.image_pos_key, s.text_neg)
            nc = nw = None
            if s.image_neg_key is not None:
                nc, nw = enc.score(s.image_neg_key, s.text_neg), enc.score(s.image_neg_key, s.text_pos)
            rows.append(alignment_from_scores(pc, pw, nc, nw))
        return rows

    def close(self) -> None:
        self._encoder = None
