"""Peers' prompt sets as suites: GenEval, GenEval 2, T2I-CompBench and VISOR fixtures in their
published formats; every line that is not one triple is counted and listed by reason."""

import json
from pathlib import Path

import pytest

from relbench.spec.config import parse_benchmark
from relbench.spec.data import Node, Triple
from relbench.spec.negatives import build_cases
from relbench.spec.prompts import peer_prompt
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


def test_geneval2_graphs_with_counts_attributes_and_several_triples():
    items, rejected = load_peer_suite("geneval2", str(FIX / "geneval2_data.jsonl"), VOCAB)
    by_id = {i.id: i for i in items}
    assert list(by_id) == ["geneval21", "geneval22", "geneval23", "geneval24", "geneval25"]
    trumpet = by_id["geneval21"]  # the attribute is on the node, not in the object's name
    assert trumpet.graph == (Triple("trumpet", "behind", "candle"),)
    assert trumpet.nodes == (Node("trumpet", 1, ("glass",)), Node("candle", 1, ()))
    cows = by_id["geneval22"]  # "the bench" is the bench named before: one node in two triples
    assert cows.graph == (Triple("cow", "left of", "bench"), Triple("bird", "above", "bench"))
    assert cows.nodes == (Node("cow", 2, ()), Node("bench", 1, ()), Node("bird", 1, ()))
    koala = by_id["geneval25"]  # a node in no triple is kept; "under" is the vocabulary's below
    assert koala.graph == (Triple("cat", "below", "mushroom"),)
    assert koala.nodes == (Node("koala", 1, ("red",)), Node("cat", 6, ("blue",)), Node("mushroom", 6, ("red",)))
    assert trumpet.questions[-1] == ("Is the trumpet behind the candle?", "Yes") and len(trumpet.questions) == 6
    assert [i.prompt.text for i in items] == [json.loads(x)["prompt"] for x in
                                              (FIX / "geneval2_data.jsonl").read_text().splitlines()[:5]]
    assert reasons(rejected) == [
        (6, "no position or verb question in its vqa_list (the prompt states no relation)"),
        (7, "a verb question is not 'Is the X <relation> the Y?' with a relation relbench maps (to the left of, "
            "to the right of, in front of, behind, under, on top of, chasing, playing with, jumping over, above, "
            "below)"),  # "sleeping on"
        (8, "the prompt's relations are not its vqa_list's position / verb questions"),
        (9, "a class is named twice (a graph names each object by its class)"),
        (10, "not a JSON object with a 'prompt' string"),
    ]


def test_geneval2_verb_prompts_parse_as_verbs():
    """The two prompts the one-triple reader read wrongly: "over" inside "jumping over" was taken
    for above, and "chasing a penguin" became part of the subject."""
    items, _ = load_peer_suite("geneval2", str(FIX / "geneval2_data.jsonl"), VOCAB)
    by_id = {i.id: i for i in items}
    assert by_id["geneval23"].graph == (Triple("lion", "jumping over", "dog"),)
    assert by_id["geneval23"].nodes[1] == Node("dog", 1, ("sparkling",))
    assert by_id["geneval24"].graph == (Triple("sheep", "chasing", "penguin"), Triple("penguin", "on", "umbrella"))
    assert by_id["geneval24"].nodes[0] == Node("sheep", 1, ("pink",))


def test_peer_prompt_of_each_negative_is_written_the_peers_way():
    items, _ = load_peer_suite("geneval2", str(FIX / "geneval2_data.jsonl"), VOCAB)
    by_id = {i.id: i for i in items}

    def neg(item, index, triple):
        g = item.graph[:index] + (triple,) + item.graph[index + 1:]
        return peer_prompt(item.prompt, item.graph, g, index, VOCAB)

    trumpet, cows, sheep = by_id["geneval21"], by_id["geneval22"], by_id["geneval24"]
    # swap of a lone triple: the object phrases trade places, attributes travel with them
    assert neg(trumpet, 0, Triple("candle", "behind", "trumpet")) == "a candle behind a glass trumpet"
    # replace: the new predicate in GenEval 2's spelling
    assert neg(trumpet, 0, Triple("trumpet", "in front of", "candle")) == "a glass trumpet in front of a candle"
    assert neg(sheep, 1, Triple("penguin", "below", "umbrella")) == "a pink sheep chasing a penguin under a umbrella"
    # swap in a chain (the bench is in both triples): the inverse's phrase states "bench left of... "
    assert neg(cows, 0, Triple("bench", "left of", "cow")) == "two cows to the right of a bench and a bird above the bench"
    # a swap of a verb with no inverse inside a chain cannot be written the peer's way
    assert neg(sheep, 0, Triple("penguin", "chasing", "sheep")) is None
    assert peer_prompt(trumpet.prompt, trumpet.graph, trumpet.graph, 0, VOCAB) == "a glass trumpet behind a candle"
    geneval, _ = load_peer_suite("geneval", str(FIX / "evaluation_metadata.jsonl"), VOCAB)
    dog = geneval[0]  # GenEval spells "left of" without "to the"
    assert peer_prompt(dog.prompt, dog.graph, (Triple("dog", "left of", "bench"),), 0, VOCAB) == \
        "a photo of a dog left of a bench"
    assert peer_prompt(dog.prompt, dog.graph, (Triple("bench", "right of", "dog"),), 0, VOCAB) == \
        "a photo of a bench right of a dog"


def test_multi_triple_negative_changes_one_triple_and_records_it():
    items, _ = load_peer_suite("geneval2", str(FIX / "geneval2_data.jsonl"), VOCAB)
    cases, _ = build_cases(items, [0], ["swap", "replace"], VOCAB, "all")
    multi = [c for c in cases if len(c.pos) == 2]
    assert len(multi) == 4  # two two-triple items x (swap, replace)
    for c in multi:
        changed = [i for i, (p, n) in enumerate(zip(c.pos, c.neg)) if p != n]
        assert changed == [c.changed_triple]
        assert c.nodes and c.prompt is not None


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


SPY = """\
name: spy
suite: {{kind: shapes, triples_per_predicate: 1}}
seeds: [0]
resolution: [32, 32]
negatives: {{kinds: [swap, replace], per_item: all}}
plugins: [tests.plugins.prompt_spy]
metrics: [text_spy]
runs:
  - {{name: spy, generator: prompt_spy}}
  - {{name: spy-neutral, generator: prompt_spy, prompt_mode: neutral}}
output_dir: {out}
"""


def test_suite_flag_gives_generators_the_peer_prompt_and_judges_the_graph_text(tmp_path):
    import csv

    from relbench.cli import main
    from tests.plugins import prompt_spy

    (tmp_path / "b.yaml").write_text(SPY.format(out=tmp_path / "out"))
    prompt_spy.PROMPTS.clear()
    prompt_spy.TEXTS.clear()
    assert main(["run", "--config", str(tmp_path / "b.yaml"), "--suite", f"geneval2={FIX / 'geneval2_data.jsonl'}",
                 "--no-progress", "--no-report"]) == 0
    assert "a glass trumpet behind a candle" in prompt_spy.PROMPTS  # verbatim, not "a photo of a trumpet..."
    assert "a candle behind a glass trumpet" in prompt_spy.PROMPTS  # its swap, written the same way
    assert not any(p.startswith("a photo of") and "behind" in p for p in prompt_spy.PROMPTS)
    # the judge reads relbench's relation texts built from the graphs
    assert ("a photo of a trumpet behind a candle", "a photo of a candle behind a trumpet") in prompt_spy.TEXTS
    with open(tmp_path / "out" / "samples.csv", newline="") as f:
        rows = {(r["run"], r["case_id"]): r for r in csv.DictReader(f)}
    swap = rows[("spy", "geneval21-swap-s0")]
    assert (swap["prompt_pos"], swap["prompt_neg"], swap["prompt_source"]) == (
        "a glass trumpet behind a candle", "a candle behind a glass trumpet", "peer")
    assert rows[("spy-neutral", "geneval21-swap-s0")]["prompt_source"] == "relbench"
    # the chained verb swap has no peer spelling: both its prompts are relbench's, never mixed
    chained = rows[("spy", "geneval24-swap-s0")]
    assert chained["prompt_source"] == "relbench" and chained["prompt_pos"].startswith("a photo of")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["suite"]["kind"] == "geneval2"
    assert manifest["suite_prompts"]["relbench_cases"] == ["geneval24-swap-s0"]
    assert manifest["suite_lines_rejected"]["n"] == 5


def test_suite_flag_refuses_a_bad_value(cli, tmp_path):
    res = cli("run", "--suite", "geneval3=x.jsonl", "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "unknown suite kind 'geneval3' (allowed: geneval, geneval2" in res.stderr
    res = cli("run", "--suite", "geneval2", "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "expected KIND=PATH" in res.stderr and "Traceback" not in res.stderr
    res = cli("run", "--suite", f"geneval2={tmp_path / 'none.jsonl'}", "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "not found" in res.stderr
    assert not (tmp_path / "out").exists()
