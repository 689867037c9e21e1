"""FLUX.1-schnell + scene-graph tokens injected into double-stream blocks 7-12 + LoRA.

With ``ckpt`` the LoRA, encoder and injector come from a checkpoint directory (see
``_graph_lora_ckpt``); without it the generator attaches an untrained injector and LoRA,
which leave FLUX's images unchanged (a useful sanity run, identical to ``flux``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from relbench.io.content_hash import file_sha256
from relbench.models.flux import FluxArgs, FluxBase, draw
from relbench.models.pipeline import freeze_for_inference
from relbench.models.graph_specs import CGIPSpec, InjectionSpec, LoraSpec, TextSpec
from relbench.errors import UserError
from relbench.plugin.registry import register_generator


class GraphLoraArgs(FluxArgs):
    ckpt: str | None = Field(None, description="checkpoint directory written by the trainer, or a training "
                             "output directory (its best/, else last/) (--ckpt)")
    allow_other_base: bool = Field(False, description="with ckpt: accept a `model` other than the base the "
                                   "checkpoint was trained on (default: that base, and no other)")
    encoder: Annotated[CGIPSpec | TextSpec, Field(discriminator="kind")] | None = Field(
        None, description="graph encoder when no ckpt is given (default: kind: text)")
    lora: LoraSpec | None = Field(None, description="LoRA layout when no ckpt is given")
    injection: InjectionSpec | None = Field(None, description="injected blocks when no ckpt is given")
    init_seed: int = Field(0, description="seed for the untrained encoder/injector when no ckpt is given")


@register_generator("flux_graph_lora")
class FluxGraphLoraGenerator(FluxBase):
    """FLUX + graph tokens in blocks 7-12's joint attention + LoRA, from a trained checkpoint.

    Images depend on the prompt and the graph; requests are batched by size and number of
    triples, so no graph is ever padded and a request's image never depends on its batch.
    """

    Args = GraphLoraArgs
    uses = frozenset({"prompt", "graph"})
    version = "1"

    def __init__(self, args: GraphLoraArgs, ctx, pipe=None):
        if args.ckpt and (args.encoder or args.lora or args.injection):
            raise UserError("flux_graph_lora: encoder/lora/injection come from the checkpoint; drop them when ckpt is set")
        from relbench.models.graph_lora_ckpt import read_checkpoint, resolve_checkpoint_dir

        self.checkpoint = read_checkpoint(resolve_checkpoint_dir(args.ckpt)) if args.ckpt else None
        if self.checkpoint is not None and "model" not in args.model_fields_set and self.checkpoint.base_model:
            # the base it was trained on, not $RELBENCH_FLUX_MODEL or the hub default
            args = args.model_copy(update={"model": self.checkpoint.base_model})
        super().__init__(args, ctx, pipe=None)
        self.graph_lora = None
        self._ident: dict | None = None
        if pipe is not None:
            freeze_for_inference(pipe)
            self._pipe = pipe
            self.device, self.dtype = str(pipe._execution_device), pipe.transformer.dtype
            self.base_identity()  # digest the base weights before LoRA is added
            self._on_pipeline_loaded(pipe)

    def base_identity(self) -> dict:
        ident = super().base_identity()
        if self.checkpoint is not None and self._pipe is None:
            self._check_base(ident)
        return ident

    def _check_base(self, ident: dict) -> None:
        """The checkpoint's LoRA and graph parts only make sense on the weights they were trained on."""
        ck, args = self.checkpoint, self.args
        recorded = ck.config.get("base_identity") or {}
        now = {k: v for k, v in ident.items() if k not in ("device_type", "dtype")}
        same_name = _canonical(args.model) == _canonical(str(ck.base_model))
        # a local listing identifies files by size only, so a same-sized copy elsewhere is another base
        same = same_name and (recorded == now if recorded.get("source") in ("local", "hub") else True)
        if same or args.allow_other_base:
            return
        what = "has changed since training" if same_name else f"is not that base (model: {args.model})"
        raise UserError(f"flux_graph_lora: checkpoint {ck.path} was trained on {ck.base_model}, and the model "
                        f"{what}; drop `model` to use the recorded base, or set allow_other_base: true")

    def weights_identity(self):
        if self._ident is None:
            ident: dict = {"base": self.base_identity()}
            if self.checkpoint is not None:
                ident["ckpt"] = self.checkpoint.digest()
            else:
                files = {k: getattr(self.args.encoder, k, None) for k in ("vocab", "weights")}
                ident["encoder_files"] = {k: file_sha256(p) for k, p in files.items() if p} or None
            self._ident = ident
        return self._ident

    def _on_pipeline_loaded(self, pipe) -> None:
        import torch

        from relbench.models.graph_encoders import build_encoder, clip_pooled_embedder
        from relbench.models.graph_injection import attach_graph_lora
        from relbench.models.graph_lora_ckpt import load_checkpoint

        embed_fn, text_dim = clip_pooled_embedder(pipe)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.args.init_seed)
            if self.checkpoint is not None:
                self.graph_lora, _ = load_checkpoint(self.checkpoint.path, pipe.transformer, embed_fn, text_dim)
            else:
                encoder = build_encoder(self.args.encoder or TextSpec(), embed_fn, text_dim)
                self.graph_lora = attach_graph_lora(pipe.transformer, encoder, self.args.lora or LoraSpec(),
                                                    self.args.injection or InjectionSpec())
        # under cpu_offload the transformer's weights rest on the CPU between calls; the graph
        # parts are small and stay where the forward pass runs
        self.graph_lora.to(pipe._execution_device)
        freeze_for_inference(pipe, self.graph_lora)  # LoRA and graph parts too: see freeze_for_inference

    def _group_key(self, request):
        return (tuple(request.size), len(request.graph))

    def _draw_group(self, pipe, reqs):
        import torch

        with torch.no_grad(), self.graph_lora.conditioning([r.graph for r in reqs]):
            return draw(pipe, self.args, self.prompts, reqs, self.name)

    def close(self) -> None:
        self.graph_lora = None
        super().close()


def _canonical(model: str) -> str:
    """A local directory by its absolute path, a hub id as written."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model
