import pytest

from relbench.spec.data import Triple
from relbench.errors import UserError
from relbench.spec.predicates import ORIGIN_PREDICATES, load_vocabulary
from relbench.spec.prompts import neutral_prompt, relation_prompt, with_article


@pytest.fixture(scope="module")
def vocab():
    return load_vocabulary()


def test_seed_predicates_all_present(vocab):
    assert len(ORIGIN_PREDICATES) == 16
    for p in ORIGIN_PREDICATES:
        assert vocab.resolve(p) == p


def test_aliases_case_and_spacing_normalise(vocab):
    assert vocab.resolve("around") == "near"
    assert vocab.resolve("  Sitting   On ") == "sitting on"
    assert vocab.resolve("under") == "below"
    assert vocab.resolve("on top of") == "on"
    assert vocab.resolve("to the left of") == "left of"


def test_symmetry_inverse_geometry(vocab):
    assert vocab.get("near").symmetric and not vocab.get("riding").symmetric
    assert vocab.get("above").inverse == "below" and vocab.get("in front of").inverse == "behind"
    assert vocab.get("left of").geometric and not vocab.get("wearing").geometric
    assert vocab.get("holding").contrast == ("wearing",)


def test_unknown_predicate_lists_known_and_suggests(vocab):
    with pytest.raises(UserError) as e:
        vocab.get("ridding", where="suite.x")
    msg = str(e.value)
    assert msg.startswith("suite.x: unknown predicate 'ridding'")
    assert "riding" in msg and "wearing" in msg and "\n" not in msg


def test_vocabulary_extends_and_overrides_from_config():
    vocab = load_vocabulary([
        {"name": "touching", "symmetric": True, "geometric": True, "contrast": ["far from"]},
        {"name": "holding", "contrast": ["eating"]},
    ])
    assert vocab.get("touching").symmetric
    assert vocab.get("holding").contrast == ("eating",)


def test_yaml_boolean_predicate_is_a_clear_error():
    with pytest.raises(UserError, match="quote the word"):
        load_vocabulary([{"name": True}])
    with pytest.raises(UserError, match="refers to unknown predicate 'flying over'"):
        load_vocabulary([{"name": "soaring", "contrast": ["flying over"]}])


@pytest.mark.parametrize("noun,expected", [
    ("dog", "a dog"), ("orange triangle", "an orange triangle"), ("elephant", "an elephant"),
    ("hour glass", "an hour glass"), ("unicorn", "a unicorn"), ("umbrella", "an umbrella"),
    ("grass", "grass"), ("one-armed man", "a one-armed man"), ("European car", "a European car"),
])
def test_articles(noun, expected):
    assert with_article(noun) == expected


def test_relation_and_neutral_prompts(vocab):
    g = (Triple("dog", "riding", "horse"),)
    assert relation_prompt(g, vocab) == "a photo of a dog riding a horse"
    assert neutral_prompt(g) == "a photo of a dog and a horse"
    g2 = (Triple("red circle", "left of", "blue square"),)
    assert relation_prompt(g2, vocab) == "a photo of a red circle to the left of a blue square"


def test_prompts_cover_every_triple(vocab):
    g = (Triple("man", "riding", "horse"), Triple("man", "holding", "umbrella"), Triple("horse", "on", "grass"))
    assert relation_prompt(g, vocab) == (
        "a photo of a man riding a horse, a man holding an umbrella and a horse on grass"
    )
    assert neutral_prompt(g) == "a photo of a man, a horse, an umbrella and grass"
