"""vlm_judge: a vision-language model judges whether each image shows its own relation.

All questions use the relation texts of g+ and g- (Sample.text_pos / text_neg), never the
prompts the generator saw: in neutral mode those are identical and could not tell g+ from g-.
Every probability is the softmax of the judge's first answer token at the last prompt position,
summed over the first-token ids of the answer's spellings (relbench.models.vlm). Modes:

vqascore (VQAScore, Lin et al. 2024; GenEval 2's wording)
    Q(t) = 'Does this image show "{t}"? Answer the question with Yes or No.'
    P_yes(img, t) = sum of softmax over the first-token ids of "Yes", "yes", " Yes", " yes",
    NOT normalised by P(yes) + P(no) (as GenEval 2 and t2v_metrics). With p+ / p- = text_pos /
    text_neg, the columns mirror clip_alignment with the prefix vlm_:
        vlm_pos_correct = P_yes(img_pos, p+)   vlm_pos_wrong = P_yes(img_pos, p-)
        vlm_neg_correct = P_yes(img_neg, p-)   vlm_neg_wrong = P_yes(img_neg, p+)
        vlm_pos_margin, vlm_neg_margin, vlm_pos_acc, vlm_neg_acc (1 / 0.5 tie / 0),
        vlm_acc (mean of the two comparisons, chance 0.5), vlm_both_acc.
twoway (forced choice between the two relation texts)
    Q(a, b) = 'Which caption matches the image? A: {a} B: {b} Answer with A or B.', asked
    with (a, b) = (p+, p-) and (p-, p+). Per order P(right) = P(letter of the image's own text)
    / (P(A) + P(B)) (normalised: a forced choice):
        vlm2_pos_p, vlm2_neg_p    P(right) of img_pos / img_neg averaged over the orders (chance 0.5)
        vlm2_pos_acc, vlm2_neg_acc  1 if P(right) > 0.5 in both orders, 0 if < 0.5 in both,
                                 0.5 when the orders disagree (a letter preference, not a verdict)
        vlm2_acc                 mean of the available images' acc (chance 0.5)
        vlm2_bias                mean over the case's images and orders of P(A)/(P(A)+P(B)) - 0.5:
                                 the judge's measured position bias (0 = none, > 0 prefers "A")
        vlm2_consistency         share of the case's images whose two orders agree
        vlm2_mass                mean P(A) + P(B) (unnormalised): how much the judge answers with a
                                 letter at all
    A run whose mean |vlm2_bias| > 0.25 or vlm2_mass < 0.5 is flagged (twoway_flags).
atoms (relbench's own atoms, in GenEval 2's atom wording): for each image against its own graph
    (img_pos: g+, img_neg: g-), with Q'(q) = '{q} Answer in one word.' and soft score = P_yes:
        presence of every object ("Is there a dog in the image?") and each relation
        ("Is the dog riding the horse?"), built from the graph: no count atoms, attributes stay
        inside the relation atom, so 3 atoms for one triple where GenEval 2 asks 5-11;
        vlm_atoms_{pos,neg}_subject / _object / _relation   soft scores (means over the
            graph's subjects / objects / triples)
        vlm_atoms_{pos,neg}_am   arithmetic mean of all the image's atom scores, _gm  geometric
            mean (Soft-TIFA's AM / GM, over relbench's atoms)
        vlm_atoms_am, vlm_atoms_gm   mean over the case's images
        vlm_atoms_present        share of the case's images where every object scores > 0.5
        vlm_atoms_rel_given_present   mean relation score over those images only (None when no
            image has all objects present): VISOR's separation of detection from relation.
geneval2 (GenEval 2's evaluation.py, on img_pos, for items that bring its vqa_list):
        geneval2_vqascore       P(answer in GENEVAL2_YES) for 'Does this image show "{prompt}"?
                                Answer the question with Yes or No.' with the suite's own prompt
        geneval2_soft_tifa_am   mean over the vqa_list of P(expected answer) for '{question}
                                Answer in one word.' (geneval2_spellings)
        geneval2_soft_tifa_gm   their geometric mean (scipy's gmean: 0 if any is 0)
    Their printed "Score" is 100 x the mean of a column over prompts.
choice (multiple choice over candidate predicates, for the confusion matrix): img_pos only, with
    its tested triple (s, o) and the K candidates (choice_predicates, default the vocabulary's
    geometric ones) as options "s p o", Q = 'Which caption matches the image? A: .. B: ..
    Answer with a letter.', asked in all K cyclic rotations of a per-image shuffled order, so
    every predicate sits at every letter once. Per order the letters' first-token probabilities
    are normalised over the K letters; each predicate's share is averaged over the orders:
        vlm_choice_seen   JSON {predicate: share} (sums to 1): the judge's confusion row entry
        vlm_choice_p      share of the asked predicate (None when it is not a candidate;
                          chance 1/K: a judge that always answers one letter gets exactly 1/K)
        vlm_choice_mass   mean P(all K letters) (unnormalised): how much it answers with a letter

Over 400 lines: the three question modes share one model, one image batch and one cache
of answers; the model loading and scoring passes are in relbench.models.vlm.
"""

from __future__ import annotations

import json
import math
import random
import string
from typing import Literal, Optional, Sequence

from pydantic import Field, field_validator

from relbench.spec.data import Graph, graph_objects, stable_hash
from relbench.plugin.metric import Aggregate, Confusion, Metric, MetricArgs, Sample
from relbench.spec.prompts import with_article
from relbench.plugin.registry import register_metric

MODES = ("vqascore", "twoway", "atoms", "geneval2", "choice")
YES = ("Yes", "yes", " Yes", " yes")
LETTERS = (("A", " A"), ("B", " B"))
VQA_TEMPLATE = 'Does this image show "{prompt}"? Answer the question with Yes or No.'
#: VQAScore as each published code base asks it: (question, spellings of "yes" whose first-token
#: probabilities are summed). GenEval 2's evaluation.py: its question, the four spellings.
#: t2v_metrics' Qwen-VL scorers: their question, and P("Yes") alone.
TEMPLATES = {
    "geneval2": (VQA_TEMPLATE, YES),
    "t2v_metrics": ('Does this figure show "{prompt}"? Please answer Yes or No.', ("Yes",)),
}
TWOWAY_TEMPLATE = "Which caption matches the image? A: {a} B: {b} Answer with A or B."
ATOM_TEMPLATE = "{question} Answer in one word."
#: GenEval 2's evaluation.py verbatim: vqa_score's question, soft_tifa's question, and the yes
#: spellings in the order it adds them up
GENEVAL2_VQA = 'Does this image show "{}"? Answer the question with Yes or No.'
GENEVAL2_ATOM = "{} Answer in one word."
GENEVAL2_YES = ("Yes", "yes", " yes", " Yes")
GENEVAL2_COLUMNS = ("geneval2_vqascore", "geneval2_soft_tifa_am", "geneval2_soft_tifa_gm")
CHOICE_TEMPLATE = "Which caption matches the image? {options} Answer with a letter."
CHOICE_COLUMNS = ("vlm_choice_seen", "vlm_choice_p", "vlm_choice_mass")

VQA_COLUMNS = tuple(c.replace("clip_", "vlm_") for c in (
    "clip_pos_correct", "clip_pos_wrong", "clip_neg_correct", "clip_neg_wrong", "clip_pos_margin",
    "clip_neg_margin", "clip_pos_acc", "clip_neg_acc", "clip_acc", "clip_both_acc",
))
TWOWAY_COLUMNS = ("vlm2_pos_p", "vlm2_neg_p", "vlm2_pos_acc", "vlm2_neg_acc", "vlm2_acc", "vlm2_bias",
                  "vlm2_consistency", "vlm2_mass")
ATOM_COLUMNS = tuple(
    f"vlm_atoms_{side}_{k}" for side in ("pos", "neg") for k in ("subject", "object", "relation", "am", "gm")
) + ("vlm_atoms_am", "vlm_atoms_gm", "vlm_atoms_present", "vlm_atoms_rel_given_present")
#: return_numeric_string: the digit GenEval 2 also reads for a count word; anything else
#: (an upper-case word, a digit, a number above ten) reads the literal string "other"
_DIGITS = {w: str(i) for i, w in enumerate(
    ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"), 1)}


def geneval2_spellings(question: str, answer: str) -> tuple[str, ...]:
    """The spellings whose first-token probabilities GenEval 2 adds up for one vqa_list entry.

    As its tifa / soft_tifa: a question starting "How many" reads the answer as written, its
    capitalize(), each with a leading space, then return_numeric_string(answer) and it with a
    space ("one" -> one, One, " one", " One", 1, " 1"; "One" or "3" -> ..., other, " other").
    Every other question reads the four yes spellings whatever its expected answer (every such
    answer in GenEval 2's file is "Yes"). Not deduplicated: a token two spellings begin with is
    counted twice, as there.
    """
    if question.startswith("How many"):
        digit = _DIGITS.get(answer, "other")
        return (answer, answer.capitalize(), " " + answer, " " + answer.capitalize(), digit, " " + digit)
    return GENEVAL2_YES


# -- functional twins ----------------------------------------------------------------------------
def vqascore_columns(pos_correct: float, pos_wrong: float, neg_correct: Optional[float] = None,
                     neg_wrong: Optional[float] = None) -> dict[str, Optional[float]]:
    """The vqascore columns from the four P_yes values (same arithmetic as clip_alignment)."""
    # imported here: importing clip_alignment's module registers it, which must not happen
    # while the registry checks whether open_clip is installed (relbench list)
    from relbench.metrics.clip_alignment import alignment_from_scores

    row = alignment_from_scores(pos_correct, pos_wrong, neg_correct, neg_wrong)
    return {k.replace("clip_", "vlm_"): v for k, v in row.items()}


def _vote(p: float) -> float:
    return 1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0


def _share(x: float, y: float) -> float:
    return x / (x + y) if x + y > 0 else 0.5


def twoway_image(own_first: tuple[float, float], own_second: tuple[float, float]) -> dict[str, float]:
    """One image's two-way reading from (P(A), P(B)) of both orders.

    own_first: the image's own text was option A; own_second: it was option B. The vote is 1
    only when the image's own text wins in both orders, 0 when it loses in both and 0.5
    (undecided) when the orders disagree: a judge that answers the same letter whatever the
    order has P(right) near 0.5 in the mean, but each order alone is decisive, so voting on the
    mean would turn pure position bias into confident-looking 0s and 1s.
    """
    (a1, b1), (a2, b2) = own_first, own_second
    r1, r2 = _share(a1, b1), _share(b2, a2)
    vote = 1.0 if r1 > 0.5 and r2 > 0.5 else 0.0 if r1 < 0.5 and r2 < 0.5 else 0.5
    return {"p": (r1 + r2) / 2.0, "bias": (_share(a1, b1) + _share(a2, b2)) / 2.0 - 0.5, "vote": vote,
            "consistent": float(vote != 0.5), "mass": (a1 + b1 + a2 + b2) / 2.0}


def twoway_columns(pos: dict | None, neg: dict | None) -> dict[str, Optional[float]]:
    """From twoway_image of img_pos and img_neg (either may be None)."""
    row = dict.fromkeys(TWOWAY_COLUMNS)
    seen = [v for v in (pos, neg) if v is not None]
    for side, v in (("pos", pos), ("neg", neg)):
        if v is not None:
            row[f"vlm2_{side}_p"], row[f"vlm2_{side}_acc"] = v["p"], v["vote"]
    if seen:
        mean = lambda k: sum(v[k] for v in seen) / len(seen)  # noqa: E731
        row["vlm2_acc"], row["vlm2_bias"] = mean("vote"), mean("bias")
        row["vlm2_consistency"], row["vlm2_mass"] = mean("consistent"), mean("mass")
    return row


#: a two-way reading is flagged when the judge's mean position bias exceeds this (|P(A) share - 0.5|)
BIAS_LIMIT = 0.25
#: ... or when it puts less than this much probability on the two letters at all
MASS_LIMIT = 0.5


def twoway_flags(run: str, rows: Sequence[dict]) -> list[str]:
    """Warnings on one run's two-way columns: a judge that mostly picks one letter, or that
    mostly answers something other than a letter, gives votes that measure little."""
    def mean(col):
        vals = [r[col] for r in rows if r.get(col) is not None and r[col] == r[col]]
        return sum(vals) / len(vals) if vals else None

    bias, mass, agree = mean("vlm2_bias"), mean("vlm2_mass"), mean("vlm2_consistency")
    if bias is None:
        return []
    why = []
    if abs(bias) > BIAS_LIMIT:
        why.append(f"position bias {bias:+.3f} (|bias| > {BIAS_LIMIT}: it prefers "
                   f"{'A' if bias > 0 else 'B'} whatever the order)")
    if mass < MASS_LIMIT:
        why.append(f"P(A) + P(B) = {mass:.3f} on average (< {MASS_LIMIT}: it mostly answers something else)")
    if not why:
        return []
    return [f"run {run}: two-way judge unreliable: {'; '.join(why)}; only {agree:.0%} of images get the same "
            f"answer in both orders, the rest vote 0.5, so vlm2_* mostly measure the judge, not the images"]


def choice_letters(k: int) -> list[tuple[str, str]]:
    """The spellings of the first k option letters ("A", " A"), ... as LETTERS."""
    return [(c, f" {c}") for c in string.ascii_uppercase[:k]]


def choice_orders(candidates: Sequence[str], key: str) -> list[list[str]]:
    """All cyclic rotations of a shuffle of the candidates seeded by the image's key: every
    predicate is at every letter exactly once, and which ones sit next to each other changes
    from image to image; the same image always gets the same orders."""
    base = list(candidates)
    random.Random(int(stable_hash(["choice", key]), 16)).shuffle(base)
    return [base[r:] + base[:r] for r in range(len(base))]


def choice_distribution(orders: Sequence[Sequence[str]], letter_probs: Sequence[Sequence[float]]) -> tuple[dict, float]:
    """({predicate: share}, mass) from one image's orders and P(letter) of each order's options.

    Per order the letters are normalised over the options (a forced choice; a judge with no
    letter mass at all splits evenly); a predicate's share is its mean over the orders, so a pure
    letter preference spreads evenly over the predicates. mass: the mean unnormalised P(letters)."""
    share = dict.fromkeys(orders[0], 0.0)
    mass = 0.0
    for order, probs in zip(orders, letter_probs):
        total = float(sum(probs))
        mass += total
        for pred, p in zip(order, probs):
            share[pred] += p / total if total > 0 else 1.0 / len(order)
    n = len(orders)
    return {p: v / n for p, v in share.items()}, mass / n


def choice_columns(dist: dict | None, mass: float | None, asked: str, candidates: Sequence[str]) -> dict:
    """The choice columns of one case (dist None: img_pos was not judged)."""
    if dist is None:
        return dict.fromkeys(CHOICE_COLUMNS)
    ordered = {p: round(dist[p], 12) for p in candidates}
    return {"vlm_choice_seen": json.dumps(ordered, separators=(",", ":")),
            "vlm_choice_p": ordered.get(asked), "vlm_choice_mass": mass}


def soft_tifa(scores: Sequence[float]) -> tuple[float, float]:
    """(arithmetic mean, geometric mean) of atom scores, as GenEval 2's Soft-TIFA AM
    (sum(s) / len(s)) and GM (scipy.stats.gmean: exp(mean(log s)), 0 when any score is 0)."""
    am = sum(scores) / len(scores)
    gm = 0.0 if min(scores) <= 0 else math.exp(sum(math.log(s) for s in scores) / len(scores))
    return am, gm


def geneval2_columns(vqascore: Optional[float], atoms: Sequence[float]) -> dict[str, Optional[float]]:
    """One image's GenEval 2 columns from its VQAScore (None without the suite's prompt) and the
    P(expected answer) of each vqa_list question, in order (none: no Soft-TIFA)."""
    am, gm = soft_tifa(atoms) if atoms else (None, None)
    return {"geneval2_vqascore": vqascore, "geneval2_soft_tifa_am": am, "geneval2_soft_tifa_gm": gm}


def atoms_columns(pos: dict | None, neg: dict | None) -> dict[str, Optional[float]]:
    """pos / neg: {"subject": [..], "object": [..], "relation": [..]} soft scores of one image."""
    row = dict.fromkeys(ATOM_COLUMNS)
    ams, gms, present, rel_present = [], [], [], []
    for side, atoms in (("pos", pos), ("neg", neg)):
        if atoms is None:
            continue
        for k in ("subject", "object", "relation"):
            row[f"vlm_atoms_{side}_{k}"] = sum(atoms[k]) / len(atoms[k])
        am, gm = soft_tifa([*atoms["presence"], *atoms["relation"]])
        row[f"vlm_atoms_{side}_am"], row[f"vlm_atoms_{side}_gm"] = am, gm
        ams.append(am)
        gms.append(gm)
        ok = all(p > 0.5 for p in atoms["presence"])
        present.append(float(ok))
        if ok:
            rel_present.append(row[f"vlm_atoms_{side}_relation"])
    if ams:
        row["vlm_atoms_am"], row["vlm_atoms_gm"] = sum(ams) / len(ams), sum(gms) / len(gms)
        row["vlm_atoms_present"] = sum(present) / len(present)
        row["vlm_atoms_rel_given_present"] = sum(rel_present) / len(rel_present) if rel_present else None
    return row


def atom_questions(graph: Graph, phrase) -> tuple[list[str], list[str], list[str]]:
    """(presence questions per object, their roles ('subject'/'object'), relation questions)."""
    objects = graph_objects(graph)
    subjects = {t.subject for t in graph}
    presence = [f"Is there {with_article(o)} in the image?" for o in objects]
    roles = ["subject" if o in subjects else "object" for o in objects]
    relation = [f"Is the {t.subject} {phrase(t.predicate)} the {t.object}?" for t in graph]
    return presence, roles, relation


# -- the plugin ----------------------------------------------------------------------------------
class VlmJudgeArgs(MetricArgs):
    model: str = Field(..., description="local model directory, or a repo id already in the Hugging Face cache")
    modes: list[Literal["vqascore", "twoway", "atoms", "geneval2", "choice"]] = Field(
        default_factory=lambda: list(MODES[:4]), description="choice (the confusion matrix) is asked for explicitly: "
                                                              "it costs K forward passes per img_pos")
    choice_predicates: Optional[list[str]] = Field(
        None, description="choice mode's candidate predicates (2 to 26; default: the vocabulary's geometric ones)")
    choice_template: str = Field(CHOICE_TEMPLATE, description="multiple choice; {options} is 'A: .. B: ..'")
    template: Literal["geneval2", "t2v_metrics"] = Field(
        "geneval2", description="VQAScore protocol: geneval2 (its question, P of Yes/yes/ Yes/ yes) or t2v_metrics "
                                "(its question 'Does this figure show ...? Please answer Yes or No.', P(Yes) only)")
    vqa_template: Optional[str] = Field(None, description="VQAScore question overriding the template's; {prompt} "
                                                          "is the relation text")
    repetition_penalty: Literal["from_config", "none"] = Field(
        "from_config", description="from_config: apply generation_config.json's repetition_penalty to the answer "
                                   "logits as generate() does (GenEval 2's numbers); none: the raw softmax")
    twoway_template: str = Field(TWOWAY_TEMPLATE, description="forced choice; {a} and {b} are the two texts")
    atom_template: str = Field(ATOM_TEMPLATE, description="Soft-TIFA atom question; {question} is the atom")
    device: Optional[str] = None
    dtype: Optional[Literal["bfloat16", "float16", "float32"]] = Field(
        None, description="default: bfloat16 on GPU, float32 on CPU")
    batch_size: int = Field(8, ge=1, description="(image, question) pairs per forward pass")

    @field_validator("modes")
    @classmethod
    def _modes(cls, v):
        if not v:
            raise ValueError(f"give at least one mode ({', '.join(MODES)})")
        return list(dict.fromkeys(v))

    @field_validator("vqa_template")
    @classmethod
    def _vqa(cls, v):
        if v is not None and "{prompt}" not in v:
            raise ValueError("vqa_template must contain {prompt}")
        return v

    @field_validator("twoway_template")
    @classmethod
    def _two(cls, v):
        if "{a}" not in v or "{b}" not in v:
            raise ValueError("twoway_template must contain {a} and {b}")
        return v

    @field_validator("choice_template")
    @classmethod
    def _choice(cls, v):
        if "{options}" not in v:
            raise ValueError("choice_template must contain {options}")
        return v

    @field_validator("atom_template")
    @classmethod
    def _atom(cls, v):
        if "{question}" not in v:
            raise ValueError("atom_template must contain {question}")
        return v


@register_metric("vlm_judge")
class VlmJudge(Metric):
    """VQAScore, a two-way forced choice and Soft-TIFA atoms from one local VLM."""

    Args = VlmJudgeArgs
    consumes = frozenset({"images", "texts", "graphs", "questions"})
    version = "1"

    def __init__(self, args: VlmJudgeArgs, ctx):
        super().__init__(args, ctx)
        from relbench.models import vlm as _vlm

        self.candidates = self._candidates() if "choice" in args.modes else ()
        self._path = _vlm.resolve(args.model)  # a missing model fails here, before any image is drawn
        self._config_penalty = _vlm.config_repetition_penalty(self._path)
        self._unreproduced = _vlm.config_unreproduced(self._path)
        self._identity = None
        self._provenance = None
        self._vlm = None

    def _candidates(self) -> tuple[str, ...]:
        """choice_predicates resolved to canonical names, in vocabulary order."""
        from relbench.errors import UserError

        vocab = self.ctx.vocab
        given = self.args.choice_predicates
        if given is None:
            return tuple(n for n in vocab.names() if vocab.get(n).geometric)
        names = set()
        for p in given:
            if p not in vocab:
                raise UserError(f"vlm_judge: choice_predicates: {p!r} is not in the predicate vocabulary "
                                f"(known: {', '.join(vocab.names())})")
            names.add(vocab.get(p).name)
        if not 2 <= len(names) <= len(string.ascii_uppercase):
            raise UserError(f"vlm_judge: choice_predicates: give 2 to 26 distinct predicates (got {len(names)})")
        return tuple(n for n in vocab.names() if n in names)

    def confusions(self) -> list[Confusion]:
        if "choice" not in self.args.modes:
            return []
        return [Confusion("vlm_judge", "vlm_choice_seen", "vlm_choice_mass", self.candidates, "distribution")]

    @property
    def penalty(self) -> float:
        """The repetition penalty applied to the answer logits (1.0 = none)."""
        return self._config_penalty if self.args.repetition_penalty == "from_config" else 1.0

    @property
    def vqa(self) -> tuple[str, tuple[str, ...]]:
        """(VQAScore question, yes spellings) of the chosen template."""
        question, yes = TEMPLATES[self.args.template]
        return self.args.vqa_template or question, yes

    def _device_dtype(self) -> tuple[str, str]:
        device = str(self.args.device or self.ctx.device or "cpu")
        return device, self.args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")

    @property
    def vlm(self):
        if self._vlm is None:
            import torch

            from relbench.models import vlm as _vlm
            from relbench.io.progress import library_bars

            device, dtype = self._device_dtype()
            with library_bars(self.ctx.progress, ("transformers",)):
                self._vlm = _vlm.VLM(self._path, device, getattr(torch, dtype), self.args.batch_size, self.penalty)
        return self._vlm

    def weights_identity(self) -> dict:
        """The judge's content (sha256 of weights, tokenizer, processor and chat template files)
        and the dtype it runs in (bf16 on GPU, fp32 on CPU by default: not the same numbers)."""
        if self._identity is None:
            from relbench.models import vlm as _vlm

            self._identity = {"files": _vlm.identity(self._path), "dtype": self._device_dtype()[1]}
        return self._identity

    def _answer_groups(self) -> dict[str, tuple[str, ...]]:
        groups = {"yes": self.vqa[1] if self.args.modes == ["vqascore"] else tuple(dict.fromkeys(
            self.vqa[1] + YES)), "A": LETTERS[0], "B": LETTERS[1]}
        if "geneval2" in self.args.modes:  # its count questions are read through these
            groups.update({w: geneval2_spellings("How many", w) for w in (*_DIGITS, "other")})
        if "choice" in self.args.modes:
            groups.update({s[0]: s for s in choice_letters(len(self.candidates))})
        return groups

    def provenance(self) -> dict:
        """What the numbers were read from: the judge's files and their sha256, dtype, device,
        penalty, template and, for every answer spelling, the first token whose probability
        counts (a spelling the tokenizer splits is read through its first piece only)."""
        if self._provenance is None:
            from relbench.models import vlm as _vlm

            device, dtype = self._device_dtype()
            table = _vlm.first_token_table(self._path, [s for g in self._answer_groups().values() for s in g])
            self._provenance = {
                "judge": str(self._path), "weights_sha256": self.weights_identity()["files"],
                "dtype": dtype, "device": device, "template": self.args.template,
                "vqa_question": self.vqa[0], "yes_spellings": list(self.vqa[1]),
                "repetition_penalty": {"mode": self.args.repetition_penalty, "in_generation_config": self._config_penalty,
                                       "applied": self.penalty},
                "first_tokens": table,
                "unreproduced_generation_config": self._unreproduced,
            }
            if "geneval2" in self.args.modes:
                self._provenance["encode_prepends"] = _vlm.encode_prepends(self._path)
        return self._provenance

    @property
    def flags(self) -> list[str]:
        out = []
        cfg = self._config_penalty
        if cfg != 1.0 and self.args.repetition_penalty == "none":
            out.append(f"repetition_penalty: none, but the judge's generation_config.json sets {cfg:g}, which "
                       f"generate() (GenEval 2's evaluation.py) applies: these are not GenEval 2's numbers for this "
                       f"judge (repetition_penalty: from_config reproduces them)")
        elif cfg != 1.0:
            out.append(f"repetition_penalty {cfg:g} from the judge's generation_config.json applied to the answer "
                       f"logits, as generate() does (GenEval 2's protocol): P(answer) is not the raw softmax")
        if self._unreproduced:
            out.append(f"the judge's generation_config.json sets {', '.join(self._unreproduced)}, which generate() "
                       f"(GenEval 2's evaluation.py) also applies to the first answer token and vlm_judge does not: "
                       f"these are not generate()'s numbers for this judge")
        bos = self.provenance().get("encode_prepends")
        if bos is not None:
            out.append(f"the judge's tokenizer puts {bos!r} before every text: GenEval 2's evaluation.py "
                       f"(tokenizer.encode(answer)[0]) would read that token's probability for every answer; "
                       f"geneval2_* read each spelling's own first token")
        table = self.provenance()["first_tokens"]
        split = [s for s, t in table.items() if t["tokens"] > 1]
        blank = [s for s, t in table.items() if t["tokens"] and not t["first"].strip()]
        if split:
            read = ", ".join(f"{s!r} as {table[s]['first']!r}" for s in split)
            out.append(f"answer spellings the tokenizer splits, each read through its first token only: {read}")
        if blank:
            out.append(f"answer spellings whose first token is whitespace only (it carries no answer): "
                       f"{', '.join(repr(s) for s in blank)}")
        return out

    def columns(self) -> list[str]:
        cols: list[str] = []
        if "vqascore" in self.args.modes:
            cols += VQA_COLUMNS
        if "twoway" in self.args.modes:
            cols += TWOWAY_COLUMNS
        if "atoms" in self.args.modes:
            cols += ATOM_COLUMNS
        if "geneval2" in self.args.modes:
            cols += GENEVAL2_COLUMNS
        if "choice" in self.args.modes:
            cols += CHOICE_COLUMNS
        return cols

    def aggregates(self) -> list[Aggregate]:
        aggs: list[Aggregate] = []
        if "vqascore" in self.args.modes:
            aggs += [
                Aggregate("vlm_alignment_acc", "vlm_acc", chance=0.5, headline=True,
                          description="VQAScore: share of comparisons where the image's own relation text has the "
                                      "higher P(yes) (img_pos: p+ > p-, img_neg: p- > p+; ties 0.5)"),
                Aggregate("vlm_pos_margin", "vlm_pos_margin", description="mean P_yes(img_pos,p+) - P_yes(img_pos,p-)"),
                Aggregate("vlm_neg_margin", "vlm_neg_margin", description="mean P_yes(img_neg,p-) - P_yes(img_neg,p+)"),
                Aggregate("vlm_pos_correct", "vlm_pos_correct", description="mean VQAScore P_yes(img_pos, p+)"),
                Aggregate("vlm_pos_wrong", "vlm_pos_wrong", higher_is_better=False, description="mean P_yes(img_pos, p-)"),
                Aggregate("vlm_neg_correct", "vlm_neg_correct", description="mean VQAScore P_yes(img_neg, p-)"),
                Aggregate("vlm_neg_wrong", "vlm_neg_wrong", higher_is_better=False, description="mean P_yes(img_neg, p+)"),
                Aggregate("vlm_pos_acc", "vlm_pos_acc", chance=0.5, description="img_pos: P_yes(p+) > P_yes(p-) (ties 0.5)"),
                Aggregate("vlm_neg_acc", "vlm_neg_acc", chance=0.5, description="img_neg: P_yes(p-) > P_yes(p+) (ties 0.5)"),
                Aggregate("vlm_both_acc", "vlm_both_acc", description="both comparisons of a case strictly right"),
            ]
        if "twoway" in self.args.modes:
            aggs += [
                Aggregate("vlm2_acc", "vlm2_acc", chance=0.5, headline=True,
                          description="two-way question, both orders: share of images whose own text wins in both "
                                      "(orders disagreeing 0.5)"),
                Aggregate("vlm2_pos_p", "vlm2_pos_p", chance=0.5, description="img_pos: mean P(right) over both orders"),
                Aggregate("vlm2_neg_p", "vlm2_neg_p", chance=0.5, description="img_neg: mean P(right) over both orders"),
                Aggregate("vlm2_pos_acc", "vlm2_pos_acc", chance=0.5,
                          description="img_pos: right in both orders (orders disagreeing 0.5)"),
                Aggregate("vlm2_neg_acc", "vlm2_neg_acc", chance=0.5,
                          description="img_neg: right in both orders (orders disagreeing 0.5)"),
                Aggregate("vlm2_consistency", "vlm2_consistency", higher_is_better=None,
                          description="share of images whose two orders agree (right in both or wrong in both)"),
                Aggregate("vlm2_mass", "vlm2_mass", higher_is_better=None,
                          description="mean P(A) + P(B): how much the judge answers with a letter at all"),
                Aggregate("vlm2_position_bias", "vlm2_bias", higher_is_better=None,
                          description="mean P(A)/(P(A)+P(B)) - 0.5 over both orders: the judge's preference for "
                                      "the first option (cancelled in vlm2_acc by asking both orders)"),
            ]
        if "atoms" in self.args.modes:
            aggs += [
                Aggregate("vlm_atoms_am", "vlm_atoms_am",
                          description="relbench's atoms (presence + relation from the graph), mean P(yes) per image"),
                Aggregate("vlm_atoms_gm", "vlm_atoms_gm",
                          description="relbench's atoms, geometric mean of P(yes) per image"),
                Aggregate("vlm_atoms_present", "vlm_atoms_present",
                          description="share of images where every object's presence P(yes) > 0.5"),
                Aggregate("vlm_atoms_rel_given_present", "vlm_atoms_rel_given_present",
                          description="mean relation P(yes) over images with every object present (VISOR-style)"),
                Aggregate("vlm_atoms_pos_relation", "vlm_atoms_pos_relation", description="img_pos: relation P(yes) for g+"),
                Aggregate("vlm_atoms_neg_relation", "vlm_atoms_neg_relation", description="img_neg: relation P(yes) for g-"),
            ]
        if "geneval2" in self.args.modes:
            aggs += [
                Aggregate("geneval2_vqascore", "geneval2_vqascore",
                          description="GenEval 2's VQAScore of img_pos on the suite's own prompt (x100: its Score)"),
                Aggregate("geneval2_soft_tifa_am", "geneval2_soft_tifa_am",
                          description="GenEval 2's Soft-TIFA AM: mean P(expected answer) over its vqa_list, per "
                                      "image (x100: its Score)"),
                Aggregate("geneval2_soft_tifa_gm", "geneval2_soft_tifa_gm",
                          description="GenEval 2's Soft-TIFA GM: geometric mean over its vqa_list, per image "
                                      "(x100: its Score)"),
            ]
        if "choice" in self.args.modes:
            aggs += [
                Aggregate("vlm_choice_p", "vlm_choice_p", chance=1.0 / len(self.candidates),
                          description=f"multiple choice over {len(self.candidates)} predicates, all rotations: mean "
                                      f"share of img_pos's asked predicate (the confusion diagonal)"),
                Aggregate("vlm_choice_mass", "vlm_choice_mass", higher_is_better=None,
                          description="multiple choice: mean P(any option letter), unnormalised"),
            ]
        return aggs

    def run_flags(self, run: str, rows: list[dict]) -> list[str]:
        return twoway_flags(run, rows) if "twoway" in self.args.modes else []

    def _phrase(self, predicate: str) -> str:
        try:
            return self.ctx.vocab.get(predicate).text
        except Exception:
            return predicate

    def score(self, samples: list[Sample]) -> list[dict[str, Optional[float]]]:
        from relbench.models.vlm import Question

        a = self.args
        images, keys = [], {}
        questions: list[Question] = []
        answers: list[tuple[str, ...]] = [YES, *LETTERS]

        def group(spellings):
            if spellings not in answers:
                answers.append(spellings)
            return answers.index(spellings)
        plan: list[dict] = []  # per sample: side -> {what: question indices}
        vqa_question, vqa_yes = self.vqa
        vqa_group = group(vqa_yes)

        def image_index(key, loader):
            if key not in keys:
                keys[key] = len(images)
                images.append(loader)
            return keys[key]

        asked: dict[tuple[int, str], int] = {}

        def ask(img, text):  # each distinct (image, question) once
            if (img, text) not in asked:
                asked[(img, text)] = len(questions)
                questions.append(Question(img, text))
            return asked[(img, text)]

        for s in samples:
            entry: dict = {}
            if s.image_pos_key is None:
                plan.append(entry)
                continue
            sides = [("pos", s.image_pos_key, lambda s=s: s.image_pos, s.text_pos, s.text_neg, s.case.pos)]
            if s.image_neg_key is not None:
                sides.append(("neg", s.image_neg_key, lambda s=s: s.image_neg, s.text_neg, s.text_pos, s.case.neg))
            for side, key, load, own, other, graph in sides:
                img = image_index(key, load)
                q: dict = {}
                if "vqascore" in a.modes:
                    q["own"] = ask(img, vqa_question.format(prompt=own))
                    q["other"] = ask(img, vqa_question.format(prompt=other))
                if "twoway" in a.modes:
                    q["first"] = ask(img, a.twoway_template.format(a=own, b=other))
                    q["second"] = ask(img, a.twoway_template.format(a=other, b=own))
                if "atoms" in a.modes:
                    presence, roles, relation = atom_questions(graph, self._phrase)
                    q["presence"] = [ask(img, a.atom_template.format(question=t)) for t in presence]
                    q["roles"] = roles
                    q["relation"] = [ask(img, a.atom_template.format(question=t)) for t in relation]
                if "geneval2" in a.modes and side == "pos" and s.case.questions:  # its atoms are about g+
                    # its wording whatever vqa_template / atom_template say: these are its numbers
                    prompt = s.case.prompt.text if s.case.prompt is not None else None
                    q["geneval2_vqa"] = None if prompt is None else (
                        ask(img, GENEVAL2_VQA.format(prompt)), group(GENEVAL2_YES))
                    q["geneval2_atoms"] = [(ask(img, GENEVAL2_ATOM.format(qt)), group(geneval2_spellings(qt, ans)))
                                           for qt, ans in s.case.questions]
                if "choice" in a.modes and side == "pos":
                    q["choice"] = self._ask_choice(s, key, img, ask, group)
                entry[side] = q
            plan.append(entry)

        probs = self.vlm.probabilities(images, questions, answers) if questions else []
        yes = lambda i: probs[i][0]  # noqa: E731
        vqa_p = lambda i: probs[i][vqa_group]  # noqa: E731
        ab = lambda i: (probs[i][1], probs[i][2])  # noqa: E731
        rows = []
        for entry in plan:
            row = dict.fromkeys(self.columns())
            pos, neg = entry.get("pos"), entry.get("neg")
            if pos is None:
                rows.append(row)
                continue
            if "vqascore" in a.modes:
                row.update(vqascore_columns(vqa_p(pos["own"]), vqa_p(pos["other"]),
                                            vqa_p(neg["own"]) if neg else None, vqa_p(neg["other"]) if neg else None))
            if "twoway" in a.modes:
                two = lambda q: twoway_image(ab(q["first"]), ab(q["second"]))  # noqa: E731
                row.update(twoway_columns(two(pos), two(neg) if neg else None))
            if "atoms" in a.modes:
                def atoms(q):
                    pres = [yes(i) for i in q["presence"]]
                    by_role = lambda r: [p for p, role in zip(pres, q["roles"]) if role == r] or pres  # noqa: E731
                    return {"presence": pres, "subject": by_role("subject"), "object": by_role("object"),
                            "relation": [yes(i) for i in q["relation"]]}
                row.update(atoms_columns(atoms(pos), atoms(neg) if neg else None))
            if "geneval2_atoms" in pos:
                p = lambda ig: probs[ig[0]][ig[1]]  # noqa: E731
                vqa = pos["geneval2_vqa"]
                row.update(geneval2_columns(None if vqa is None else p(vqa), [p(x) for x in pos["geneval2_atoms"]]))
            if "choice" in a.modes:
                asked_pred, orders, asked_q = pos["choice"]
                dist, mass = None, None
                if orders:
                    dist, mass = choice_distribution(orders, [[probs[i][g] for g in groups] for i, groups in asked_q])
                row.update(choice_columns(dist, mass, asked_pred, self.candidates))
            rows.append(row)
        return rows

    def _ask_choice(self, s: Sample, key: str, img: int, ask, group) -> tuple[str, list, list]:
        """(asked predicate, orders, [(question index, letter groups)] per order) for img_pos's
        tested triple; no orders where subject and object share a name (nothing to tell apart)."""
        from relbench.results.write import tested_triple

        t, _ = tested_triple(s.case)
        asked = self.ctx.vocab.resolve(t.predicate) or t.predicate
        if t.subject == t.object:
            return asked, [], []
        subj, obj = with_article(t.subject), with_article(t.object)
        letters = choice_letters(len(self.candidates))
        groups = [group(spellings) for spellings in letters]
        orders = choice_orders(self.candidates, key)
        asked_q = []
        for order in orders:
            options = " ".join(f"{l[0]}: {subj} {self._phrase(p)} {obj}" for l, p in zip(letters, order))
            asked_q.append((ask(img, self.args.choice_template.format(options=options)), groups))
        return asked, orders, asked_q

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._vlm.counts) if self._vlm else {"images": 0, "forwards": 0, "questions": 0}

    def close(self) -> None:
        self._vlm = None
