"""The metric interface: per-sample scores plus declared aggregates.

A metric turns a batch of samples into per-sample columns (one dict per sample, None where the
value is undefined, e.g. a pairwise metric on a reference photo that has no g- twin). The
harness aggregates columns with the metric's declared ``Aggregate`` list, attaching a 95%
bootstrap interval that resamples triples (see ``relbench.stats.bootstrap``).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Sequence

from pydantic import BaseModel, ConfigDict

from relbench.errors import ContractError
from relbench.spec.data import Case, stable_hash
from relbench.plugin.context import Context


#: what a metric may declare in ``consumes``, and the Sample / Case attributes each one opens
INPUTS: dict[str, tuple[str, ...]] = {
    "images": ("image_pos", "image_neg", "image_pos_key", "image_neg_key"),
    "texts": ("texts", "text_pos", "text_neg"),
    "prompts": ("prompt_pos", "prompt_neg"),
    "graphs": ("case.pos", "case.neg"),
    "references": ("case.reference",),
    "questions": ("case.questions", "case.prompt"),
}
CONSUMES = frozenset(INPUTS)
_INPUT_OF = {attr: kind for kind, attrs in INPUTS.items() for attr in attrs}


class MetricArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


@dataclass(repr=False, eq=False)
class Sample:
    """Everything a metric may read about one case of one run. Images load lazily.

    Two kinds of text, never interchangeable:

    - ``texts`` = (text_pos, text_neg): the relation texts of g+ and g- ("a dog riding a horse",
      "a horse riding a dog"). A metric that judges an image against text uses these, in every
      prompt mode. Required: there is no fallback, so a caller cannot forget them.
    - ``prompt_pos`` / ``prompt_neg``: what the generator was given. In neutral mode both are
      the same object-only prompt ("a photo of a dog and a horse"), so judging against them
      scores every image pair exactly at chance; they are provenance, not ground truth.
    """

    case: Case
    run: str
    prompt_pos: str
    prompt_neg: str
    image_pos_key: str | None
    image_neg_key: str | None
    _load: Callable[[str], Any] = field(repr=False, default=None)  # key -> np.ndarray (H, W, 3) uint8
    texts: tuple[str, str] = field(kw_only=True)
    #: None: everything readable (a sample built by hand); else the view a metric gets (``view``)
    _reads: _Reads | None = field(default=None, kw_only=True, repr=False, compare=False)

    def __post_init__(self):
        t = object.__getattribute__(self, "texts")
        if not (isinstance(t, tuple) and len(t) == 2 and all(isinstance(x, str) and x for x in t)):
            raise TypeError(f"Sample.texts must be (text_pos, text_neg), two non-empty strings; got {t!r}")

    def __getattribute__(self, name: str):
        kind = _INPUT_OF.get(name)
        if kind is not None or name == "case":
            reads = object.__getattribute__(self, "_reads")
            if reads is not None:
                if name == "case":
                    return _CaseView(object.__getattribute__(self, "case"), reads)
                reads.read(kind, name)
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:  # names the case without reading (and being refused) any input
        case = object.__getattribute__(self, "case")
        return f"Sample(case={case.id!r}, run={object.__getattribute__(self, 'run')!r})"

    @property
    def text_pos(self) -> str:
        return self.texts[0]

    @property
    def text_neg(self) -> str:
        return self.texts[1]

    @property
    def image_pos(self):
        return None if self.image_pos_key is None else self._load(self.image_pos_key)

    @property
    def image_neg(self):
        return None if self.image_neg_key is None else self._load(self.image_neg_key)


class _Reads:
    """What one metric read through its sample views, and what it read without declaring."""

    def __init__(self, metric: str, declared: frozenset[str]):
        self.metric, self.declared = metric, declared
        self.read_kinds: set[str] = set()
        self.refusal: str | None = None  # the first undeclared read

    def read(self, kind: str, attr: str) -> None:
        if kind not in self.declared:
            self.refusal = self.refusal or (
                f"metric {self.metric!r} reads Sample.{attr} but does not declare {kind!r} in consumes "
                f"(declared: {', '.join(sorted(self.declared)) or 'nothing'})")
            raise ContractError(self.refusal)
        self.read_kinds.add(kind)

    def check(self) -> None:
        """After score(): refuse a metric that read an undeclared input, even if it caught the error."""
        if self.refusal:
            raise ContractError(self.refusal)


class _CaseView:
    """A Case whose graphs, reference and questions open only to a metric that declared them."""

    def __init__(self, case: Case, reads: _Reads):
        self._case, self._reads = case, reads

    def __getattr__(self, name: str):
        kind = _INPUT_OF.get(f"case.{name}")
        if kind is not None:
            self._reads.read(kind, f"case.{name}")
        return getattr(self._case, name)


def metric_view(metric, samples: Sequence[Sample]) -> tuple[list[Sample], _Reads]:
    """The samples as ``metric`` may read them (only the inputs its ``consumes`` declares), and
    the record of what it read through them. The record also keeps a refused read, so a metric
    that swallows the ContractError is still refused (``refusal``)."""
    reads = _Reads(metric.name, frozenset(metric.consumes))
    views = []
    for s in samples:
        v = copy.copy(s)
        object.__setattr__(v, "_reads", reads)
        views.append(v)
    return views, reads


@dataclass(frozen=True)
class Aggregate:
    """One reported number: ``statistic`` over the non-missing values of ``column``.

    statistic: "mean", "std" (population, ddof=0, as numpy's default) or a vectorised callable
    f(values (N,), weights (B, N)) -> (B,), where each row of weights holds the bootstrap
    multiplicities of the N rows (the point estimate is f(values, ones((1, N)))).
    """

    key: str
    column: str
    statistic: str | Callable = "mean"
    higher_is_better: bool | None = True
    chance: float | None = None
    description: str = ""
    #: per-sample column holding each case's chance level (when it depends on the case, e.g.
    #: on the predicate's geometry); its mean over the rows aggregated is the chance shown
    chance_column: str | None = None
    #: the judge's headline relation accuracy: reports open with it (one or a few per metric)
    headline: bool = False
    #: keys of the detection rates this number depends on: where one is 0 the number says
    #: "not detected", not "relation wrong"
    requires_detected: tuple[str, ...] = ()
    #: what one value is. "case": a row. "image_pos": one g+ image; the cases of an item and
    #: seed share it whatever their negative, so a number over images (as a peer benchmark
    #: computes it) must not count it once per negative. "prompt": one suite item, the
    #: ``per_prompt`` of its images' values (e.g. "any image correct"); None leaves it out.
    unit: Literal["case", "image_pos", "prompt"] = "case"
    per_prompt: Callable[[list[float]], float | None] | None = None

    def __post_init__(self):
        if (self.unit == "prompt") != (self.per_prompt is not None):
            raise ValueError(f"aggregate {self.key!r}: per_prompt goes with unit 'prompt' (and only with it)")


@dataclass(frozen=True)
class Confusion:
    """A judge's predicate confusion read from per-sample columns: for each img_pos, which of
    ``predicates`` (the candidate relations, vocabulary order) the judge sees between the tested
    triple's subject and object.

    column: the per-sample text column; encoding "set" is a ';'-joined list of the predicates
    that hold (several may), "distribution" a JSON object {predicate: probability} summing to 1.
    judged: a numeric column that is None exactly where the judge could not judge the image
    (an empty set and "not judged" would otherwise read the same)."""

    judge: str
    column: str
    judged: str
    predicates: tuple[str, ...]
    encoding: str = "set"

    def to_json(self) -> dict:
        return {"judge": self.judge, "column": self.column, "judged": self.judged,
                "predicates": list(self.predicates), "encoding": self.encoding}


class Metric(ABC):
    """Base class. Subclasses set ``name`` via @register_metric and implement ``columns``,
    ``score`` and ``aggregates``; an incomplete subclass cannot be instantiated."""

    name: ClassVar[str] = ""
    Args: ClassVar[type[MetricArgs]] = MetricArgs
    #: what the metric reads, a subset of CONSUMES (checked at plan time): "images" (the two
    #: images and their keys), "texts" (the relation texts, Sample.texts), "prompts" (what the
    #: generator was given: provenance only), "graphs" (case.pos / case.neg), "references"
    #: (case.reference), "questions" (case.questions and the suite's own prompt they were written
    #: for, case.prompt). The samples a metric gets open only these:
    #: reading anything else is a ContractError at the first read, so scores can never depend
    #: on an undeclared input
    consumes: ClassVar[frozenset[str]] = frozenset({"images"})
    #: explicit override: scores are keyed by the plugin's code already (``code_identity``)
    version: ClassVar[str] = "1"
    #: warnings about this configuration's numbers (e.g. an uncalibrated backbone), shown under
    #: the results table and stored in summary.json; a plugin sets them in __init__
    flags: Sequence[str] = ()

    def __init__(self, args: MetricArgs, ctx: Context):
        self.args = args
        self.ctx = ctx

    def code_identity(self) -> dict:
        """Digest of the plugin's source and the relbench modules it imports: editing a metric
        rescores."""
        from relbench.io.code_identity import code_identity

        return code_identity(type(self))

    def key(self) -> str:
        """This instance's name in summary.json and the manifest: the metric's name, unless a
        benchmark lists the metric twice (two spatial metrics, each naming its ``judge``)."""
        return self.name

    def weights_identity(self) -> Any:
        """Content identity of the weights the scores depend on (file digests); None if none."""
        return None

    def provenance(self) -> dict:
        """What the numbers were read from (e.g. a judge's files, dtype, device, protocol),
        stored in summary.json and the manifest and named on the terminal; {} if nothing."""
        return {}

    def fingerprint_parts(self) -> dict:
        """What the fingerprint hashes, kept in manifest.json so a changed one can say what changed."""
        return {"metric": self.name, "version": self.version, "code": self.code_identity(),
                "args": self.args.model_dump(mode="json"), "weights": self.weights_identity()}

    def fingerprint(self) -> str:
        """Score caches key on this: the code, the validated arguments and the weights."""
        return stable_hash(self.fingerprint_parts())

    @abstractmethod
    def columns(self) -> list[str]:
        """Per-sample columns this metric writes, in table order."""

    @abstractmethod
    def score(self, samples: list[Sample]) -> list[dict[str, float | None]]:
        """One row (a dict of exactly ``columns()``) per sample; a row depends only on its sample."""

    @abstractmethod
    def aggregates(self) -> list[Aggregate]:
        """The reported numbers, each over one declared column."""

    def confusions(self) -> list[Confusion]:
        """The predicate confusions this metric's columns hold (summary.json's ``confusion``)."""
        return []

    def run_flags(self, run: str, rows: list[dict]) -> list[str]:
        """Warnings read from one run's scores (``rows``: a dict of columns per case), stored and
        shown with ``flags``: what no configuration check can see, e.g. a detector blind to the
        run's images, whose zeros would otherwise read as the generator's failure."""
        return []

    def close(self) -> None:
        """Release models."""
