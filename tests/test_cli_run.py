"""End to end through the CLI on the shapes suite."""

import csv
import json
import subprocess
import sys

import pytest

from conftest import ROOT


def read(out):
    return (out / "samples.csv").read_text(), json.loads((out / "summary.json").read_text())


def test_run_writes_results_and_prints_table(cli, small_config, tmp_path):
    cfg = small_config()
    res = cli("run", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    text, summary = read(out)
    rows = list(csv.DictReader(text.splitlines()))
    # 9 predicates x 2 triples x 2 seeds = 36 cases; runs oracle, inverse + reference
    assert summary["n_cases"] == 36 and summary["n_triples"] == 18
    assert len(rows) == 36 * 3
    assert {r["run"] for r in rows} == {"oracle", "inverse", "reference"}
    entry = summary["runs"]["oracle"]["metrics"]["mse_mean"]
    assert set(entry) >= {"value", "ci_low", "ci_high", "n"} and entry["n"] == 36
    assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    vals = [float(r["pair_mse"]) for r in rows if r["run"] == "oracle"]
    assert abs(entry["value"] - sum(vals) / len(vals)) < 1e-6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seeds"] == [0, 1] and manifest["config"]["name"] == "small"
    assert manifest["timings"]["images_generated"] == 144 and "numpy" in manifest["versions"]
    assert "oracle" in res.stdout and "mse_mean" in res.stdout and "[" in res.stdout
    # every image file in the store is referenced, and each is a PNG
    keys = {r[k] for r in rows for k in ("image_pos", "image_neg")}
    assert len(list((out / "images").rglob("*.png"))) == len(keys)


def test_rerun_skips_everything_and_matches(cli, small_config, tmp_path):
    cfg = small_config()
    assert cli("run", "--config", str(cfg)).returncode == 0
    first = read(tmp_path / "out")
    report = tmp_path / "out" / "report.html"
    built = report.stat().st_mtime_ns
    res = cli("run", "--config", str(cfg))
    assert res.returncode == 0
    assert "0 images generated, 144 reused" in res.stdout
    assert read(tmp_path / "out") == first
    assert "results unchanged, kept" in res.stdout and report.stat().st_mtime_ns == built


def test_report_is_rebuilt_when_the_code_it_renders_with_changes(cli, small_config, tmp_path, monkeypatch, capsys):
    """The kept report.html is keyed by the report's code and the relbench modules it imports
    (relbench.results.write formats every number), not by the reports folder alone."""
    from types import SimpleNamespace

    from relbench.cli import run as relbench_cli

    from relbench.io import code_identity

    assert cli("run", "--config", str(small_config())).returncode == 0
    out, args = tmp_path / "out", SimpleNamespace(no_report=False)
    assert "relbench.results.write" in code_identity.import_closure("relbench.reports")[0]
    relbench_cli._write_run_report(args, out)
    assert "results unchanged, kept" in capsys.readouterr().out
    real = code_identity.module_identity("relbench.reports")
    monkeypatch.setattr(code_identity, "module_identity", lambda root: ("edited", real[1]))
    relbench_cli._write_run_report(args, out)
    printed = capsys.readouterr().out
    assert "kept" not in printed and printed.startswith(f"report: {out / 'report.html'} (")


@pytest.mark.slow
def test_same_config_same_numbers_in_another_directory(cli, small_config, tmp_path):
    cfg = small_config()
    assert cli("run", "--config", str(cfg)).returncode == 0
    assert cli("run", "--config", str(cfg), "--out", str(tmp_path / "again")).returncode == 0
    assert read(tmp_path / "out") == read(tmp_path / "again")


def test_generator_override_limit_and_neutral_mode(cli, small_config, tmp_path):
    cfg = small_config()
    res = cli("run", "--config", str(cfg), "--generator", "shapes_ignore_relation", "--prompt-mode", "neutral",
              "--limit", "3", "--seeds", "5", "--out", str(tmp_path / "o2"))
    assert res.returncode == 0, res.stderr
    _, summary = read(tmp_path / "o2")
    assert list(summary["runs"]) == ["shapes_ignore_relation-neutral", "reference"]
    assert summary["n_cases"] == 3 and summary["seeds"] == [5]
    rows = list(csv.DictReader((tmp_path / "o2" / "samples.csv").read_text().splitlines()))
    r = next(r for r in rows if r["run"] == "shapes_ignore_relation-neutral")
    assert " and " in r["prompt_pos"] and r["prompt_pos"] == r["prompt_neg"]  # neutral: no predicate


def test_default_benchmark_runs_from_any_directory(cli, tmp_path):
    # no ./benchmark.yaml here: the copy shipped in the package is used
    res = cli("run", "--limit", "2", "--seeds", "0", "--out", str(tmp_path / "d"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["benchmark"] == "shapes-default" and set(summary["runs"]) == {"oracle", "ignore_relation", "inverse", "reference"}
    assert (ROOT / "relbench" / "default_benchmark.yaml").read_text() == (ROOT / "benchmark.yaml").read_text()


def test_list_shows_plugins(cli):
    res = cli("list")
    assert res.returncode == 0
    for name in ("shapes_oracle", "shapes_ignore_relation", "shapes_inverse", "pair_mse"):
        line = next(l for l in res.stdout.splitlines() if l.strip().startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 10  # one-line description


def test_core_imports_no_model_library():
    code = ("import sys, relbench.cli, relbench.engine.plan, relbench.engine.execute, relbench.results.write, relbench.spec.config, relbench.plugin.registry;"
            "relbench.plugin.registry.GENERATORS.status(); relbench.plugin.registry.METRICS.status();"
            "heavy = [m for m in ('torch', 'diffusers', 'open_clip', 'transformers', 'lpips', 'pandas', 'numpy') if m in sys.modules];"
            "print(heavy)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_help_lists_commands(cli):
    res = cli("--help")
    assert res.returncode == 0 and "run" in res.stdout and "list" in res.stdout


@pytest.mark.slow
def test_uncalibrated_metric_is_flagged_in_summary(cli, tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        "name: f\nsuite: {kind: shapes, triples_per_predicate: 1, predicates: [above, in]}\nseeds: [0]\n"
        "metrics: [{name: lpips, args: {allow_random_backbone: true}}]\n"
        f"runs: [{{name: oracle, generator: shapes_oracle}}]\noutput_dir: {tmp_path / 'out'}\n"
    )
    res = cli("run", "--config", str(cfg), env={"TORCH_HOME": str(tmp_path / "empty-torch-home")})
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["metrics"]["lpips"]["flags"] and "uncalibrated" in summary["metrics"]["lpips"]["flags"][0]
    assert summary["metrics"]["lpips"]["aggregates"]["lpips_mean"].startswith("UNCALIBRATED")
    assert "WARNING lpips: uncalibrated" in res.stdout
    assert summary["runs"]["oracle"]["metrics"]["lpips_mean"]["value"] > 0  # g+ and g- images differ


def test_missing_lpips_backbone_is_one_line(cli, tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        "name: f\nsuite: {kind: shapes, triples_per_predicate: 1}\nseeds: [0]\nmetrics: [lpips]\n"
        f"runs: [{{name: oracle, generator: shapes_oracle}}]\noutput_dir: {tmp_path / 'out'}\n"
    )
    res = cli("run", "--config", str(cfg), env={"TORCH_HOME": str(tmp_path / "empty-torch-home")})
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "alexnet" in res.stderr and "allow_random_backbone" in res.stderr
    assert not (tmp_path / "out").exists()  # found before any image was generated


def test_example_configs_validate():
    from relbench.spec.config import load_benchmark

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        if path.name.startswith("train"):  # training configs: test_trainer.py, test_lab.py
            continue
        bench = load_benchmark(path)
        assert bench.runs, path


def test_empty_metric_list_is_refused_before_anything_is_written(cli, small_config, tmp_path):
    cfg = small_config()
    for flag in (",", ""):
        res = cli("run", "--config", str(cfg), "--metrics", flag)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.strip().splitlines() == [
            f"relbench: error: --metrics {flag!r}: no metric named (give one or more names, e.g. "
            "--metrics pair_mse,clip_alignment; `relbench list` shows them)"]
    cfg.write_text(cfg.read_text().replace("metrics: [pair_mse]", "metrics: []"))
    res = cli("run", "--config", str(cfg))
    assert res.returncode == 2 and "at least one metric is needed" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_rerun_of_a_finished_run_writes_no_file(cli, small_config, tmp_path):
    """A finished run rerun replaces nothing (os.replace would give a new inode), so it also
    succeeds in a directory it may only read; the manifest kept is the one of the run that made
    the results."""
    cfg = small_config()
    assert cli("run", "--config", str(cfg)).returncode == 0
    out = tmp_path / "out"

    def files():
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}

    before = files()
    res = cli("run", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert files() == before
    # a change of results does rewrite all three files
    res = cli("run", "--config", str(cfg), "--seeds", "0")
    assert res.returncode == 0, res.stderr
    after = files()
    assert all(after[out / n] != before[out / n] for n in ("samples.csv", "summary.json", "manifest.json"))
    assert json.loads((out / "manifest.json").read_text())["seeds"] == [0]
