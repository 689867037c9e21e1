"""Peers' prompt sets as suites: GenEval, GenEval 2, T2I-CompBench and VISOR fixtures in their
published formats; every line that is not one triple is counted and listed by reason."""

import json
from pathlib import Path

import pytest

from relbench.spec.config import parse_benchmark
from relbench.spec.data import Triple
from relbench.errors import UserError
from relbench.spec.predicates import load_vocabulary
from relbench.suites.peers import load_peer_suite, rejected_summary

FIX = Path(__file__).parent / "fixtures" / "peers"
VOCAB = load_vocabulary()


def triples(items):
    return [(i.id, i.graph) for i in items]


def reasons(rejected):
    return [(r.line, r.reason) for r in rejected]


def test_geneval_position_lines_only():
    items, rejected = load_peer_suite("geneval", str(FIX / "evaluation_metadata.jsonl"), VOCAB)
    assert triples(items) == [("geneval2", (Triple("dog", "right of", "bench"),)),
                              ("geneval3", (Triple("giraffe", "above", "cow"),))]
    assert reasons(rejected) == [
        (1, "tag 'single_object' holds no relation (only 'position' does)"),
        (4, "tag 'counting' holds no relation (only 'position' does)"),
        (5, "subject and object are the same class"),
        (6, "not a JSON object"),
        (7, "relation 'diagonal to' is not in the vocabulary"),
    ]


def test_geneval2_prompts_parsed_or_rejected():
    items, rejected = load_peer_suite("geneval2", str(FIX / "geneval2_data.jsonl"), VOCAB)
    assert triples(items) == [("geneval21", (Triple("dog", "left of", "red car"),)),
                              ("geneval23", (Triple("horse", "below", "bridge"),))]
    assert items[0].questions == (("Is there a dog?", "Yes"), ("Is there a car?", "Yes"), ("Is the car red?", "Yes"),
                                  ("Is the dog to the left of the car?", "Yes"))
    assert reasons(rejected) == [
        (2, "not '<a X> <relation> <a Y>' with a known relation"),  # "three cats sleeping on ..."
        (4, "more than one relation in the prompt"),
        (5, "not a JSON object with a 'prompt' string"),
    ]


def test_t2i_compbench_phrases():
    items, rejected = load_peer_suite("t2i_compbench", str(FIX / "spatial_val.txt"), VOCAB)
    assert [i.graph[0] for i in items] == [
        Triple("giraffe", "near", "lamp"), Triple("girl", "above", "frog"), Triple("mouse", "near", "key"),
        Triple("bee", "right of", "refrigerator"), Triple("apple", "below", "chair"),
    ]
    assert [i.id for i in items] == ["t2i_compbench1", "t2i_compbench2", "t2i_compbench3", "t2i_compbench4",
                                     "t2i_compbench6"]
    assert reasons(rejected) == [(7, "not '<a X> <relation> <a Y>' with a known relation")]


def test_visor_sr2d():
    items, rejected = load_peer_suite("visor", str(FIX / "text_spatial_rel_phrases.json"), VOCAB)
    assert triples(items) == [("visor0", (Triple("oven", "left of", "dining table"),)),
                              ("visor1", (Triple("dining table", "below", "oven"),)),
                              ("visor4", (Triple("backpack", "right of", "tie"),))]
    assert [r.reason for r in rejected] == [
        "rel_type 'and' is not a relation", "num_objects 1 (a relation needs 2 objects)",
        "entry lacks rel_type / num_objects / obj_1_attributes / obj_2_attributes"]
    summary = rejected_summary(rejected)
    assert summary["n"] == 3 and sum(summary["by_reason"].values()) == 3
    assert summary["lines"][0] == {"line": 3, "reason": "rel_type 'and' is not a relation", "text": "an oven and a dining table"}


def test_config_kinds_and_missing_file(tmp_path):
    ok = parse_benchmark({"name": "x", "suite": {"kind": "visor", "path": "f.json"},
                          "runs": [{"name": "a", "generator": "shapes_oracle"}]}, "b.yaml")
    assert ok.suite.kind == "visor" and ok.suite.path == "f.json"
    cfg = tmp_path / "b.yaml"
    cfg.write_text("name: x\nsuite: {kind: geneval3, path: f}\nruns: [{name: a, generator: shapes_oracle}]\n")
    from relbench.spec.config import load_benchmark

    with pytest.raises(UserError) as err:
        load_benchmark(cfg)
    assert "geneval" in str(err.value) and "t2i_compbench" in str(err.value)
    with pytest.raises(UserError, match="not found"):
        load_peer_suite("visor", str(tmp_path / "nope.json"), VOCAB)


CONFIG = """\
name: peers
suite: {{kind: geneval, path: {suite}}}
seeds: [0]
resolution: [64, 64]
negatives: {{kinds: [swap]}}
plugins: [tests.plugins.flat_colour]
metrics: [{{name: vlm_judge, args: {{model: {model}, modes: [vqascore, twoway]}}}}]
runs:
  - {{name: flat, generator: flat_colour}}
output_dir: {out}
"""


@pytest.mark.slow
def test_run_lists_rejected_lines_and_vlm_judges_them(cli, tmp_path, monkeypatch):
    from relbench.testing.models.vlm import make_tiny_vlm

    monkeypatch.setenv("RELBENCH_CACHE_DIR", str(tmp_path / "cache"))  # weight digests, kept out of ~/.cache

    model = make_tiny_vlm("qwen2_5_vl", tmp_path / "judge")
    (tmp_path / "b.yaml").write_text(CONFIG.format(suite=FIX / "evaluation_metadata.jsonl", model=model,
                                                   out=tmp_path / "out"))
    res = cli("run", "--config", str(tmp_path / "b.yaml"))
    assert res.returncode == 0, res.stderr
    assert "5 line(s) of the geneval file are not one triple" in res.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["suite_lines_rejected"]["n"] == 5
    assert manifest["suite_lines_rejected"]["by_reason"]["tag 'counting' holds no relation (only 'position' does)"] == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    m = summary["runs"]["flat"]["metrics"]
    assert m["vlm_alignment_acc"]["n"] == 2 and m["vlm2_acc"]["n"] == 2


def test_missing_judge_fails_before_any_image(cli, tmp_path):
    (tmp_path / "b.yaml").write_text(CONFIG.format(suite=FIX / "evaluation_metadata.jsonl",
                                                   model=tmp_path / "no-model", out=tmp_path / "out"))
    res = cli("run", "--config", str(tmp_path / "b.yaml"))
    assert res.returncode == 2
    assert "vlm_judge: model directory" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out" / "images").exists()
