"""GPU throughput of full-size FLUX.1-schnell (random weights, no download): images/s, peak
memory and model FLOP utilisation (MFU) against the device's dense bf16 peak.

The architecture is FLUX.1-schnell's (19 double + 38 single blocks, 24 heads x 128,
joint_attention_dim 4096, pooled 768, no guidance embedding) with FLUX's VAE decoder;
weights are random, which does not change the arithmetic. Text embeddings are random
tensors of T5 length ``--t5-len`` (the generator caches them per prompt, so the text
encoders are off the per-image path). It runs the same FluxPipeline call as the generator
(per-request CPU generators, 256x256, 4 steps, guidance 0, bf16), optionally with the graph
injection + LoRA of flux_graph_lora (``--graph``).

FLOPs are counted, not estimated: torch.utils.flop_counter over one transformer forward and
one VAE decode at batch 1 (matmuls, attention, convolutions), times steps and images.

    python benchmarks/gpu_flux.py [--batches 1 4 8 16] [--graph] [--peak-tflops 989]
    python benchmarks/gpu_flux.py --tiny   # CPU dry run of the same code on the tiny model
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCHNELL = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
               num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
               guidance_embeds=False, axes_dims_rope=[16, 56, 56])
FLUX_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                layers_per_block=2, norm_num_groups=32, use_quant_conv=False, use_post_quant_conv=False,
                scaling_factor=0.3611, shift_factor=0.1159, sample_size=1024)
# dense bf16 tensor-core peaks (vendor datasheets), matched against torch.cuda.get_device_name()
PEAKS_TFLOPS = [("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("GH200", 989.0),
                ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0), ("L4", 121.0)]


def peak_for(name: str) -> float | None:
    for key, tflops in PEAKS_TFLOPS:
        if key in name:
            return tflops
    return None


def build(tiny: bool, device: str, dtype):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    if tiny:
        from relbench.testing.models.flux import tiny_flux_pipeline

        pipe = tiny_flux_pipeline()
        pipe.text_encoder = pipe.text_encoder_2 = pipe.tokenizer = pipe.tokenizer_2 = None
        return pipe.to(device, dtype)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build directly in bf16 on the GPU: 12B params, no fp32 copy
    try:
        with torch.device(device):
            transformer = FluxTransformer2DModel(**SCHNELL)
            vae = AutoencoderKL(**FLUX_VAE)
    finally:
        torch.set_default_dtype(previous)
    transformer.eval()  # already bf16: built under the default dtype
    vae.eval()
    shift = dict(base_image_seq_len=256, max_image_seq_len=4096, base_shift=0.5, max_shift=1.15, shift=1.0,
                 use_dynamic_shifting=False)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**shift), vae=vae, text_encoder=None,
                        tokenizer=None, text_encoder_2=None, tokenizer_2=None, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def count_flops(pipe, size: int, t5_len: int, device: str, dtype) -> tuple[float, float]:
    """FLOPs of one transformer forward and one VAE decode for one image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    tr = pipe.transformer
    lat = size // pipe.vae_scale_factor
    n_img = (lat // 2) ** 2
    x = torch.randn(1, n_img, tr.config.in_channels, device=device, dtype=dtype)
    ctx = torch.randn(1, t5_len, tr.config.joint_attention_dim, device=device, dtype=dtype)
    pooled = torch.randn(1, tr.config.pooled_projection_dim, device=device, dtype=dtype)
    img_ids = pipe._prepare_latent_image_ids(1, lat // 2, lat // 2, device, dtype)
    txt_ids = torch.zeros(t5_len, 3, device=device, dtype=dtype)
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc:
            tr(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled,
               timestep=torch.ones(1, device=device, dtype=dtype), img_ids=img_ids, txt_ids=txt_ids, return_dict=False)
        tr_flops = fc.get_total_flops()
        z = torch.randn(1, pipe.vae.config.latent_channels, lat, lat, device=device, dtype=dtype)
        with FlopCounterMode(display=False) as fc:
            pipe.vae.decode(z, return_dict=False)
        vae_flops = fc.get_total_flops()
    return float(tr_flops), float(vae_flops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--t5-len", type=int, default=256, help="T5 tokens (schnell: 256)")
    ap.add_argument("--iters", type=int, default=3, help="timed pipeline calls per batch size (after 1 warm-up)")
    ap.add_argument("--graph", action="store_true", help="also attach flux_graph_lora's injection + LoRA")
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the dense bf16 peak")
    ap.add_argument("--tiny", action="store_true", help="CPU dry run on the tiny model (checks the script only)")
    ap.add_argument("--out", help="also write the figures as JSON here")
    args = ap.parse_args()

    import torch

    if args.tiny:
        device, dtype = "cpu", torch.float32
        torch.set_num_threads(1)
        args.t5_len, args.size = min(args.t5_len, 32), min(args.size, 64)
    else:
        if not torch.cuda.is_available():
            print("gpu_flux.py: no CUDA device visible; this benchmark needs a GPU "
                  "(run `python benchmarks/gpu_flux.py --tiny` for a CPU dry run of the code)", file=sys.stderr)
            raise SystemExit(2)
        device, dtype = "cuda", torch.bfloat16
        torch.backends.cuda.matmul.allow_tf32 = True

    pipe = build(args.tiny, device, dtype)
    n_params = sum(p.numel() for p in pipe.transformer.parameters())
    if args.graph:
        from relbench.models.graph_encoders import CGIPEncoder
        from relbench.models.graph_injection import attach_graph_lora
        from relbench.models.graph_specs import CGIPSpec, InjectionSpec, LoraSpec

        enc = CGIPEncoder(CGIPSpec(), {f"o{i}": i for i in range(179)} | {"__image__": 179},
                          {f"p{i}": i for i in range(45)} | {"__in_image__": 45})
        graph_lora = attach_graph_lora(pipe.transformer, enc, LoraSpec(), InjectionSpec())
        graph_lora.eval()

    tr_flops, vae_flops = count_flops(pipe, args.size, args.t5_len, device, dtype)
    img_flops = args.steps * tr_flops + vae_flops
    name = "cpu (tiny dry run)" if args.tiny else torch.cuda.get_device_name()
    peak = args.peak_tflops or (None if args.tiny else peak_for(name))
    print(f"device: {name}; torch {torch.__version__}; transformer {n_params / 1e9:.2f}B params "
          f"({'tiny' if args.tiny else 'FLUX.1-schnell architecture'}, random weights), {args.size}x{args.size}, "
          f"{args.steps} steps, T5 length {args.t5_len}, {str(dtype).replace('torch.', '')}"
          f"{', graph injection + LoRA r16 on blocks 7-12' if args.graph else ''}")
    print(f"counted FLOPs per image: transformer {tr_flops / 1e9:,.1f} GFLOP/step x {args.steps} + VAE decode "
          f"{vae_flops / 1e9:,.1f} GFLOP = {img_flops / 1e9:,.1f} GFLOP; peak bf16 dense: "
          f"{f'{peak:.0f} TFLOP/s' if peak else 'unknown (pass --peak-tflops)'}")
    results = {"device": name, "torch": torch.__version__, "transformer_params": n_params, "size": args.size,
               "steps": args.steps, "t5_len": args.t5_len, "dtype": str(dtype).replace("torch.", ""),
               "graph_lora": args.graph, "gflop_per_image": round(img_flops / 1e9, 1), "peak_tflops": peak,
               "batches": []}
    print(f"{'batch':>5} {'images/s':>9} {'ms/image':>9} {'peak mem GiB':>12} {'TFLOP/s':>8} {'MFU':>6}")

    gen = torch.Generator("cpu")
    for batch in args.batches:
        embeds = torch.randn(batch, args.t5_len, pipe.transformer.config.joint_attention_dim, generator=gen).to(device, dtype)
        pooled = torch.randn(batch, pipe.transformer.config.pooled_projection_dim, generator=gen).to(device, dtype)

        def call():
            gens = [torch.Generator("cpu").manual_seed(i) for i in range(batch)]
            if args.graph:
                from relbench.spec.data import Triple

                graphs = [(Triple("o1", "p1", "o2"),)] * batch
                with graph_lora.conditioning(graphs):
                    return pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=args.size, width=args.size,
                                num_inference_steps=args.steps, guidance_scale=0.0, generator=gens, output_type="np",
                                return_dict=False, max_sequence_length=args.t5_len)
            return pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=args.size, width=args.size,
                        num_inference_steps=args.steps, guidance_scale=0.0, generator=gens, output_type="np",
                        return_dict=False, max_sequence_length=args.t5_len)

        try:
            with torch.no_grad():
                call()  # warm-up
                if device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                for _ in range(args.iters):
                    call()
                if device == "cuda":
                    torch.cuda.synchronize()
                dt = (time.perf_counter() - t0) / args.iters
        except torch.OutOfMemoryError:
            print(f"{batch:>5} out of memory")
            results["batches"].append({"batch": batch, "out_of_memory": True})
            torch.cuda.empty_cache()
            break
        ips = batch / dt
        mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        achieved = img_flops * ips / 1e12
        mfu = f"{achieved / peak:.1%}" if peak else "n/a"
        print(f"{batch:>5} {ips:>9.2f} {1000 * dt / batch:>9.1f} {mem:>12.1f} {achieved:>8.1f} {mfu:>6}")
        results["batches"].append({"batch": batch, "images_per_s": round(ips, 3), "peak_mem_gib": round(mem, 2) if device == "cuda" else None,
                                   "tflops": round(achieved, 1),
                                   "mfu": round(achieved / peak, 4) if peak else None})
    if args.out:
        from record import write_json

        write_json(args.out, results, device=name)


if __name__ == "__main__":
    main()
