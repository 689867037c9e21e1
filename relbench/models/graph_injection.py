"""Graph tokens into FLUX's joint attention (chosen double-stream blocks) plus peft LoRA.

How a block sees the graph (GraphInjectionProcessor, installed with ``attn.set_processor``):
the graph tokens (one global + one per triple, projected to the model width) join the text
stream: they go through the block's text-stream key/value projections and key norm and are
placed after the text tokens, with identity rotary rows (cos 1, sin 0). Image and text
queries attend over [text, graph, image]. The block still returns text and image hidden
states at their original lengths (the graph tokens' own outputs would be dropped, so their
queries are never computed). What the graph changes is passed through a zero-initialised
projection:

    out = attn(q, K, V) + P_block(attn(q, [K; K_g], [V; V_g]) - attn(q, K, V))

so with P = 0 (an untrained injector) the block computes exactly FLUX's attention, and with
P = I exactly the joint attention. Cost: one extra attention call per injected block.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from relbench.models.graph_specs import InjectionSpec, LoraSpec
from relbench.spec.data import Graph
from relbench.errors import UserError

ADAPTER = "default"


class GraphInjector(nn.Module):
    """Token projections (shared) and one zero-initialised output projection per block."""

    def __init__(self, local_dim: int, global_dim: int, width: int, blocks: list[int]):
        super().__init__()
        self.blocks = [int(b) for b in blocks]
        self.local_proj = nn.Linear(local_dim, width)
        self.global_proj = nn.Linear(global_dim, width)
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.out = nn.ModuleDict({str(b): nn.Linear(width, width) for b in self.blocks})
        for lin in self.out.values():
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self._tokens: torch.Tensor | None = None
        self._key_mask: torch.Tensor | None = None

    def make_tokens(self, local, global_vec, mask):
        """(B, 1 + T, width) tokens: the global token first, then one per triple; key mask (B, 1 + T)."""
        dt = self.local_proj.weight.dtype
        tokens = torch.cat([self.global_proj(global_vec.to(dt))[:, None], self.local_proj(local.to(dt))], dim=1)
        key_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return self.norm(tokens), key_mask

    def set_tokens(self, tokens, key_mask) -> None:
        """Condition every following transformer call on these tokens until ``clear()``.

        The trainer needs this form: with gradient checkpointing the blocks run again during
        backward, after the forward call (and any context manager around it) has returned.
        """
        self._tokens, self._key_mask = tokens, (None if bool(key_mask.all()) else key_mask)

    def clear(self) -> None:
        self._tokens = self._key_mask = None

    @contextmanager
    def active(self, tokens, key_mask):
        """Make the processors see these tokens for the duration of a pipeline/transformer call."""
        self.set_tokens(tokens, key_mask)
        try:
            yield
        finally:
            self.clear()


class GraphInjectionProcessor:
    """FluxAttnProcessor plus graph tokens joining the text stream (see the module docstring)."""

    _attention_backend = None
    _parallel_config = None

    def __init__(self, injector: GraphInjector, block: int):
        from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

        self.injector, self.block = injector, str(block)
        self.plain = FluxAttnProcessor()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.embeddings import apply_rotary_emb
        from diffusers.models.transformers.transformer_flux import _get_qkv_projections

        graph = self.injector._tokens
        if graph is None or encoder_hidden_states is None:
            return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)

        q, k, v, eq, ek, ev = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)
        heads = lambda x: x.unflatten(-1, (-1, attn.head_dim))  # noqa: E731
        q, k, v = attn.norm_q(heads(q)), attn.norm_k(heads(k)), heads(v)
        eq, ek, ev = attn.norm_added_q(heads(eq)), attn.norm_added_k(heads(ek)), heads(ev)
        graph = graph.to(hidden_states.dtype)
        if attn.fused_projections:
            _, gk, gv = attn.to_added_qkv(graph).chunk(3, dim=-1)
        else:
            gk, gv = attn.add_k_proj(graph), attn.add_v_proj(graph)
        gk, gv = attn.norm_added_k(heads(gk)), heads(gv)

        n_txt = encoder_hidden_states.shape[1]
        query = torch.cat([eq, q], dim=1)
        key_raw = torch.cat([ek, k], dim=1)
        value = torch.cat([ev, v], dim=1)
        key_joint_raw = torch.cat([ek, gk, k], dim=1)
        value_joint = torch.cat([ev, gv, v], dim=1)
        key, key_joint = key_raw, key_joint_raw
        if image_rotary_emb is not None:
            cos, sin = image_rotary_emb
            n_g = gk.shape[1]
            ones = torch.ones(n_g, cos.shape[1], dtype=cos.dtype, device=cos.device)
            cos_j = torch.cat([cos[:n_txt], ones, cos[n_txt:]])
            sin_j = torch.cat([sin[:n_txt], torch.zeros_like(ones), sin[n_txt:]])  # identity rows
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key_raw, image_rotary_emb, sequence_dim=1)
            key_joint = apply_rotary_emb(key_joint_raw, (cos_j, sin_j), sequence_dim=1)

        mask = None
        if self.injector._key_mask is not None:
            B, L = query.shape[0], key.shape[1]
            full = torch.ones(B, L + gk.shape[1], dtype=torch.bool, device=query.device)
            full[:, n_txt : n_txt + gk.shape[1]] = self.injector._key_mask.to(query.device)
            mask = full[:, None, None, :]

        base = dispatch_attention_fn(query, key, value, attn_mask=attention_mask,
                                     backend=self._attention_backend, parallel_config=self._parallel_config)
        joint = dispatch_attention_fn(query, key_joint, value_joint, attn_mask=mask,
                                      backend=self._attention_backend, parallel_config=self._parallel_config)
        base = base.flatten(2, 3)
        proj = self.injector.out[self.block]
        out = (base + proj((joint.flatten(2, 3) - base).to(proj.weight.dtype)).to(base.dtype)).to(query.dtype)

        enc_out, img_out = out.split_with_sizes([n_txt, out.shape[1] - n_txt], dim=1)
        img_out = attn.to_out[1](attn.to_out[0](img_out.contiguous()))
        enc_out = attn.to_add_out(enc_out.contiguous())
        return img_out, enc_out


class GraphLora(nn.Module):
    """The trainable additions to FLUX: graph encoder + injector (LoRA lives in the transformer)."""

    def __init__(self, encoder: nn.Module, injector: GraphInjector, lora: LoraSpec, injection: InjectionSpec):
        super().__init__()
        self.encoder, self.injector = encoder, injector
        self.lora, self.injection = lora, injection

    def tokens(self, graphs: list[Graph]):
        local, global_vec, mask = self.encoder(graphs)
        return self.injector.make_tokens(local, global_vec, mask)

    @contextmanager
    def conditioning(self, graphs: list[Graph]):
        """``with graph_lora.conditioning(graphs): transformer(...)`` conditions on these graphs."""
        tokens, key_mask = self.tokens(graphs)
        with self.injector.active(tokens, key_mask):
            yield


def transformer_width(transformer) -> int:
    c = transformer.config
    return int(c.num_attention_heads * c.attention_head_dim)


def _check_blocks(transformer, blocks: list[int], what: str) -> None:
    n = len(transformer.transformer_blocks)
    bad = [b for b in blocks if not 0 <= b < n]
    if bad or not blocks:
        raise UserError(f"{what}: blocks {bad or blocks} do not exist (the transformer has double-stream blocks 0-{n - 1})")


def add_lora(transformer, spec: LoraSpec) -> None:
    """peft LoRA on the spec's modules (LoRA B starts at zero, so outputs are unchanged)."""
    from peft import LoraConfig

    _check_blocks(transformer, spec.blocks, "lora")
    cfg = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=0.0, init_lora_weights=True,
                     target_modules=spec.target_modules())
    try:
        transformer.add_adapter(cfg, adapter_name=ADAPTER)
    except ValueError as exc:
        raise UserError(f"lora: {str(exc).splitlines()[0]}") from None
    expected = {f"transformer_blocks.{b}.{t}" for b in spec.blocks for t in spec.targets}
    missing = expected - set(lora_module_names(transformer))
    if missing:
        raise UserError(f"lora: target modules not found in the transformer: {', '.join(sorted(missing))}")


def lora_module_names(model) -> list[str]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return sorted(name for name, m in model.named_modules() if isinstance(m, BaseTunerLayer))


def lora_state_dict(transformer) -> dict[str, torch.Tensor]:
    """LoRA weights under diffusers' names, without the ``transformer.`` prefix."""
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(transformer, adapter_name=ADAPTER)


def install_injection(transformer, injector: GraphInjector) -> None:
    for b in injector.blocks:
        transformer.transformer_blocks[b].attn.set_processor(GraphInjectionProcessor(injector, b))


def attach_graph_lora(transformer, encoder: nn.Module, lora: LoraSpec, injection: InjectionSpec) -> GraphLora:
    """Add LoRA and graph injection to a FluxTransformer2DModel; returns the new trainable parts.

    At return the transformer computes exactly what it did before (zero LoRA B, zero injector
    output projections), whatever the graph.
    """
    _check_blocks(transformer, injection.blocks, "injection")
    add_lora(transformer, lora)
    width = transformer_width(transformer)
    injector = GraphInjector(encoder.local_dim, encoder.global_dim, width, injection.blocks)
    param = next(transformer.parameters())
    injector.to(device=param.device, dtype=param.dtype)
    encoder.to(device=param.device)
    install_injection(transformer, injector)
    return GraphLora(encoder, injector, lora, injection)
