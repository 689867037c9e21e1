"""Scene-graph encoders: SGDiff CGIP weights and vocabulary load; out-of-vocabulary errors."""

from __future__ import annotations

import json

import pytest

import torch  # noqa: E402

from relbench.models.graph_encoders import CGIPEncoder, build_encoder  # noqa: E402
from relbench.models.graph_specs import CGIPSpec  # noqa: E402
from relbench.spec.data import Triple  # noqa: E402
from relbench.errors import UserError  # noqa: E402

torch.set_num_threads(1)

OBJECTS = ["__image__", "dog", "horse", "person", "table", "cup", "hat"]
PREDS = ["__in_image__", "riding", "on", "holding", "wearing", "hanging from"]


def sgdiff_state_dict(D=8, W=8, layers=5, n_obj=len(OBJECTS), n_pred=len(PREDS), seed=0):
    """A CGIP state dict written out under SGDiff's own parameter names (cgip.py), not ours."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731

    def conv(prefix):
        return {
            f"{prefix}.net1.0.weight": r(W, 3 * D), f"{prefix}.net1.0.bias": r(W),
            f"{prefix}.net1.2.weight": r(2 * W + D, W), f"{prefix}.net1.2.bias": r(2 * W + D),
            f"{prefix}.net2.0.weight": r(W, W), f"{prefix}.net2.0.bias": r(W),
            f"{prefix}.net2.2.weight": r(D, W), f"{prefix}.net2.2.bias": r(D),
        }

    sd = {"obj_embeddings.weight": r(n_obj + 1, D), "pred_embeddings.weight": r(n_pred, D),
          "graph_projection.weight": r(D, 2 * D), "graph_projection.bias": r(D), "logit_scale": torch.tensor(2.6593)}
    sd.update(conv("graph_conv"))
    for i in range(layers):
        sd.update(conv(f"graph_net.gconvs.{i}"))
    return sd


@pytest.fixture
def vocab_file(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({
        "object_name_to_idx": {n: i for i, n in enumerate(OBJECTS)},
        "pred_name_to_idx": {n: i for i, n in enumerate(PREDS)},
        "object_idx_to_name": OBJECTS, "pred_idx_to_name": PREDS,
    }))
    return path


def test_sgdiff_checkpoint_loads_weights_only(tmp_path, vocab_file):
    sd = sgdiff_state_dict()
    torch.save({"state_dict": sd, "epoch": 7, "global_step": 100}, tmp_path / "sip_vg.pt")
    enc = build_encoder({"kind": "cgip", "vocab": str(vocab_file), "weights": str(tmp_path / "sip_vg.pt"),
                         "embed_dim": 8, "width": 8})
    own = enc.state_dict()
    assert own.keys() == sd.keys() and all(torch.equal(own[k], sd[k]) for k in sd)
    assert not any(p.requires_grad for p in enc.parameters())  # frozen by default
    graphs = [(Triple("dog", "riding", "horse"),), (Triple("person", "wearing", "hat"), Triple("person", "holding", "cup"))]
    local, global_vec, mask = enc(graphs)
    assert local.shape == (2, 2, 24) and global_vec.shape == (2, 8)  # cat(s, p, o) = 3 x 8; projection = 8
    assert mask.tolist() == [[True, False], [True, True]] and torch.all(local[0, 1] == 0)
    swapped, _, _ = enc([(Triple("horse", "riding", "dog"),)])
    assert not torch.allclose(swapped[0, 0], local[0, 0])  # direction matters
    # the same graph alone or in a batch encodes the same
    alone, g_alone, _ = enc(graphs[1:])
    assert torch.allclose(alone[0], local[1], atol=1e-5) and torch.allclose(g_alone[0], global_vec[1], atol=1e-5)


def test_sgdiff_default_sizes_match_cgip():
    """SGDiff's VG model: (179 + 1) x 512 objects, 46 x 512 predicates, projection 1024 -> 512."""
    objs = {f"o{i}": i for i in range(179)}
    preds = {f"p{i}": i for i in range(46)}
    enc = CGIPEncoder(CGIPSpec(), objs, preds)
    sd = enc.state_dict()
    assert sd["obj_embeddings.weight"].shape == (180, 512) and sd["pred_embeddings.weight"].shape == (46, 512)
    assert sd["graph_projection.weight"].shape == (512, 1024) and len(enc.graph_net.gconvs) == 5
    assert sd["graph_conv.net1.0.weight"].shape == (512, 1536) and sd["graph_conv.net1.2.weight"].shape == (1536, 512)
    assert enc.local_dim == 1536 and enc.global_dim == 512


def test_wrong_checkpoint_names_what_mismatches(tmp_path, vocab_file):
    sd = sgdiff_state_dict()
    sd["graph_projection.weight"] = torch.zeros(8, 4)
    del sd["graph_net.gconvs.4.net2.2.bias"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": sd}, tmp_path / "bad.pt")
    with pytest.raises(UserError) as err:
        build_encoder({"kind": "cgip", "vocab": str(vocab_file), "weights": str(tmp_path / "bad.pt"), "embed_dim": 8, "width": 8})
    msg = str(err.value)
    assert "missing: graph_net.gconvs.4.net2.2.bias" in msg and "unexpected: extra.weight" in msg
    assert "graph_projection.weight (8, 4) vs model (8, 16)" in msg


def test_pickled_code_is_refused(tmp_path, vocab_file):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": sgdiff_state_dict(), "hook": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="weights-only"):
        build_encoder({"kind": "cgip", "vocab": str(vocab_file), "weights": str(tmp_path / "evil.pt"), "embed_dim": 8, "width": 8})


def test_oov_lists_nearest_words_or_uses_fallback(vocab_file):
    enc = build_encoder({"kind": "cgip", "vocab": str(vocab_file), "embed_dim": 8, "width": 8})
    with pytest.raises(UserError) as err:
        enc([(Triple("dgo", "riding", "horse"),)])
    assert "object 'dgo'" in str(err.value) and "nearest known: dog" in str(err.value)
    with pytest.raises(UserError) as err:
        enc([(Triple("dog", "ridng", "horse"),)])
    assert "predicate 'ridng'" in str(err.value) and "riding" in str(err.value)
    assert "__in_image__" not in str(err.value)
    # names are matched case- and underscore-insensitively; multi-word predicates work
    enc([(Triple("Dog", "hanging_from", "horse"),)])
    fb = build_encoder({"kind": "cgip", "vocab": str(vocab_file), "embed_dim": 8, "width": 8,
                        "object_fallback": "person", "predicate_fallback": "on"})
    a = fb([(Triple("zebra", "grazing", "table"),)])[0]
    b = fb([(Triple("person", "on", "table"),)])[0]
    assert torch.equal(a, b)
    with pytest.raises(UserError, match="object_fallback 'unicorn' is not in the vocabulary"):
        build_encoder({"kind": "cgip", "vocab": str(vocab_file), "object_fallback": "unicorn"})


def test_encoder_runs_under_bf16_autocast(vocab_file):
    """The trainer runs the encoder under bf16 autocast (mixed_precision: bf16, the GPU default): the
    convolution's MLP outputs are bf16 while the embeddings stay float32, and the pooled sums must
    follow the MLP's dtype. Found on an H200 (index_add of BFloat16 into Float); CPU autocast shows it too."""
    from relbench.models.graph_encoders import GraphTripleConv

    torch.manual_seed(0)
    conv = GraphTripleConv(8, hidden_dim=8)
    objs, preds = torch.randn(3, 8), torch.randn(2, 8)
    edges = torch.tensor([[0, 1], [2, 1]])
    ref_objs, ref_preds = conv(objs, preds, edges)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_objs, out_preds = conv(objs, preds, edges)
    assert out_objs.shape == (3, 8) and out_preds.shape == (2, 8)
    # bf16 keeps 8 bits of mantissa: the same values to within bf16 rounding of O(1) activations
    torch.testing.assert_close(out_objs.float(), ref_objs, atol=0.1, rtol=0.05)
    torch.testing.assert_close(out_preds.float(), ref_preds, atol=0.1, rtol=0.05)
