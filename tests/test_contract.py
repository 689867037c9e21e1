"""The runner refuses a plugin that breaks its contract: one line naming the plugin and the
column (or image index), exit 2, no summary written; relbench.testing finds the same."""

from __future__ import annotations

import pytest

from relbench.contract import ContractError
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
    # the bad rows were not cached either: a fixed plugin scores afresh
    assert not list((tmp_path / "out" / "cache").rglob("*.json"))


def test_correct_plugin_runs(cli, tmp_path):
    res = _run(cli, tmp_path, metric="{name: brightness, args: {agg_column: brightness, row_key: brightness}}")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "summary.json").is_file()


def test_undeclared_image_read_refused(cli, tmp_path):
    res = _run(cli, tmp_path, metric="sneaky_pixels")
    _one_line_refusal(res, tmp_path, "metric 'sneaky_pixels'", "consumes")


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


def test_registration_requires_the_base_class():
    from relbench.errors import UserError
    from relbench.registry import register_metric

    with pytest.raises(UserError, match="must subclass relbench.metric.Metric"):
        @register_metric("not_a_metric")
        class NotAMetric:
            pass


def test_lazily_imported_missing_library_is_one_line(cli, tmp_path):
    res = _run(cli, tmp_path, generator="lazy_missing")
    _one_line_refusal(res, tmp_path, "generator 'lazy_missing' needs the package 'fancylib_not_installed'")
