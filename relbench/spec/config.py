"""benchmark.yaml: the validated description of a benchmark, with errors that name file and line.

A run is fully described by this file (plus command-line overrides, which are applied to the
parsed mapping before validation so they are validated the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from relbench.spec.data import NegativeKind
from relbench.errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ShapesSuite(_Strict):
    """The embedded procedural world: coloured shapes and geometric predicates."""

    kind: Literal["shapes"] = "shapes"
    triples_per_predicate: StrictInt = Field(10, ge=1, le=1000)
    predicates: list[str] | None = None  # default: every predicate the shapes world can draw
    seed: StrictInt = 0


class JsonlSuite(_Strict):
    """Triples (with reference photos and boxes) from a JSONL file, e.g. Visual Genome splits."""

    kind: Literal["jsonl"]
    path: str
    images_root: str | None = None


#: the suite kinds, spelled here once: the peers' prompt files, then the other kinds
PEER_SUITE_KINDS = ("geneval", "geneval2", "t2i_compbench", "visor")
FILE_SUITE_KINDS = (*PEER_SUITE_KINDS, "jsonl")  # read from one file (`relbench run --suite KIND=PATH`)
SUITE_KINDS = ("shapes", *FILE_SUITE_KINDS)


class PeerSuite(_Strict):
    """Another benchmark's prompt file read into triples (relbench.suites.peers documents the formats)."""

    kind: Literal[PEER_SUITE_KINDS]
    path: str = Field(min_length=1)


Suite = Annotated[Union[ShapesSuite, JsonlSuite, PeerSuite], Field(discriminator="kind")]


class NegativeSourceSpec(_Strict):
    """Where hard and adversarial negatives come from: one earlier run directory (docs/metrics.md)."""

    kinds: list[NegativeKind] = ["swap", "replace"]
    seed: StrictInt = 0
    #: a run directory whose summary.json holds confusion matrices (hard) and whose samples.csv
    #: holds the judge's per-sample scores (adversarial); none: hard uses declared contrasts
    confusion: str | None = Field(None, min_length=1)
    judge: Literal["spatial", "vlm_judge"] = "spatial"
    top_k: StrictInt = Field(1, ge=1)
    run: str | None = Field(None, min_length=1)  # the run of that directory; default its first non-reference run

    @field_validator("kinds")
    @classmethod
    def _non_empty(cls, v):
        if not v:
            raise ValueError(f"at least one negative kind is needed (allowed: {', '.join(get_args(NegativeKind))})")
        return v

    @model_validator(mode="after")
    def _source_used(self):
        if "adversarial" in self.kinds and self.confusion is None:
            raise ValueError("kind adversarial needs confusion: RUN_DIR (the run whose judge scores its candidates)")
        if self.confusion is not None and not {"hard", "adversarial"} & set(self.kinds):
            raise ValueError("confusion: is read only by kinds hard and adversarial; add one to kinds or drop it")
        return self


class NegativesSpec(NegativeSourceSpec):
    # one kind per suite item, or a case per kind; configs written before the rename say per_triple
    per_item: Literal["one", "all"] = Field("one", validation_alias=AliasChoices("per_item", "per_triple"))


class MetricSpec(_Strict):
    name: str
    args: dict[str, Any] = {}


class RunSpec(_Strict):
    name: str = Field(min_length=1)
    generator: str
    args: dict[str, Any] = {}
    prompt_mode: Literal["relation", "neutral"] = "relation"
    batch_size: StrictInt | None = Field(None, ge=1)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v):
        if "/" in v or v.startswith("."):
            raise ValueError("run names may not contain '/' or start with '.'")
        return v


class Benchmark(_Strict):
    name: str = "benchmark"
    suite: Suite = ShapesSuite()
    seeds: list[StrictInt] = [0, 1, 2]
    negatives: NegativesSpec = NegativesSpec()
    resolution: StrictInt | tuple[StrictInt, StrictInt] = 256
    batch_size: StrictInt = Field(16, ge=1)
    limit: StrictInt | None = Field(None, ge=1)  # first N suite items (all their seeds)
    sample: StrictInt | None = Field(None, ge=1)  # N items drawn per predicate share (relbench.suites.sample)
    sample_seed: StrictInt = 0
    metrics: list[MetricSpec] = [MetricSpec(name="pair_mse")]
    runs: list[RunSpec] = Field(min_length=1)
    reference_run: bool = True  # also score the suite's reference images: each metric's ceiling
    output_dir: str = "runs/default"
    chunk_size: StrictInt = Field(32, ge=1)  # cases per unit of work (resume and sharding granularity)
    bootstrap_resamples: StrictInt = Field(2000, ge=100)
    bootstrap_seed: StrictInt = 0
    predicates: list[dict[str, Any]] = []
    plugins: list[str] = []
    #: pinned baseline records (relbench/baselines) this benchmark's runs are comparable with
    #: (same suite, image size and judge models); reports and compare use them unasked
    comparable_with: list[str] = []

    @field_validator("comparable_with")
    @classmethod
    def _known_records(cls, v):
        from relbench import baselines

        unknown = [n for n in v if n not in baselines.known()]
        if unknown:
            raise ValueError(f"unknown baseline record {unknown[0]!r} (known: {', '.join(baselines.known())})")
        return v

    @field_validator("sample")
    @classmethod
    def _one_subset(cls, v, info):
        if v is not None and info.data.get("limit") is not None:
            raise ValueError("give limit (the first N items) or sample (N items across the predicates), not both")
        return v

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_shorthand(cls, v):
        if isinstance(v, list):
            return [{"name": m} if isinstance(m, str) else m for m in v]
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        if not v:
            raise ValueError("at least one seed is needed")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, v):
        w, h = (v, v) if isinstance(v, int) else v
        if not (16 <= w <= 4096 and 16 <= h <= 4096):
            raise ValueError("resolution must be between 16 and 4096 pixels")
        return v

    @model_validator(mode="after")
    def _unique_names(self):
        names = [r.name for r in self.runs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"run names must be unique; repeated: {', '.join(dup)}")
        if "reference" in names:
            raise ValueError("'reference' is reserved for the suite's reference images")
        mnames = [m.name for m in self.metrics]
        if not mnames:
            raise ValueError("at least one metric is needed (a run scores its images; e.g. metrics: [pair_mse])")
        # a metric listed twice must tell its instances apart (spatial: one judge name per detector)
        keyed = [(m.name, m.args.get("judge")) for m in self.metrics]
        if len(set(keyed)) != len(keyed):
            raise ValueError("each metric may be listed once (a second spatial metric needs its own args.judge)")
        return self

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        r = self.resolution
        return (r, r) if isinstance(r, int) else (r[0], r[1])


# ---------------------------------------------------------------------------------------------
# YAML with line numbers

def _load_yaml_with_lines(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML, returning the data and a map from key path to 1-based line number."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and cmark is not None and mark is not None and cmark.line != mark.line:
            problem += f" ({context} started at line {cmark.line + 1})"
        raise UserError(f"{source}{line}: malformed YAML: {problem}") from None
    lines: dict[tuple, int] = {}

    def walk(n, path):
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value
                lines[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
                lines[path + (key,)] = k.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, path + (i,))

    if node is not None:
        walk(node, ())
    data = yaml.safe_load(text)
    return data, lines


def locate(source: str, lines: dict[tuple, int] | None, path: tuple) -> str:
    """'file:line' for the deepest part of ``path`` present in the YAML, else 'file'."""
    for i in range(len(path), 0, -1):
        if lines and path[:i] in lines:
            return f"{source}:{lines[path[:i]]}"
    return source


def format_validation_error(err: dict, source: str, lines: dict[tuple, int], root: type[BaseModel],
                            tags: tuple[str, ...] = ()) -> str:
    """'file:line: key.path: what is wrong (allowed ...)' for one pydantic error.

    ``tags`` are the values of discriminated unions, which pydantic puts into error locations
    but which are no keys of the file.
    """
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in tags))
    where = locate(source, lines, loc)
    key = ".".join(str(p) for p in loc) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}" + _allowed_keys(root, loc[:-1])
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] in ("int_type", "int_parsing"):
        msg = f"must be an integer, got {err.get('input')!r}"
    elif err["type"] == "literal_error":
        msg = f"got {err.get('input')!r}; allowed: {err['ctx']['expected']}"
    elif err["type"] == "union_tag_invalid":
        msg = f"unknown kind {err['ctx'].get('tag')!r}; allowed: {err['ctx'].get('expected_tags')}"
    return f"{where}: {key}: {msg.removeprefix('Value error, ')}"


def _allowed_keys(root: type[BaseModel], parent: tuple) -> str:
    model: Any = root
    for p in parent:
        if isinstance(p, int):
            continue
        field = getattr(model, "model_fields", {}).get(p)
        if field is None:
            return ""
        ann = field.annotation
        args = getattr(ann, "__args__", ()) or ()
        candidates = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        for a in args:  # list[RunSpec], Optional[Spec] and friends
            candidates += [x for x in getattr(a, "__args__", ()) if isinstance(x, type) and issubclass(x, BaseModel)]
        if not candidates:
            return ""
        model = candidates[0]
    return f" (allowed: {', '.join(model.model_fields)})"


def validate_mapping(root: type[BaseModel], data: Any, source: str, lines: dict[tuple, int] | None,
                     what: str, hint: str, tags: tuple[str, ...] = ()):
    """Validate a parsed YAML mapping against ``root``; any problem is one UserError line."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{source}:1: the {what} must be a mapping of keys ({hint})")
    try:
        return root.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc.errors()[0], source, lines or {}, root, tags)) from None


def parse_benchmark(data: Any, source: str, lines: dict[tuple, int] | None = None) -> Benchmark:
    return validate_mapping(Benchmark, data, source, lines, "benchmark", "name, suite, seeds, runs, ...",
                            tags=("shapes", "jsonl"))


def read_yaml_mapping(path: str | Path, what: str, hint: str, missing: str = "") -> tuple[dict, dict[tuple, int]]:
    """A YAML file's mapping and the line of every key; a missing or non-mapping file is one line."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such {what}{missing}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: cannot read: {exc}") from None
    data, lines = _load_yaml_with_lines(text, str(p))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{p}:1: the {what} must be a mapping of keys ({hint})")
    return data, lines


def read_benchmark_file(path: str | Path) -> tuple[dict, dict[tuple, int]]:
    return read_yaml_mapping(path, "benchmark file", "name, suite, seeds, runs, ...", " (pass --config FILE)")


def load_benchmark(path: str | Path) -> Benchmark:
    data, lines = read_benchmark_file(path)
    return parse_benchmark(data, str(path), lines)


def default_benchmark_path() -> Path:
    """./benchmark.yaml if present, else the copy shipped inside the package."""
    local = Path("benchmark.yaml")
    if local.is_file():
        return local
    from importlib import resources

    return Path(str(resources.files("relbench").joinpath("default_benchmark.yaml")))


def plugin_search_path(source: str | Path) -> list[Path]:
    """Where a config's ``plugins:`` modules resolve: the config file's directory, then the
    working directory (the same under the ``relbench`` script and ``python -m relbench``)."""
    here = Path(source).resolve().parent if source else Path.cwd()
    return [here] if here == Path.cwd().resolve() else [here, Path.cwd()]
