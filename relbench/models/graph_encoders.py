"""Scene-graph encoders behind one interface: graphs -> (local tokens, global vector).

``cgip``: SGDiff's CGIP network (YangLing0818/SGDiff, ldm/modules/cgip/cgip.py) with the
same parameter names, so a user's ``sip_vg.pt`` and sg2im ``vocab.json`` load unchanged.
``text``: open vocabulary; node and edge names are embedded by the pipeline's own CLIP text
encoder (pooled output), then the same graph convolution (sg2im's GraphTripleConv).

Every encoder returns, for a list of graphs, ``local`` (B, T, local_dim) with one token per
triple (zero-padded to the longest graph), ``mask`` (B, T) marking real triples, and
``global`` (B, global_dim). Graphs are never assumed to hold a single triple.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from relbench.models.graph_specs import CGIPSpec, EncoderSpec, TextSpec
from relbench.spec.data import Graph, graph_objects
from relbench.errors import UserError
from relbench.spec.predicates import normalise

IMAGE_NODE, IN_IMAGE = "__image__", "__in_image__"


# ---------------------------------------------------------------------------- sg2im graph convolution


def build_mlp(dims: list[int]) -> nn.Sequential:
    """Linear/ReLU stack with a final ReLU, as sg2im's build_mlp (so indices 0, 2 are Linear)."""
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(d_in, d_out), nn.ReLU()]
    return nn.Sequential(*layers)


class GraphTripleConv(nn.Module):
    """One scene-graph convolution: an MLP per triple, average into objects, an MLP per object."""

    def __init__(self, input_dim: int, output_dim: int | None = None, hidden_dim: int = 512):
        super().__init__()
        output_dim = output_dim or input_dim
        self.input_dim, self.output_dim, self.hidden_dim = input_dim, output_dim, hidden_dim
        self.net1 = build_mlp([3 * input_dim, hidden_dim, 2 * hidden_dim + output_dim])
        self.net2 = build_mlp([hidden_dim, hidden_dim, output_dim])
        for m in (*self.net1, *self.net2):  # sg2im's _init_weights: keeps the scale through ReLUs
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, obj_vecs, pred_vecs, edges):
        H, Dout = self.hidden_dim, self.output_dim
        s_idx, o_idx = edges[:, 0], edges[:, 1]
        new_t = self.net1(torch.cat([obj_vecs[s_idx], pred_vecs, obj_vecs[o_idx]], dim=1))
        new_s, new_p, new_o = new_t[:, :H], new_t[:, H : H + Dout], new_t[:, H + Dout : 2 * H + Dout]
        O = obj_vecs.size(0)
        # new_s is bf16 under autocast while the embeddings stay float32: index_add needs one dtype
        pooled = torch.zeros(O, H, dtype=new_s.dtype, device=obj_vecs.device)
        pooled = pooled.index_add(0, s_idx, new_s).index_add(0, o_idx, new_o)
        counts = torch.zeros(O, dtype=obj_vecs.dtype, device=obj_vecs.device)
        ones = torch.ones_like(s_idx, dtype=obj_vecs.dtype)
        counts = counts.index_add(0, s_idx, ones).index_add(0, o_idx, ones).clamp(min=1)
        return self.net2(pooled / counts[:, None]), new_p


class GraphTripleConvNet(nn.Module):
    def __init__(self, input_dim: int, num_layers: int = 5, hidden_dim: int = 512):
        super().__init__()
        self.gconvs = nn.ModuleList(GraphTripleConv(input_dim, hidden_dim=hidden_dim) for _ in range(num_layers))

    def forward(self, obj_vecs, pred_vecs, edges):
        for g in self.gconvs:
            obj_vecs, pred_vecs = g(obj_vecs, pred_vecs, edges)
        return obj_vecs, pred_vecs


def _avg_pool(x, index, n: int):
    out = torch.zeros(n, x.size(1), dtype=x.dtype, device=x.device).index_add(0, index, x)
    cnt = torch.zeros(n, dtype=x.dtype, device=x.device).index_add(0, index, torch.ones_like(index, dtype=x.dtype))
    return out / cnt.clamp(min=1)[:, None]


class _GraphBackbone(nn.Module):
    """GraphTripleConv + GraphTripleConvNet + graph_projection; subclasses embed nodes and edges."""

    kind = ""

    def __init__(self, embed_dim: int, width: int, layers: int):
        super().__init__()
        self.embed_dim = embed_dim
        self.graph_conv = GraphTripleConv(embed_dim, output_dim=embed_dim, hidden_dim=width)
        self.graph_net = GraphTripleConvNet(embed_dim, num_layers=layers, hidden_dim=width)
        self.graph_projection = nn.Linear(embed_dim * 2, embed_dim)

    @property
    def local_dim(self) -> int:
        return 3 * self.embed_dim

    @property
    def global_dim(self) -> int:
        return self.embed_dim

    def _structure(self, graphs: list[Graph], image_node: bool):
        """Flatten a batch of graphs: node names, edge (s, pred, o) with global node indices,
        node->graph and edge->graph indices, and which edges are the user's triples."""
        names, edges, node_g, edge_g, is_user = [], [], [], [], []
        for b, graph in enumerate(graphs):
            if not graph:
                raise UserError("graph encoder: a request has an empty graph (no triples)")
            base = len(names)
            local = {name: i for i, name in enumerate(graph_objects(graph))}
            names += list(local)
            node_g += [b] * len(local)
            for t in graph:
                edges.append((base + local[t.subject], t.predicate, base + local[t.object]))
                edge_g.append(b)
                is_user.append(True)
            if image_node:
                img = len(names)
                names.append(IMAGE_NODE)
                node_g.append(b)
                for i in range(len(local)):
                    edges.append((base + i, IN_IMAGE, img))
                    edge_g.append(b)
                    is_user.append(False)
        return names, edges, node_g, edge_g, is_user

    def _run(self, graphs, obj_vecs, pred_vecs, edges, node_g, edge_g, is_user):
        dev = obj_vecs.device
        e = torch.tensor([[s, o] for s, _, o in edges], dtype=torch.long, device=dev)
        obj_vecs, pred_vecs = self.graph_conv(obj_vecs, pred_vecs, e)
        obj_vecs, pred_vecs = self.graph_net(obj_vecs, pred_vecs, e)
        B = len(graphs)
        ng = torch.tensor(node_g, device=dev)
        eg = torch.tensor(edge_g, device=dev)
        global_vec = self.graph_projection(torch.cat([_avg_pool(obj_vecs, ng, B), _avg_pool(pred_vecs, eg, B)], 1))
        triple_vecs = torch.cat([obj_vecs[e[:, 0]], pred_vecs, obj_vecs[e[:, 1]]], dim=1)
        T = max(len(g) for g in graphs)
        local = torch.zeros(B, T, self.local_dim, dtype=triple_vecs.dtype, device=dev)
        mask = torch.zeros(B, T, dtype=torch.bool, device=dev)
        slot = [0] * B
        for j, (b, user) in enumerate(zip(edge_g, is_user)):
            if user:
                local[b, slot[b]] = triple_vecs[j]
                mask[b, slot[b]] = True
                slot[b] += 1
        return local, global_vec, mask

    def spec_dict(self) -> dict:
        raise NotImplementedError


# ---------------------------------------------------------------------------- CGIP


def load_sg2im_vocab(path: str | Path) -> tuple[dict[str, int], dict[str, int]]:
    try:
        data = json.loads(Path(path).read_text())
        return dict(data["object_name_to_idx"]), dict(data["pred_name_to_idx"])
    except FileNotFoundError:
        raise UserError(f"cgip: vocabulary file {path} not found (sg2im vocab.json)") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"cgip: {path} is not an sg2im vocab.json (needs object_name_to_idx, pred_name_to_idx): {exc}") from None


def load_sgdiff_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """SGDiff's CGIP checkpoint: a torch file, read without pickle code (weights_only=True)."""
    try:
        obj = torch.load(str(path), weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise UserError(f"cgip: weights file {path} not found (SGDiff sip_vg.pt)") from None
    except Exception as exc:
        raise UserError(f"cgip: cannot read {path} as a weights-only torch checkpoint: {type(exc).__name__}") from None
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"cgip: {path} holds no state_dict of tensors")
    for prefix in ("module.", "model.", "cond_stage_model."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


class CGIPEncoder(_GraphBackbone):
    """SGDiff CGIP: closed-vocabulary object/predicate embeddings + graph convolution.

    Parameter names match SGDiff's CGIPModel (obj_embeddings, pred_embeddings, graph_conv,
    graph_net, graph_projection, logit_scale). As in SGDiff's encode_scene_graphs, an
    ``__image__`` node joined to every object by ``__in_image__`` is added when the vocabulary
    has them; local tokens are the user's triples only, the global vector pools everything.
    """

    kind = "cgip"

    def __init__(self, spec: CGIPSpec, obj_to_idx: dict[str, int], pred_to_idx: dict[str, int],
                 num_objs: int | None = None, num_preds: int | None = None):
        super().__init__(spec.embed_dim, spec.width, spec.layers)
        self.spec = spec
        self.obj_to_idx, self.pred_to_idx = dict(obj_to_idx), dict(pred_to_idx)
        self.num_objs = num_objs if num_objs is not None else max(self.obj_to_idx.values()) + 1
        self.num_preds = num_preds if num_preds is not None else max(self.pred_to_idx.values()) + 1
        self.obj_embeddings = nn.Embedding(self.num_objs + 1, spec.embed_dim)
        self.pred_embeddings = nn.Embedding(self.num_preds, spec.embed_dim)
        self.logit_scale = nn.Parameter(torch.ones([]) * 2.6593)  # unused; kept so SGDiff's keys load strictly
        self.image_node = spec.image_node and IMAGE_NODE in self.obj_to_idx and IN_IMAGE in self.pred_to_idx
        self._obj_norm = {normalise(k): v for k, v in self.obj_to_idx.items()}
        self._pred_norm = {normalise(k): v for k, v in self.pred_to_idx.items()}
        for what, fb, table in (("object", spec.object_fallback, self._obj_norm), ("predicate", spec.predicate_fallback, self._pred_norm)):
            if fb is not None and normalise(fb) not in table:
                raise UserError(f"cgip: {what}_fallback {fb!r} is not in the vocabulary")
        self.requires_grad_(spec.trainable)

    @classmethod
    def from_spec(cls, spec: CGIPSpec) -> "CGIPEncoder":
        """Build from vocab.json and, if given, load SGDiff weights (names and shapes checked)."""
        if spec.vocab is None:
            raise UserError("cgip: encoder.vocab (an sg2im vocab.json) is required")
        objs, preds = load_sg2im_vocab(spec.vocab)
        if spec.weights is None:
            return cls(spec, objs, preds)
        sd = load_sgdiff_state_dict(spec.weights)
        try:
            n_obj = sd["obj_embeddings.weight"].shape[0] - 1
            n_pred = sd["pred_embeddings.weight"].shape[0]
        except KeyError as exc:
            raise UserError(f"cgip: {spec.weights} has no {exc.args[0]} (not an SGDiff CGIP state dict)") from None
        enc = cls(spec, objs, preds, num_objs=n_obj, num_preds=n_pred)
        if max(objs.values()) > n_obj or max(preds.values()) >= n_pred:
            raise UserError(f"cgip: vocabulary {spec.vocab} has indices beyond the embeddings in {spec.weights}")
        load_checked(enc, sd, f"cgip weights {spec.weights}")
        enc.requires_grad_(spec.trainable)
        return enc

    def _lookup(self, name: str, what: str) -> int:
        table = self._obj_norm if what == "object" else self._pred_norm
        idx = table.get(normalise(name))
        if idx is not None:
            return idx
        fb = self.spec.object_fallback if what == "object" else self.spec.predicate_fallback
        if fb is not None:
            return table[normalise(fb)]
        known = [k for k in table if not k.startswith("__")]
        near = difflib.get_close_matches(normalise(name), known, n=5, cutoff=0.5)
        hint = f"nearest known: {', '.join(near)}" if near else f"{len(known)} known {what}s"
        raise UserError(
            f"cgip: {what} {name!r} is not in the CGIP vocabulary ({hint}); "
            f"use a known word, set encoder.{what}_fallback, or use the open-vocabulary encoder kind: text"
        )

    def forward(self, graphs: list[Graph]):
        names, edges, node_g, edge_g, is_user = self._structure(graphs, self.image_node)
        dev = self.obj_embeddings.weight.device
        objs = torch.tensor([self.obj_to_idx[n] if n == IMAGE_NODE else self._lookup(n, "object") for n in names], device=dev)
        preds = torch.tensor([self.pred_to_idx[p] if p == IN_IMAGE else self._lookup(p, "predicate") for _, p, _ in edges], device=dev)
        return self._run(graphs, self.obj_embeddings(objs), self.pred_embeddings(preds), edges, node_g, edge_g, is_user)

    def spec_dict(self) -> dict:
        spec = self.spec.model_dump(mode="json")
        spec.update(vocab=None, weights=None)  # the checkpoint carries the vocabulary and weights itself
        return {**spec, "num_objs": self.num_objs, "num_preds": self.num_preds,
                "object_name_to_idx": self.obj_to_idx, "pred_name_to_idx": self.pred_to_idx}


# ---------------------------------------------------------------------------- open vocabulary


class TextGraphEncoder(_GraphBackbone):
    """Names embedded by a frozen text encoder (``embed_fn``), projected, then graph convolution."""

    kind = "text"

    def __init__(self, spec: TextSpec, embed_fn: Callable[[list[str]], torch.Tensor], text_dim: int):
        super().__init__(spec.embed_dim, spec.width, spec.layers)
        self.spec, self.text_dim = spec, text_dim
        self.embed_fn = embed_fn
        self.obj_proj = nn.Linear(text_dim, spec.embed_dim)
        self.pred_proj = nn.Linear(text_dim, spec.embed_dim)
        self._names: dict[str, torch.Tensor] = {}

    def _embed(self, names: list[str]) -> torch.Tensor:
        missing = [n for n in dict.fromkeys(names) if n not in self._names]
        for n in missing:  # one at a time: a name's vector never depends on its batch
            with torch.no_grad():
                self._names[n] = self.embed_fn([n])[0].detach().float().cpu()
        dev = self.obj_proj.weight.device
        return torch.stack([self._names[n] for n in names]).to(dev, self.obj_proj.weight.dtype)

    def forward(self, graphs: list[Graph]):
        names, edges, node_g, edge_g, is_user = self._structure(graphs, image_node=False)
        obj = self.obj_proj(self._embed(names))
        pred = self.pred_proj(self._embed([p for _, p, _ in edges]))
        return self._run(graphs, obj, pred, edges, node_g, edge_g, is_user)

    def spec_dict(self) -> dict:
        return {**self.spec.model_dump(mode="json"), "text_dim": self.text_dim, "text_encoder": "clip_pooled"}


def clip_pooled_embedder(pipe) -> tuple[Callable[[list[str]], torch.Tensor], int]:
    """The pipeline's CLIP text encoder, pooled output, as a name embedder."""

    def embed(names: list[str]) -> torch.Tensor:
        return pipe._get_clip_prompt_embeds(names, device=pipe._execution_device)

    return embed, int(pipe.text_encoder.config.hidden_size)  # CLIPTextModel's pooler_output width


# ---------------------------------------------------------------------------- building and checking


def build_encoder(spec: dict | EncoderSpec, embed_fn=None, text_dim: int | None = None) -> _GraphBackbone:
    """An encoder from its spec: a config from benchmark.yaml, or a checkpoint's saved spec."""
    if isinstance(spec, dict):
        spec = dict(spec)
        kind = spec.get("kind")
        if kind == "cgip" and "object_name_to_idx" in spec:  # a checkpoint's self-contained spec
            objs, preds = spec.pop("object_name_to_idx"), spec.pop("pred_name_to_idx")
            n_obj, n_pred = spec.pop("num_objs"), spec.pop("num_preds")
            return CGIPEncoder(CGIPSpec(**spec), objs, preds, num_objs=n_obj, num_preds=n_pred)
        if kind == "text":
            spec.pop("text_encoder", None)
            text_dim = spec.pop("text_dim", text_dim)
        spec = CGIPSpec(**spec) if kind == "cgip" else TextSpec(**spec) if kind == "text" else None
        if spec is None:
            raise UserError(f"graph encoder: unknown kind {kind!r} (known: cgip, text)")
    if isinstance(spec, CGIPSpec):
        return CGIPEncoder.from_spec(spec)
    if embed_fn is None or text_dim is None:
        raise UserError("graph encoder 'text' needs the pipeline's text encoder")
    return TextGraphEncoder(spec, embed_fn, text_dim)


def check_state_dict(expected: nn.Module | dict, sd: dict, where: str) -> None:
    """UserError naming exactly which keys are missing, unexpected or of the wrong shape.

    ``expected`` is a module or a state dict holding the names and shapes the model needs."""
    own_sd = expected.state_dict() if isinstance(expected, nn.Module) else expected
    own = {k: tuple(v.shape) for k, v in own_sd.items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    missing = sorted(set(own) - set(got))
    unexpected = sorted(set(got) - set(own))
    shapes = [f"{k} {got[k]} vs model {own[k]}" for k in sorted(set(own) & set(got)) if own[k] != got[k]]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - 6} more)" if len(items) > 6 else ""
            problems.append(f"{label}: {', '.join(items[:6])}{more}")
    if problems:
        raise UserError(f"{where} does not match the model: {'; '.join(problems)}")


def load_checked(module: nn.Module, sd: dict, where: str) -> None:
    check_state_dict(module, sd, where)
    module.load_state_dict(sd, strict=True)
