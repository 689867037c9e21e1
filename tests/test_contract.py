"""The runner refuses a plugin that breaks its contract: one line naming the plugin and the
column (or image index), exit 2, no summary written; relbench.testing finds the same."""

from __future__ import annotations

import pytest

from relbench.plugin.contract import ContractError
from relbench.testing import check_generator, check_metric, tiny_context

CONFIG = """\
name: contract
suite: {{kind: shapes, triples_per_predicate: 1, predicates: [left of]}}
seeds: [0]
resolution: {res}
plugins: [tests.plugins.contract_breakers]
metrics: [{metric}]
runs:
  - {{name: run, generator: {generator}}}
output_dir: {out}
"""


def _run(cli, tmp_path, metric="pair_mse", generator="shapes_oracle", res=32):
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(CONFIG.format(metric=metric, generator=generator, res=res, out=tmp_path / "out"))
    return cli("run", "--config", str(cfg), "--no-report")


def _one_line_refusal(res, tmp_path, *needles):
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_misnamed_columns_refused_before_generating(cli, tmp_path):
    """columns() says brightness, score() writes brigthness, the aggregate reads brightnes."""
    res = _run(cli, tmp_path, metric="brightness")
    _one_line_refusal(res, tmp_path, "metric 'brightness'", "'brightnes'")
    assert not (tmp_path / "out" / "images").exists()  # refused at planning, nothing drawn


def test_misnamed_row_key_refused(cli, tmp_path):
    res = _run(cli, tmp_path, metric="{name: brightness, args: {agg_column: brightness}}")
    _one_line_refusal(res, tmp_path, "metric 'brightness'", "'brigthness'")
    # nothing stays behind: no cached rows (a fixed plugin scores afresh) and none of the
    # images this command drew before the metric broke its contract
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [".relbench-run"] + sorted(
        p.name for p in out.iterdir() if p.name.startswith(".relbench-lock"))


def test_contract_violation_keeps_what_earlier_commands_wrote(cli, tmp_path):
    """Resuming a good run's directory with a bad metric takes back only its own files."""
    out = tmp_path / "out"

    def stored():
        return sorted(p.relative_to(out) for d in ("images", "cache") for p in (out / d).rglob("*") if p.is_file())

    assert _run(cli, tmp_path).returncode == 0
    before = stored()
    # another resolution: this command draws new images, then its metric breaks the contract
    res = _run(cli, tmp_path, metric="{name: brightness, args: {agg_column: brightness}}", res=48)
    assert res.returncode == 2, res.stderr
    assert stored() == before and any(p.suffix == ".png" for p in before)
    assert (out / "summary.json").is_file()  # the good run's results stay


def test_correct_plugin_runs(cli, tmp_path):
    res = _run(cli, tmp_path, metric="{name: brightness, args: {agg_column: brightness, row_key: brightness}}")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "summary.json").is_file()


def test_undeclared_image_read_refused(cli, tmp_path):
    res = _run(cli, tmp_path, metric="sneaky_pixels")
    _one_line_refusal(res, tmp_path, "metric 'sneaky_pixels'", "consumes")


@pytest.mark.parametrize("metric,needle", [
    ("sneaky_texts", "reads Sample.text_pos but does not declare 'texts' in consumes (declared: images)"),
    # catching the refusal does not help: the run checks what was read after score()
    ("swallowed_graphs", "reads Sample.case.pos but does not declare 'graphs' in consumes (declared: images)"),
])
def test_every_undeclared_input_refused(cli, tmp_path, metric, needle):
    res = _run(cli, tmp_path, metric=metric)
    _one_line_refusal(res, tmp_path, f"metric {metric!r}", needle)
    assert not list((tmp_path / "out").rglob("*.png"))


def test_manifest_records_declared_and_read_inputs(cli, tmp_path):
    import json

    assert _run(cli, tmp_path, metric="{name: brightness, args: {agg_column: brightness, row_key: brightness}}"
                ).returncode == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["metrics"]["brightness"]["consumes"] == ["images"]  # the default declaration
    assert manifest["timings"]["metric_inputs_read"] == {"brightness": ["images"]}


def test_sample_view_opens_only_declared_inputs():
    from relbench.plugin.metric import metric_view
    from relbench.testing import tiny_samples

    class TextsOnly:
        name, consumes = "texts_only", frozenset({"texts"})

    sample = tiny_samples()[0]
    (view,), reads = metric_view(TextsOnly, [sample])
    assert view.texts == sample.texts and view.case.id == sample.case.id and view.run == sample.run
    for read in (lambda: view.image_pos, lambda: view.image_pos_key, lambda: view.prompt_pos,
                 lambda: view.case.pos, lambda: view.case.questions, lambda: view.case.reference):
        with pytest.raises(ContractError, match="does not declare"):
            read()
    assert reads.read_kinds == {"texts"} and sample.case.id in repr(view)  # repr reads no input
    assert sample.case.pos and sample.image_pos is not None  # a hand-built sample stays open


def test_check_metric_refuses_a_declared_input_never_read():
    from tests.plugins.contract_breakers import Overdeclared, SneakyTexts

    with pytest.raises(ContractError, match="declares 'prompts' in consumes but never reads it .read: images."):
        check_metric(Overdeclared(Overdeclared.Args(), tiny_context()))
    with pytest.raises(ContractError, match="'texts'"):
        check_metric(SneakyTexts(SneakyTexts.Args(), tiny_context()))


def test_incomplete_plugins_cannot_be_built():
    """The bases are abstract: a plugin missing score() or generate() cannot be built (a
    TypeError naming the method) and is refused when registered (one line), not with a
    NotImplementedError mid-run."""
    from relbench.plugin.generator import Generator
    from relbench.plugin.metric import Metric

    class NoScore(Metric):
        def columns(self):
            return ["v"]

        def aggregates(self):
            return []

    class NoGenerate(Generator):
        pass

    with pytest.raises(TypeError, match="score"):
        NoScore(NoScore.Args(), tiny_context())
    with pytest.raises(TypeError, match="generate"):
        NoGenerate(NoGenerate.Args(), tiny_context())

    from relbench.errors import UserError
    from relbench.plugin.registry import register_generator, register_metric

    with pytest.raises(UserError, match=r"metric 'no_score': .*NoScore .* does not implement score \(required by"):
        register_metric("no_score")(NoScore)
    with pytest.raises(UserError, match="generator 'no_generate': .* does not implement generate"):
        register_generator("no_generate")(NoGenerate)


def test_wrong_image_size_refused(cli, tmp_path):
    res = _run(cli, tmp_path, generator="transposed_shapes", res="[32, 48]")
    _one_line_refusal(res, tmp_path, "generator 'transposed_shapes'", "image 0", "(48, 32, 3)")


def test_testing_checks_find_the_same():
    from tests.plugins.contract_breakers import Brightness, TransposedShapes

    ctx = tiny_context()
    with pytest.raises(ContractError, match="'brightnes'"):
        check_metric(Brightness(Brightness.Args(), ctx))
    with pytest.raises(ContractError, match="'brigthness'"):
        check_metric(Brightness(Brightness.Args(agg_column="brightness"), ctx))
    rows = check_metric(Brightness(Brightness.Args(agg_column="brightness", row_key="brightness"), ctx))
    assert all(isinstance(r["brightness"], float) for r in rows)
    with pytest.raises(ContractError, match="image 4"):  # the first non-square request
        check_generator(TransposedShapes(TransposedShapes.Args(), ctx))


def test_batch_dependence_beyond_the_declared_tolerance_is_found():
    """An image that changes with its batch (here by 2 levels per request) breaks the contract
    even for a generator that declares float-rounding tolerance (1 level)."""
    from tests.plugins.contract_breakers import BatchDimmedShapes

    with pytest.raises(ContractError, match="image 7 differs when drawn alone .by up to 14 levels, allowed 1"):
        check_generator(BatchDimmedShapes(BatchDimmedShapes.Args(), tiny_context()))


def test_registration_requires_the_base_class():
    from relbench.errors import UserError
    from relbench.plugin.registry import register_metric

    with pytest.raises(UserError, match="must subclass relbench.plugin.metric.Metric"):
        @register_metric("not_a_metric")
        class NotAMetric:
            pass


def test_lazily_imported_missing_library_is_one_line(cli, tmp_path):
    res = _run(cli, tmp_path, generator="lazy_missing")
    _one_line_refusal(res, tmp_path, "generator 'lazy_missing' needs the package 'fancylib_not_installed'")
