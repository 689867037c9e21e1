"""vlm_judge: functional twins on hand-computed values; the metric against GenEval 2's
generate() loop on tiny random Qwen3-VL, Qwen2.5-VL and Idefics3 (SmolVLM) models built locally;
relation texts (not prompts) in both prompt modes; local-only loading."""

from pathlib import Path

import numpy as np
import pytest

from relbench.spec.data import Case, Triple
from relbench.errors import UserError
from relbench.plugin.context import Context
from relbench.plugin.metric import Sample
from relbench.metrics.vlm_judge import (
    ATOM_COLUMNS, GENEVAL2_COLUMNS, LETTERS, TWOWAY_COLUMNS, VQA_COLUMNS, YES, VlmJudge, atom_questions,
    atoms_columns, geneval2_columns, geneval2_spellings, soft_tifa, twoway_columns, twoway_flags, twoway_image,
    vqascore_columns,
)
from relbench.spec.predicates import load_vocabulary
from relbench.testing.models.vlm import FAMILIES, geneval2_probabilities, make_tiny_vlm

CTX = Context(vocab=load_vocabulary())


@pytest.fixture(autouse=True)
def _hash_cache(tmp_path_factory, monkeypatch):
    """Weight digests are remembered in RELBENCH_CACHE; tests keep theirs out of ~/.cache."""
    monkeypatch.setenv("RELBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "relbench-cache"))


# --- functional twins --------------------------------------------------------------------------


def test_vqascore_columns_by_hand():
    row = vqascore_columns(0.8, 0.6, 0.3, 0.5)
    assert row["vlm_pos_margin"] == pytest.approx(0.2) and row["vlm_neg_margin"] == pytest.approx(-0.2)
    assert (row["vlm_pos_acc"], row["vlm_neg_acc"], row["vlm_acc"], row["vlm_both_acc"]) == (1.0, 0.0, 0.5, 0.0)
    assert set(row) == set(VQA_COLUMNS)
    # a judge blind to the relation gives the same P(yes) to both texts: exactly chance
    row = vqascore_columns(0.4, 0.4, 0.4, 0.4)
    assert row["vlm_acc"] == 0.5 and row["vlm_both_acc"] == 0.0


def test_twoway_by_hand():
    # own text as A: P(A)=0.6, P(B)=0.2 -> right 0.75; own text as B: P(A)=0.5, P(B)=0.3 -> right 0.375
    v = twoway_image((0.6, 0.2), (0.5, 0.3))
    assert v["p"] == pytest.approx((0.75 + 0.375) / 2)
    assert v["bias"] == pytest.approx((0.75 + 0.625) / 2 - 0.5)  # P(A) normalised: 0.75 and 0.625
    assert v["mass"] == pytest.approx((0.8 + 0.8) / 2)
    assert (v["vote"], v["consistent"]) == (0.5, 0.0)  # right as A, wrong as B: the orders disagree
    # a judge that always answers "A" is exactly at chance once both orders are asked
    v = twoway_image((0.9, 0.1), (0.9, 0.1))
    assert v["p"] == pytest.approx(0.5) and v["bias"] == pytest.approx(0.4) and v["vote"] == 0.5
    right, wrong = twoway_image((0.7, 0.1), (0.2, 0.6)), twoway_image((0.1, 0.7), (0.6, 0.2))
    assert (right["vote"], right["consistent"], wrong["vote"], wrong["consistent"]) == (1.0, 1.0, 0.0, 1.0)
    row = twoway_columns(right, v)
    assert (row["vlm2_pos_acc"], row["vlm2_neg_acc"], row["vlm2_acc"], row["vlm2_consistency"]) == (1.0, 0.5, 0.75, 0.5)
    assert row["vlm2_bias"] == pytest.approx(((0.875 + 0.25) / 2 - 0.5 + 0.4) / 2)
    assert row["vlm2_mass"] == pytest.approx((0.8 + 1.0) / 2)
    assert twoway_columns(wrong, None)["vlm2_neg_p"] is None


def test_twoway_position_bias_is_not_a_vote():
    """A judge answering "A" in both orders, a hair more when A is right: the mean P(right) is
    0.5008, which used to vote 1 (and 0 a hair the other way), i.e. confident-looking votes made of
    position bias. Right in one order only is undecided."""
    v = twoway_image((0.0302, 0.0010), (0.0301, 0.0011))
    assert v["p"] > 0.5 and v["vote"] == 0.5 and v["consistent"] == 0.0
    assert v["mass"] == pytest.approx(0.0312)
    rows = [twoway_columns(v, twoway_image((0.0300, 0.0012), (0.0302, 0.0010))) for _ in range(16)]
    assert all(r["vlm2_acc"] == 0.5 and r["vlm2_pos_acc"] == 0.5 and r["vlm2_neg_acc"] == 0.5 for r in rows)
    (flag,) = twoway_flags("held_out", rows)
    assert flag.startswith("run held_out: two-way judge unreliable: position bias +0.46")
    assert "P(A) + P(B) = 0.031" in flag and "0% of images get the same answer in both orders" in flag
    # a judge that reads the image and answers with a letter: no flag
    good = [twoway_columns(twoway_image((0.7, 0.2), (0.3, 0.6)), twoway_image((0.2, 0.7), (0.6, 0.3)))] * 4
    assert twoway_flags("ok", good) == []
    # mass alone, bias alone
    unsure = [twoway_columns(twoway_image((0.2, 0.05), (0.05, 0.2)), None)]
    assert "P(A) + P(B) = 0.250" in twoway_flags("u", unsure)[0] and "bias" not in twoway_flags("u", unsure)[0]
    assert twoway_flags("none", [dict.fromkeys(TWOWAY_COLUMNS)]) == []


def test_soft_tifa_by_hand():
    am, gm = soft_tifa([0.9, 0.4, 0.1])
    assert am == pytest.approx(1.4 / 3) and gm == pytest.approx((0.9 * 0.4 * 0.1) ** (1 / 3))
    assert soft_tifa([0.5, 0.0]) == (0.25, 0.0)
    pos = {"presence": [0.9, 0.8], "subject": [0.9], "object": [0.8], "relation": [0.2]}
    neg = {"presence": [0.9, 0.3], "subject": [0.9], "object": [0.3], "relation": [0.7]}
    row = atoms_columns(pos, neg)
    assert row["vlm_atoms_pos_am"] == pytest.approx(1.9 / 3)
    assert row["vlm_atoms_pos_gm"] == pytest.approx((0.9 * 0.8 * 0.2) ** (1 / 3))
    assert row["vlm_atoms_present"] == 0.5  # img_neg misses its object (0.3 <= 0.5)
    assert row["vlm_atoms_rel_given_present"] == pytest.approx(0.2)  # only img_pos counts
    assert row["vlm_atoms_am"] == pytest.approx((1.9 / 3 + 1.9 / 3) / 2)
    assert atoms_columns(neg, None)["vlm_atoms_rel_given_present"] is None


def test_atom_questions_read_the_graph():
    vocab = load_vocabulary()
    g = (Triple("elephant", "riding", "horse"),)
    presence, roles, relation = atom_questions(g, lambda p: vocab.get(p).text)
    assert presence == ["Is there an elephant in the image?", "Is there a horse in the image?"]
    assert roles == ["subject", "object"]
    assert relation == ["Is the elephant riding the horse?"]


# --- the metric on tiny models -----------------------------------------------------------------


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request, tmp_path_factory):
    return request.param, make_tiny_vlm(request.param, tmp_path_factory.mktemp(request.param))


RNG = np.random.RandomState(3)
IMAGES = {f"img{i}": RNG.randint(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(4)}
LOADS = []


def load(key):
    LOADS.append(key)
    return IMAGES[key]


def sample(i, kpos, kneg, mode="relation"):
    pos, neg = Triple("dog", "riding", "horse"), Triple("horse", "riding", "dog")
    case = Case(id=f"c{i}", item_id="t0", pos=(pos,), neg=(neg,), negative_kind="swap", seed=i)
    texts = ("a dog riding a horse", "a horse riding a dog")
    prompts = texts if mode == "relation" else ("a photo of a dog and a horse",) * 2
    return Sample(case, "run", prompts[0], prompts[1], kpos, kneg, _load=load, texts=texts)


def reference_probs(path, key, question, answers):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    cache = reference_probs.__dict__.setdefault("models", {})
    if path not in cache:
        cache[path] = (AutoModelForImageTextToText.from_pretrained(path, local_files_only=True).eval(),
                       AutoProcessor.from_pretrained(path, local_files_only=True))
    model, proc = cache[path]
    return geneval2_probabilities(model, proc, Image.fromarray(IMAGES[key]), question, answers)


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_metric_matches_geneval2_loop(tiny, mode):
    family, path = tiny
    m = VlmJudge(VlmJudge.Args(model=path, batch_size=3), CTX)
    s = sample(0, "img0", "img1", mode)
    row = m.score([s])[0]
    assert set(row) == set(VQA_COLUMNS + TWOWAY_COLUMNS + ATOM_COLUMNS + GENEVAL2_COLUMNS)
    assert all(row[k] is None for k in GENEVAL2_COLUMNS)  # a case without GenEval 2's vqa_list
    yes = lambda key, q: reference_probs(path, key, q, [YES])[0]  # noqa: E731
    vqa = 'Does this image show "{}"? Answer the question with Yes or No.'
    # always the relation texts, also in neutral mode where the two prompts are identical
    ref = vqascore_columns(yes("img0", vqa.format(s.text_pos)), yes("img0", vqa.format(s.text_neg)),
                           yes("img1", vqa.format(s.text_neg)), yes("img1", vqa.format(s.text_pos)))
    for k in VQA_COLUMNS:
        assert row[k] == pytest.approx(ref[k], abs=1e-5), k
    assert row["vlm_pos_correct"] != row["vlm_pos_wrong"]
    two = "Which caption matches the image? A: {} B: {} Answer with A or B."
    ab = lambda key, a, b: reference_probs(path, key, two.format(a, b), LETTERS)  # noqa: E731
    ref = twoway_columns(twoway_image(ab("img0", s.text_pos, s.text_neg), ab("img0", s.text_neg, s.text_pos)),
                         twoway_image(ab("img1", s.text_neg, s.text_pos), ab("img1", s.text_pos, s.text_neg)))
    for k in TWOWAY_COLUMNS:
        assert row[k] == pytest.approx(ref[k], abs=1e-5), k
    atom = lambda key, q: yes(key, q + " Answer in one word.")  # noqa: E731
    pos = {"presence": [atom("img0", "Is there a dog in the image?"), atom("img0", "Is there a horse in the image?")],
           "relation": [atom("img0", "Is the dog riding the horse?")]}
    neg = {"presence": [atom("img1", "Is there a horse in the image?"), atom("img1", "Is there a dog in the image?")],
           "relation": [atom("img1", "Is the horse riding the dog?")]}
    for d in (pos, neg):
        d["subject"], d["object"] = d["presence"][:1], d["presence"][1:]
    ref = atoms_columns(pos, neg)
    for k in ATOM_COLUMNS:
        if ref[k] is None:
            assert row[k] is None, k
        else:
            assert row[k] == pytest.approx(ref[k], abs=1e-5), k


def test_each_image_processed_once_and_batched(tiny):
    family, path = tiny
    m = VlmJudge(VlmJudge.Args(model=path, modes=["vqascore", "twoway"], batch_size=8), CTX)
    LOADS.clear()
    samples = [sample(0, "img0", "img1"), sample(1, "img2", "img3"), sample(2, "img0", "img0"), sample(3, "img1", None)]
    rows = m.score(samples)
    assert sorted(LOADS) == sorted(IMAGES)  # four distinct images, each loaded once
    assert m.counts["images"] == 4
    assert m.counts["questions"] == 4 * 4  # 4 distinct images x (2 VQAScore + 2 two-way), deduplicated by image
    assert m.counts["forwards"] == 2  # 16 questions / batch 8
    assert rows[2]["vlm_acc"] == 0.5 and rows[2]["vlm2_acc"] in (0.0, 0.5, 1.0)
    assert rows[3]["vlm_neg_acc"] is None and rows[3]["vlm2_neg_p"] is None and rows[3]["vlm_acc"] is not None


def test_a_blind_judge_scores_exactly_chance(tmp_path):
    """A judge whose output ignores its input (lm_head zeroed: uniform next token) is at chance."""
    import torch
    from safetensors.torch import load_file, save_file

    path = make_tiny_vlm("qwen3_vl", tmp_path / "blind")
    weights = load_file(f"{path}/model.safetensors")
    head = [k for k in weights if "lm_head" in k or "embed_tokens" in k]
    assert head
    for k in head:
        weights[k] = torch.zeros_like(weights[k])
    save_file(weights, f"{path}/model.safetensors", metadata={"format": "pt"})
    m = VlmJudge(VlmJudge.Args(model=path), CTX)
    row = m.score([sample(0, "img0", "img1")])[0]
    vocab = m.vlm.model.config.get_text_config().vocab_size
    n_yes = len(m.vlm.first_token_ids(YES))
    assert n_yes == 4  # "Yes", "yes", " Yes", " yes" are four distinct first tokens here
    assert row["vlm_pos_correct"] == pytest.approx(n_yes / vocab, abs=1e-6)
    assert (row["vlm_acc"], row["vlm_both_acc"], row["vlm2_acc"]) == (0.5, 0.0, 0.5)
    assert row["vlm2_pos_p"] == pytest.approx(0.5) and row["vlm2_bias"] == pytest.approx(0.0, abs=1e-6)
    assert row["vlm_atoms_present"] == 0.0 and row["vlm_atoms_rel_given_present"] is None


def test_missing_model_is_one_line_at_construction(tmp_path):
    for model, words in [(str(tmp_path / "nope"), "not found"), ("Qwen/Qwen3-VL-8B-Instruct", "Hugging Face cache"),
                         (str(tmp_path), "no config.json")]:
        with pytest.raises(UserError) as err:
            VlmJudge(VlmJudge.Args(model=model), CTX)
        assert "\n" not in str(err.value) and words in str(err.value) and "nothing is downloaded" in str(err.value)


def test_fingerprint_is_the_judges_content(tmp_path):
    a = make_tiny_vlm("idefics3", tmp_path / "a", seed=0)
    b = make_tiny_vlm("idefics3", tmp_path / "b", seed=0)
    c = make_tiny_vlm("idefics3", tmp_path / "c", seed=1)
    fp = lambda p: VlmJudge(VlmJudge.Args(model=p), CTX).fingerprint()  # noqa: E731
    assert fp(a) == fp(a) != fp(c)
    assert VlmJudge(VlmJudge.Args(model=a), CTX).weights_identity() == VlmJudge(
        VlmJudge.Args(model=b), CTX).weights_identity()  # same content, another path
    assert fp(a) != VlmJudge(VlmJudge.Args(model=a, dtype="bfloat16"), CTX).fingerprint()
    # new weights at the same path are a new judge
    import shutil

    before = fp(a)
    shutil.copy(Path(c) / "model.safetensors", Path(a) / "model.safetensors")
    assert fp(a) != before
    assert fp(a) != VlmJudge(VlmJudge.Args(model=a, modes=["atoms"]), CTX).fingerprint()


def test_bad_args_are_rejected():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        VlmJudge.Args(model="x", modes=["vibes"])
    with pytest.raises(ValidationError):
        VlmJudge.Args(model="x", vqa_template="no placeholder")


SHAPES = """\
name: vlm-shapes
suite: {{kind: shapes, triples_per_predicate: 1, predicates: [left of, above]}}
seeds: [0]
metrics:
  - {{name: spatial, args: {{detector: shapes}}}}
  - {{name: vlm_judge, args: {{model: {model}, modes: [vqascore, twoway, atoms]}}}}
runs:
  - {{name: oracle, generator: shapes_oracle}}
  - {{name: oracle_neutral, generator: shapes_oracle, prompt_mode: neutral}}
output_dir: {out}
"""


@pytest.mark.slow
def test_run_reports_judge_agreement(cli, tmp_path):
    import json

    model = make_tiny_vlm("idefics3", tmp_path / "judge")
    (tmp_path / "b.yaml").write_text(SHAPES.format(model=model, out=tmp_path / "out"))
    res = cli("run", "--config", str(tmp_path / "b.yaml"))
    assert res.returncode == 0, res.stderr
    assert "agreement oracle vlm~spatial (geometric predicates" in res.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for run in ("oracle", "oracle_neutral", "reference"):
        info = summary["runs"][run]
        agree = info["agreement"]["vlm~spatial"]
        assert set(agree["by_predicate"]) == {"left of", "above"}
        assert agree["overall"]["n"] == 2 * info["n_cases"] if run != "reference" else agree["overall"]["n"] >= 1
        assert info["metrics"]["vlm_alignment_acc"]["n"] == info["n_cases"]
    # the relation texts are judged in neutral mode too, so the two modes' VQAScore rows match
    # (the oracle draws the same images: only the prompts given to the generator differ)
    import csv

    rows = list(csv.DictReader(open(tmp_path / "out" / "samples.csv")))
    rel = {r["case_id"]: r["vlm_pos_margin"] for r in rows if r["run"] == "oracle"}
    neu = {r["case_id"]: r["vlm_pos_margin"] for r in rows if r["run"] == "oracle_neutral"}
    assert rel == neu and all(v not in ("", "0", "0.0") for v in rel.values())
    # what the numbers were read from, and the work done, on the terminal and in the files
    prov = summary["metrics"]["vlm_judge"]["provenance"]
    assert prov["judge"] == model and prov["dtype"] == "float32" and prov["device"] == "cpu"
    assert prov["repetition_penalty"]["applied"] == 1.0 and prov["first_tokens"]["Yes"]["tokens"] == 1
    assert f"judge vlm_judge: {model}, float32 on cpu, template geneval2, repetition_penalty 1.0 (from_config)" in res.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["metrics"]["vlm_judge"]["provenance"]["weights_sha256"] == prov["weights_sha256"]
    work = manifest["timings"]["metric_work"]["vlm_judge"]
    assert work["images"] > 0 and work["forwards"] > 0 and work["questions"] >= work["images"]
    # a near-uniform tiny judge puts little mass on A / B: its two-way votes are flagged
    flags = summary["metrics"]["vlm_judge"]["flags"]
    assert any(f.startswith("run oracle: two-way judge unreliable") for f in flags)
    assert "WARNING vlm_judge: run oracle: two-way judge unreliable" in res.stdout
    assert "Loading weights" not in res.stderr  # the harness runs without a terminal: no bars
    res = cli("compare", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert "Judge agreement" in res.stdout and "agreement oracle_neutral vlm~spatial" in res.stdout
    html = (tmp_path / "out" / "report.html").read_text()
    assert '<section id="agreement">' in html and "oracle_neutral: vlm~spatial (geometric predicates)" in html


# --- protocol: penalty, template, dtype, provenance -----------------------------------------------


def _vqa_pos_correct(path, **args):
    m = VlmJudge(VlmJudge.Args(model=path, modes=["vqascore"], **args), CTX)
    return m, m.score([sample(0, "img0", "img1")])[0]["vlm_pos_correct"]


def test_repetition_penalty_reproduces_generate(tmp_path):
    """Qwen2.5-VL-Instruct's generation_config sets repetition_penalty 1.05, which GenEval 2's
    generate() applies: from_config reproduces those numbers, none the raw softmax, and each says so."""
    path = make_tiny_vlm("qwen2_5_vl", tmp_path / "q25")
    q = 'Does this image show "a dog riding a horse"? Answer the question with Yes or No.'
    theirs = reference_probs(path, "img0", q, [YES])[0]
    m, ours = _vqa_pos_correct(path)
    assert m.penalty == 1.05 and ours == pytest.approx(theirs, abs=1e-6)
    off, raw = _vqa_pos_correct(path, repetition_penalty="none")
    # the penalty matters (20x the tolerance above) on a judge whose answer depends on the input
    assert abs(raw - theirs) > 2e-5 and abs(raw - theirs) > 0.01 * theirs
    assert m.provenance()["repetition_penalty"] == {"mode": "from_config", "in_generation_config": 1.05, "applied": 1.05}
    assert any("repetition_penalty 1.05 from the judge's generation_config.json applied" in f for f in m.flags)
    assert any("not GenEval 2's numbers" in f for f in off.flags)
    # a judge without a penalty: nothing to flag
    plain = make_tiny_vlm("qwen3_vl", tmp_path / "q3")
    assert not any("repetition_penalty" in f for f in VlmJudge(VlmJudge.Args(model=plain), CTX).flags)


def test_apply_repetition_penalty_by_hand():
    import torch

    from relbench.models.vlm import apply_repetition_penalty

    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [2.0, -1.0, 0.5, 3.0]])
    ids = torch.tensor([[0, 0, 1], [3, 3, 0]])  # row 1: the leading 3 is padding
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    out = apply_repetition_penalty(logits, ids, mask, 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5, 3.0], [1.0, -1.0, 0.5, 1.5]]


def test_bad_generation_config_is_one_line(tmp_path):
    path = make_tiny_vlm("idefics3", tmp_path / "i")
    (Path(path) / "generation_config.json").write_text('{"repetition_penalty": "high"}')
    with pytest.raises(UserError) as err:
        VlmJudge(VlmJudge.Args(model=path), CTX)
    assert "generation_config.json: repetition_penalty 'high' is not a positive number" in str(err.value)


def test_t2v_metrics_template_reads_p_yes_only(tmp_path):
    path = make_tiny_vlm("qwen3_vl", tmp_path / "q")
    _, ours = _vqa_pos_correct(path, template="t2v_metrics")
    q = 'Does this figure show "a dog riding a horse"? Please answer Yes or No.'
    assert ours == pytest.approx(reference_probs(path, "img0", q, [("Yes",)])[0], abs=1e-6)
    _, geneval2 = _vqa_pos_correct(path)
    assert ours < geneval2


def test_first_token_table_flags_split_and_blank_spellings(tmp_path):
    path = make_tiny_vlm("qwen3_vl", tmp_path / "q")
    m = VlmJudge(VlmJudge.Args(model=path), CTX)
    table = m.provenance()["first_tokens"]
    assert table["Yes"]["tokens"] == 1 and table["one"] == {"first": "on", "id": table["one"]["id"], "tokens": 2}
    assert table[" One"]["first"] == " "  # this tiny tokenizer has no " One": a bare space is read
    flags = " ".join(m.flags)
    assert "'one' as 'on'" in flags and "first token is whitespace only" in flags and "' One'" in flags
    prov = m.provenance()
    assert prov["dtype"] == "float32" and prov["device"] == "cpu" and prov["template"] == "geneval2"
    assert prov["weights_sha256"]["model.safetensors"] == __import__("hashlib").sha256(
        (Path(path) / "model.safetensors").read_bytes()).hexdigest()


def test_bf16_batch_dependence_and_rerun(tmp_path):
    """bf16: the output projection and softmax run in float32, so P(yes) moves by little between
    batch sizes; and the same questions give the same bytes on a rerun."""
    import torch

    from relbench.models.vlm import VLM, Question

    path = make_tiny_vlm("qwen3_vl", tmp_path / "q")
    qs = ['Does this image show "a dog riding a horse"? Answer the question with Yes or No.',
          'Does this image show "a horse riding a dog"? Answer the question with Yes or No.',
          "Is there a dog in the image? Answer in one word.", "Is the dog riding the horse? Answer in one word."]
    loads = [lambda k=k: IMAGES[k] for k in ("img0", "img1")]
    questions = [Question(i, q) for i in range(2) for q in qs]

    def run(batch, dtype=torch.bfloat16):
        return VLM(Path(path), "cpu", dtype, batch).probabilities(loads, questions, [YES])

    # the projection is float32: P(yes) is the float32 softmax of the bf16 final hidden state times
    # the head in float32, not the bf16 logits' softmax (which differs by more than the tolerance)
    vlm = VLM(Path(path), "cpu", torch.bfloat16, 1)
    from PIL import Image

    enc = vlm.encode([Image.fromarray(IMAGES["img0"])], qs[2])
    with torch.inference_mode():
        out = vlm.model(**enc, output_hidden_states=True, use_cache=False)
    ids = vlm.first_token_ids(YES)
    head = vlm.model.get_output_embeddings().weight
    p32 = float(torch.softmax(out.hidden_states[-1][0, -1].float() @ head.detach().float().T, -1)[ids].sum())
    p16 = float(torch.softmax(out.logits[0, -1].float(), -1)[ids].sum())
    ours = vlm.probabilities(loads, [Question(0, qs[2])], [YES])[0][0]
    # bf16 logits move P by a share of P (their rounding is relative): here 3.9e-4 of it
    assert ours == pytest.approx(p32, abs=1e-7) and abs(p16 - p32) > 2e-4 * p32
    one, eight = run(1), run(8)
    spread = max(abs(a[0] - b[0]) for a, b in zip(one, eight))
    assert spread <= 1e-2
    assert run(8) == eight  # same batches, same bytes
    f32 = run(1, torch.float32)
    assert max(abs(a[0] - b[0]) for a, b in zip(f32, run(8, torch.float32))) <= 1e-6


# --- GenEval 2's own protocol ----------------------------------------------------------------------


class TheirEvaluation:
    """GenEval 2's evaluation.py (facebookresearch/GenEval2), its functions line by line, with a
    tiny judge in place of Qwen3-VL-8B-Instruct and a PIL image in place of the file path its
    processor opens. generate() runs with the model's own generation_config, as there."""

    def __init__(self, path):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.qwen_model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True).eval()
        self.qwen_processor = AutoProcessor.from_pretrained(path, local_files_only=True)

    @staticmethod
    def return_numeric_string(number):
        return {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                "eight": "8", "nine": "9", "ten": "10"}.get(number, "other")

    def send_message_with_image(self, prompt, image, answer_list=None):
        import torch

        messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}]
        inputs = self.qwen_processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                         return_dict=True, return_tensors="pt")
        with torch.no_grad():
            outputs = self.qwen_model.generate(**inputs, max_new_tokens=1, do_sample=False, output_scores=True,
                                               return_dict_in_generate=True)
        scores = outputs.scores[0]
        probs = torch.nn.functional.softmax(scores, dim=-1)
        lm_prob = 0
        for answer in answer_list:
            ans_token_id = self.qwen_processor.tokenizer.encode(answer)[0]
            lm_prob += probs[0, ans_token_id].item()
        return lm_prob

    def vqa_score(self, prompt, image):
        message_prompt = 'Does this image show "{}"? Answer the question with Yes or No.'.format(prompt)
        return self.send_message_with_image(message_prompt.format(prompt), image,
                                            answer_list=["Yes", "yes", " yes", " Yes"])

    def soft_tifa(self, vqa_list, image):
        score_list = []
        for question, answer in vqa_list:
            if question.startswith("How many"):
                answer_list = [answer, answer.capitalize(), " " + answer, " " + answer.capitalize(),
                               self.return_numeric_string(answer), " " + self.return_numeric_string(answer)]
            else:
                answer_list = ["Yes", "yes", " yes", " Yes"]
            score_list.append(self.send_message_with_image("{} Answer in one word.".format(question), image,
                                                           answer_list=answer_list))
        return sum(score_list) / len(vqa_list), score_list


GENEVAL2_ITEM = ("a green dog riding two horses", (
    ("Are there any dogs in the image?", "Yes"), ("Is the dog green?", "Yes"),
    ("How many horses are in the image?", "two"), ("How many dogs are in the image?", "one"),
    ("Is the dog riding the horse?", "Yes")))


def geneval2_sample(i, kpos, kneg, questions=GENEVAL2_ITEM[1], prompt=GENEVAL2_ITEM[0], mode="relation"):
    from dataclasses import replace

    from relbench.spec.data import PeerPrompt, PromptPart

    s = sample(i, kpos, kneg, mode)
    prompt = None if prompt is None else PeerPrompt((PromptPart(prompt),))
    return Sample(replace(s.case, id=f"g{i}", questions=questions, prompt=prompt), s.run, s.prompt_pos,
                  s.prompt_neg, kpos, kneg, _load=load, texts=s.texts)


def test_geneval2_spellings_as_evaluation_py():
    assert geneval2_spellings("How many horses are in the image?", "two") == (
        "two", "Two", " two", " Two", "2", " 2")
    assert geneval2_spellings("How many cups?", "ten")[4:] == ("10", " 10")
    # return_numeric_string knows the lower-case words one..ten only; the rest read "other"
    assert geneval2_spellings("How many cups?", "One")[4:] == ("other", " other")
    assert geneval2_spellings("How many cups?", "3") == ("3", "3", " 3", " 3", "other", " other")
    # not a "How many" question: the yes spellings, whatever the expected answer says
    assert geneval2_spellings("Is the cup red?", "No") == ("Yes", "yes", " yes", " Yes")
    assert geneval2_spellings("how many cups?", "two") == ("Yes", "yes", " yes", " Yes")  # case-sensitive prefix


def test_geneval2_columns_by_hand():
    row = geneval2_columns(0.7, [0.9, 0.4, 0.1])
    assert row["geneval2_vqascore"] == 0.7
    assert row["geneval2_soft_tifa_am"] == pytest.approx(1.4 / 3)
    assert row["geneval2_soft_tifa_gm"] == pytest.approx(0.036 ** (1 / 3))
    from scipy.stats import gmean

    assert row["geneval2_soft_tifa_gm"] == pytest.approx(gmean([0.9, 0.4, 0.1]), rel=1e-12)
    assert geneval2_columns(None, [0.5, 0.0]) == {"geneval2_vqascore": None, "geneval2_soft_tifa_am": 0.25,
                                                  "geneval2_soft_tifa_gm": 0.0}


@pytest.mark.parametrize("mode", ["relation", "neutral"])
def test_geneval2_matches_their_evaluation_py(tiny, mode):
    """Every per-question probability, the VQAScore on their prompt and Soft-TIFA AM / GM equal
    GenEval 2's evaluation.py run with generate() (Qwen2.5-VL's judge: its generation_config's
    repetition_penalty 1.05 applies there, and here with from_config), to 1e-5 in float32."""
    from PIL import Image
    from scipy.stats import gmean

    family, path = tiny
    prompt, vqa_list = GENEVAL2_ITEM
    theirs = TheirEvaluation(path)
    # one case with the whole vqa_list, one per question (its AM is that question's P), on two images
    samples = [geneval2_sample(0, "img0", "img1", mode=mode), geneval2_sample(1, "img2", None, mode=mode)]
    samples += [geneval2_sample(10 + j, "img0", "img1", questions=(q,), mode=mode) for j, q in enumerate(vqa_list)]
    m = VlmJudge(VlmJudge.Args(model=path, modes=["geneval2"], batch_size=4), CTX)
    assert m.penalty == (1.05 if family == "qwen2_5_vl" else 1.0)
    rows = m.score(samples)
    ref = {}
    for key in ("img0", "img2"):
        image = Image.fromarray(IMAGES[key])
        score, score_list = theirs.soft_tifa([list(q) for q in vqa_list], image)
        ref[key] = (theirs.vqa_score(prompt, image), score, gmean(score_list), score_list)
    for row, key in zip(rows[:2], ("img0", "img2")):
        vqa, am, gm, _ = ref[key]
        assert row["geneval2_vqascore"] == pytest.approx(vqa, abs=1e-5)
        assert row["geneval2_soft_tifa_am"] == pytest.approx(am, abs=1e-5)
        assert row["geneval2_soft_tifa_gm"] == pytest.approx(gm, abs=1e-5)
    for row, p in zip(rows[2:], ref["img0"][3]):
        assert row["geneval2_soft_tifa_am"] == pytest.approx(p, abs=1e-5)
        assert row["geneval2_soft_tifa_gm"] == pytest.approx(p, abs=1e-5)
    # the answers depend on the image and the question, far beyond the tolerance
    assert max(abs(a - b) for a, b in zip(ref["img0"][3], ref["img2"][3])) > 1e-2
    assert max(ref["img0"][3]) - min(ref["img0"][3]) > 1e-2 and max(ref["img0"][3]) > 0.1
    counts = [p for (q, _), p in zip(vqa_list, ref["img0"][3]) if q.startswith("How many")]
    assert min(counts) > 1e-3  # the count spellings carry real probability on these judges
    if family == "qwen2_5_vl":  # without the penalty the numbers are not theirs
        raw = VlmJudge(VlmJudge.Args(model=path, modes=["geneval2"], repetition_penalty="none"), CTX).score(
            samples[:1])[0]
        assert abs(raw["geneval2_soft_tifa_am"] - ref["img0"][1]) > 1e-3


def test_geneval2_columns_need_its_questions(tmp_path):
    """Only GenEval 2 items (a vqa_list) get GenEval 2 columns; VQAScore needs the suite's own prompt;
    relbench's atoms are the graph's and do not change with the suite's questions."""
    path = make_tiny_vlm("qwen3_vl", tmp_path / "q")
    m = VlmJudge(VlmJudge.Args(model=path, modes=["atoms", "geneval2"]), CTX)
    with_q, plain, no_prompt = m.score([geneval2_sample(0, "img0", "img1"), sample(1, "img0", "img1"),
                                        geneval2_sample(2, "img0", "img1", prompt=None)])
    assert all(plain[k] is None for k in GENEVAL2_COLUMNS)
    assert with_q["geneval2_vqascore"] is not None and no_prompt["geneval2_vqascore"] is None
    assert no_prompt["geneval2_soft_tifa_am"] == pytest.approx(with_q["geneval2_soft_tifa_am"], abs=1e-7)
    for k in ATOM_COLUMNS:
        assert (plain[k] is None and with_q[k] is None) or plain[k] == pytest.approx(with_q[k], abs=1e-7), k
    # the atom and VQAScore wording are GenEval 2's even where relbench's are overridden
    odd = VlmJudge(VlmJudge.Args(model=path, modes=["geneval2"], atom_template="Q: {question}",
                                 vqa_template="Shows {prompt}?"), CTX).score([geneval2_sample(0, "img0", "img1")])[0]
    for k in GENEVAL2_COLUMNS:
        assert odd[k] == pytest.approx(with_q[k], abs=1e-7), k
    keys = {a.key for a in m.aggregates()}
    assert set(GENEVAL2_COLUMNS) <= keys and not any("suite" in k for k in keys)


def test_geneval2_reader_keeps_prompt_and_questions_on_cases():
    from relbench.spec.negatives import build_cases
    from relbench.suites.peers import load_peer_suite

    fix = Path(__file__).parent / "fixtures" / "peers" / "geneval2_data.jsonl"
    items, _ = load_peer_suite("geneval2", str(fix), CTX.vocab)
    cases, _ = build_cases(items, [0, 1], ["swap"], CTX.vocab)
    first = [c for c in cases if c.item_id == items[0].id]
    assert [c.prompt.text for c in first] == ["a glass trumpet behind a candle"] * 2  # the file's first line
    assert len(first[0].questions) == 6 and first[0].questions[5] == ("Is the trumpet behind the candle?", "Yes")


def test_generate_settings_not_reproduced_are_flagged(tmp_path):
    """A generation_config setting generate() would also apply to the first token (here
    suppress_tokens, which sets a token's score to -inf) is named: the numbers are not generate()'s."""
    import json

    path = make_tiny_vlm("qwen3_vl", tmp_path / "q")
    cfg_file = Path(path) / "generation_config.json"
    cfg = json.loads(cfg_file.read_text())
    m = VlmJudge(VlmJudge.Args(model=path), CTX)
    assert not any("not generate()'s numbers" in f for f in m.flags)
    cfg.update(suppress_tokens=m.vlm.first_token_ids(YES), min_length=0, guidance_scale=1.0)
    cfg_file.write_text(json.dumps(cfg))
    m = VlmJudge(VlmJudge.Args(model=path), CTX)
    (flag,) = [f for f in m.flags if "not generate()'s numbers" in f]
    assert "sets suppress_tokens, which generate()" in flag  # min_length 0, guidance 1: off, not named
    assert m.provenance()["unreproduced_generation_config"] == ["suppress_tokens"]
    # and it does move the number: their generate() zeroes every yes, the forward pass does not
    s = geneval2_sample(0, "img0", "img1", questions=(("Is the dog riding the horse?", "Yes"),))
    ours = m.score([s])[0]["geneval2_soft_tifa_am"]
    from PIL import Image

    theirs = TheirEvaluation(path).soft_tifa([["Is the dog riding the horse?", "Yes"]], Image.fromarray(IMAGES["img0"]))[0]
    assert theirs == 0.0 and ours > 1e-2


def test_tokenizer_that_prepends_bos_is_flagged(tmp_path):
    from transformers import AutoTokenizer
    from tokenizers.processors import TemplateProcessing

    path = make_tiny_vlm("idefics3", tmp_path / "i")
    assert VlmJudge(VlmJudge.Args(model=path), CTX).provenance()["encode_prepends"] is None
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    bos = "<|im_start|>"
    tok._tokenizer.post_processor = TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.convert_tokens_to_ids(bos))])
    tok.save_pretrained(path)
    m = VlmJudge(VlmJudge.Args(model=path), CTX)
    assert m.provenance()["encode_prepends"] == bos
    assert any(f"tokenizer puts '{bos}' before every text" in f for f in m.flags)
    assert not any("before every text" in f for f in VlmJudge(VlmJudge.Args(model=path, modes=["atoms"]), CTX).flags)


def test_suite_prompt_is_a_declared_input_and_keys_the_score_cache():
    """case.prompt opens only to a metric that declares "questions", and a new suite prompt is a new
    score-cache chunk (geneval2_vqascore is asked on it)."""
    from dataclasses import replace

    from relbench.engine.execute import RunImages, _chunk_key
    from relbench.errors import ContractError
    from relbench.spec.data import PeerPrompt, PromptPart
    from relbench.plugin.metric import metric_view

    class TextsOnly:
        name, consumes = "texts_only", frozenset({"texts"})

    s = geneval2_sample(0, "img0", "img1")
    (view,), _ = metric_view(TextsOnly, [s])
    with pytest.raises(ContractError, match="does not declare 'questions'"):
        view.case.prompt
    case = s.case
    run = RunImages("r", {case.id: ("p", "n")}, {case.id: ("img0", "img1")}, {})
    assert _chunk_key("fp", run, [case]) != _chunk_key("fp", run, [replace(case, prompt=PeerPrompt((PromptPart("a green dog riding a horse"),)))])
