"""`limit: N` reads a suite no further than its N-th item; `sample: N` draws N items seeded and
in proportion to each predicate's share, so a small run still covers every relation."""

import json
from collections import Counter

import pytest

from relbench.cli import main
from relbench.spec.config import ShapesSuite, parse_benchmark
from relbench.spec.data import SuiteItem, Triple
from relbench.errors import UserError
from relbench.spec.predicates import load_vocabulary
from relbench.engine.plan import plan
from relbench.suites.loader import load_suite
from relbench.suites.peers import load_peer_suite
from relbench.suites.sample import sample_items

VOCAB = load_vocabulary()


def jsonl(path, n_good, tail):
    lines = [json.dumps({"id": i, "subject": "dog", "predicate": "left of", "object": "cat"}) for i in range(n_good)]
    path.write_text("\n".join(lines + [tail]) + "\n")
    return path


def bench(**keys):
    return parse_benchmark({"runs": [{"name": "oracle", "generator": "shapes_oracle"}], "metrics": ["pair_mse"],
                            "seeds": [0], **keys}, "bench.yaml")


def test_limit_stops_reading_the_jsonl_suite_at_its_last_item(tmp_path):
    # a broken line after the N-th item is never read: the old runner read the whole file first
    path = jsonl(tmp_path / "s.jsonl", 3, "{not json")
    spec = bench(suite={"kind": "jsonl", "path": str(path)}).suite
    with pytest.raises(UserError, match=r"s.jsonl:4: not valid JSON"):
        load_suite(spec, VOCAB)
    items, _ = load_suite(spec, VOCAB, limit=3)
    assert [i.id for i in items] == ["0", "1", "2"]
    p = plan(bench(suite={"kind": "jsonl", "path": str(path)}, limit=2, output_dir=str(tmp_path / "o")))
    assert sorted({c.item_id for c in p.cases}) == ["0", "1"]


def test_limit_stops_reading_a_peer_file_and_lists_only_the_lines_read(tmp_path):
    path = tmp_path / "spatial_val.txt"
    path.write_text("a dog on the left of a cat\na dog and a cat\na bird on the top of a tree\nno relation here\n")
    items, rejected = load_peer_suite("t2i_compbench", str(path), VOCAB)
    assert len(items) == 2 and [r.line for r in rejected] == [2, 4]
    items, rejected = load_peer_suite("t2i_compbench", str(path), VOCAB, limit=1)
    assert [i.graph for i in items] == [(Triple("dog", "left of", "cat"),)] and rejected == []
    items, rejected = load_peer_suite("t2i_compbench", str(path), VOCAB, limit=2)
    assert [i.id for i in items] == ["t2i_compbench1", "t2i_compbench3"] and [r.line for r in rejected] == [2]


def test_peer_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "spatial_val.txt"
    path.write_bytes(b"a dog on the left of a cat\n\xff\xfe\n")
    with pytest.raises(UserError, match="not UTF-8 text"):
        load_peer_suite("t2i_compbench", str(path), VOCAB)


def test_limit_on_the_default_suite_covers_two_predicates_and_sample_covers_all():
    # the shapes suite lists its 9 predicates 10 items each, in order: limit 20 is above and below
    items, _ = load_suite(ShapesSuite(triples_per_predicate=10), VOCAB)
    preds = Counter(i.graph[0].predicate for i in items)
    assert len(preds) == 9 and set(preds.values()) == {10}
    first = load_suite(ShapesSuite(triples_per_predicate=10), VOCAB, limit=20)[0]
    assert Counter(i.graph[0].predicate for i in first) == {"above": 10, "below": 10}
    picked = sample_items(items, 18, seed=0)
    assert Counter(i.graph[0].predicate for i in picked) == {p: 2 for p in preds}  # 18 x 10/90 each
    assert [i.id for i in picked] == [i.id for i in items if i in picked]  # in the suite's order
    assert sample_items(items, 18, seed=0) == picked  # seeded
    assert sample_items(items, 18, seed=1) != picked
    assert sample_items(items, 500, seed=0) == items


def test_sample_is_proportional_with_leftovers_to_the_largest_remainders():
    def item(i, pred):
        return SuiteItem(f"{pred}{i}", (Triple("a", pred, "b"),))

    items = [item(i, "above") for i in range(6)] + [item(i, "below") for i in range(3)] + [item(0, "near")]
    for seed in range(20):
        got = Counter(i.graph[0].predicate for i in sample_items(items, 5, seed))
        # quotas 3, 1.5 and 0.5: above gets 3, below 1 plus maybe the leftover, near at most it
        assert got["above"] == 3 and sum(got.values()) == 5 and got["below"] in (1, 2) and got["near"] in (0, 1)
    # quotas 2.4, 1.2, 0.4 with n=4: floors 2, 1, 0 and the leftover to above (remainder 0.4 = near's,
    # so the seed decides between them); never to below (0.2)
    for seed in range(20):
        got = Counter(i.graph[0].predicate for i in sample_items(items, 4, seed))
        assert got["below"] == 1 and got["above"] + got["near"] == 3 and got["above"] >= 2


def test_plan_with_sample_covers_every_predicate(tmp_path):
    p = plan(bench(sample=9, output_dir=str(tmp_path / "o")))
    assert len({c.item_id for c in p.cases}) == 9
    assert len({c.pos[0].predicate for c in p.cases}) == 9


def test_limit_and_sample_together_is_one_line_naming_sample(tmp_path, capsys):
    cfg = tmp_path / "bench.yaml"
    cfg.write_text("runs: [{name: oracle, generator: shapes_oracle}]\nlimit: 5\nsample: 9\n")
    assert main(["run", "--config", str(cfg), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"relbench: error: {cfg}:3: sample: give limit") and err.count("\n") == 1
    # a flag replaces the config's subset of the other kind
    out = tmp_path / "o"
    assert main(["run", "--config", str(cfg), "--sample", "9", "--seeds", "0", "--out", str(out), "--no-report"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_triples"] == 9
    with pytest.raises(SystemExit) as exc:
        main(["run", "--config", str(cfg), "--sample", "9", "--limit", "3"])
    assert exc.value.code == 2
