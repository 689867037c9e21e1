"""Bad input: one line naming the file and line or key, exit code 2, no traceback, nothing written."""

import pytest


def check_error(res, *fragments):
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


GOOD = """name: t
suite: {kind: shapes, triples_per_predicate: 1}
seeds: [0]
runs:
  - {name: oracle, generator: shapes_oracle}
"""


@pytest.mark.parametrize("text,fragments", [
    ("name: t\nseeds: [0, 1\n", ["bench.yaml:3", "malformed YAML", "sequence started at line 2"]),
    (GOOD + "colour: red\n", ["bench.yaml:6", "unknown key 'colour'", "allowed:", "seeds"]),
    (GOOD.replace("seeds: [0]", "seeds: [0, one]"), ["bench.yaml:3", "seeds.1", "must be an integer"]),
    (GOOD.replace("seeds: [0]", "seeds: [0.5]"), ["bench.yaml:3", "seeds.0", "must be an integer"]),
    (GOOD.replace("shapes_oracle", "shapes_orcale"), ["runs.0.generator", "unknown generator 'shapes_orcale'", "shapes_oracle"]),
    (GOOD + "metrics: [pair_mse, clip_score_x]\n", ["metrics.1", "unknown metric 'clip_score_x'", "pair_mse"]),
    (GOOD.replace("triples_per_predicate: 1", "triples_per_predicate: 1, predicates: [above, flying]"),
     ["suite.predicates.1", "unknown predicate 'flying'"]),
    (GOOD.replace("kind: shapes", "kind: coco"), ["bench.yaml:2", "suite", "coco"]),
    (GOOD.replace("{name: oracle, generator: shapes_oracle}", "{name: oracle, generator: shapes_oracle, args: {steps: 4}}"),
     ["runs.0.args.steps", "unknown argument"]),
    (GOOD + "negatives: {kinds: [swap, shuffle]}\n", ["negatives.kinds.1", "'shuffle'", "swap"]),
    (GOOD + "negatives: {per_item: some}\n", ["bench.yaml:6", "negatives.per_item", "'some'", "'one' or 'all'"]),
    (GOOD + "negatives:\n  per_triple: some\n", ["bench.yaml:7", "negatives.per_triple", "'one' or 'all'"]),
    ("- just\n- a list\n", ["bench.yaml:1", "must be a mapping"]),
    (GOOD.replace("runs:\n  - {name: oracle, generator: shapes_oracle}\n", "runs: []\n"), ["runs", "at least 1"]),
])
def test_config_errors_are_one_line(cli, tmp_path, text, fragments):
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(text + f"output_dir: {tmp_path / 'out'}\n" if text.startswith("name") else text)
    res = cli("run", "--config", str(cfg))
    check_error(res, *fragments)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_output_dir_that_is_a_file(cli, tmp_path):
    (tmp_path / "out").write_text("not a dir")
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(GOOD + f"output_dir: {tmp_path / 'out'}\n")
    check_error(cli("run", "--config", str(cfg)), "output_dir", "is not a directory")
    assert (tmp_path / "out").read_text() == "not a dir"


def test_missing_config_file(cli, tmp_path):
    check_error(cli("run", "--config", str(tmp_path / "nope.yaml")), "nope.yaml", "no such benchmark file")


def test_unknown_generator_flag(cli, tmp_path):
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(GOOD + f"output_dir: {tmp_path / 'out'}\n")
    check_error(cli("run", "--config", str(cfg), "--generator", "nope"), "unknown generator 'nope'", "shapes_oracle")
    assert not (tmp_path / "out").exists()


def test_bad_seeds_flag_is_usage_error(cli):
    res = cli("run", "--seeds", "0,x")
    assert res.returncode == 2 and "seeds must be comma-separated integers" in res.stderr


@pytest.mark.parametrize("key", ["per_item", "per_triple"])
def test_negatives_per_item_reads_its_older_name_too(key):
    """per_triple was the key's name before items had one name: existing YAML keeps its meaning."""
    import yaml

    from relbench.spec.config import parse_benchmark

    bench = parse_benchmark(yaml.safe_load(GOOD + f"negatives: {{{key}: all}}\n"), "bench.yaml")
    assert bench.negatives.per_item == "all"
