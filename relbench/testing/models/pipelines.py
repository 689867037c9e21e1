"""Tiny random text-to-image pipelines of the main diffusers families, built from configs.

Shaped as diffusers' own pipeline tests build theirs (tests/pipelines/*/test_*.py): the same
denoiser, VAE and text-encoder configs, with relbench's character tokenizers instead of the
hub's tiny ones, so nothing is downloaded. ``save_tiny_pipeline`` writes one in the hub
layout (model_index.json and a folder per component), which is what users point ``model`` at.
"""

from __future__ import annotations

from pathlib import Path

from relbench.testing.models.flux import char_tokenizer, tiny_flux_pipeline

#: CLIP's context length in the tiny pipelines (the character tokenizers need more than 16)
CLIP_LENGTH = 48


def _clip_config(vocab_size: int, **kw):
    from transformers import CLIPTextConfig

    base = dict(bos_token_id=0, eos_token_id=2, pad_token_id=0, hidden_size=32, intermediate_size=37,
                layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2, hidden_act="gelu",
                vocab_size=vocab_size, projection_dim=32, max_position_embeddings=CLIP_LENGTH)
    return CLIPTextConfig(**{**base, **kw})


def _t5(vocab_size: int, seed: int):
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                   relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=2,
                                   decoder_start_token_id=0))


def _vae(seed: int, blocks: int, **kw):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=[4, 8][:blocks] if blocks <= 2 else [8] * blocks, in_channels=3,
                         out_channels=3, down_block_types=["DownEncoderBlock2D"] * blocks,
                         up_block_types=["UpDecoderBlock2D"] * blocks, latent_channels=4,
                         norm_num_groups=kw.pop("norm_num_groups", 2), **kw)


def _unet(seed: int, **kw):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=32, in_channels=4, out_channels=4, time_cond_proj_dim=None,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **kw)


def tiny_sd15_pipeline(seed: int = 0):
    """StableDiffusionPipeline: UNet (4, 8) channels, CLIP text encoder, no safety checker."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    tok = char_tokenizer(CLIP_LENGTH)
    unet = _unet(seed, block_out_channels=(4, 8), layers_per_block=1, cross_attention_dim=32, norm_num_groups=2)
    torch.manual_seed(seed + 1)
    text_encoder = CLIPTextModel(_clip_config(len(tok)))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, steps_offset=1,
                              set_alpha_to_one=False)
    return _ready(StableDiffusionPipeline(unet=unet, scheduler=scheduler, vae=_vae(seed + 2, 2), text_encoder=text_encoder,
                                          tokenizer=tok, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False))


def tiny_sdxl_pipeline(seed: int = 0):
    """StableDiffusionXLPipeline: two CLIP encoders (the second with a projection), text_time
    conditioning (6 time ids x 8 + 32 pooled = 80 inputs), as diffusers' SDXL tests."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tok, tok2 = char_tokenizer(CLIP_LENGTH), char_tokenizer(CLIP_LENGTH)
    unet = _unet(seed, block_out_channels=(2, 4), layers_per_block=2, attention_head_dim=(2, 4),
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                 transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
                 cross_attention_dim=64, norm_num_groups=1)
    torch.manual_seed(seed + 1)
    te = CLIPTextModel(_clip_config(len(tok)))
    torch.manual_seed(seed + 2)
    te2 = CLIPTextModelWithProjection(_clip_config(len(tok2)))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear",
                                       timestep_spacing="leading")
    return _ready(StableDiffusionXLPipeline(unet=unet, scheduler=scheduler, vae=_vae(seed + 3, 2, sample_size=128),
                                            text_encoder=te, tokenizer=tok, text_encoder_2=te2, tokenizer_2=tok2))


def tiny_sd3_pipeline(seed: int = 0):
    """StableDiffusion3Pipeline: an MMDiT of one layer, two projecting CLIPs and a T5."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    toks = [char_tokenizer(CLIP_LENGTH), char_tokenizer(CLIP_LENGTH), char_tokenizer(512)]
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                                        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
                                        pooled_projection_dim=64, out_channels=4)
    encoders = []
    for i in range(2):
        torch.manual_seed(seed + 1 + i)
        encoders.append(CLIPTextModelWithProjection(_clip_config(len(toks[i]))))
    vae = _vae(seed + 4, 1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
               scaling_factor=1.5035)
    return _ready(StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
        text_encoder=encoders[0], tokenizer=toks[0], text_encoder_2=encoders[1], tokenizer_2=toks[1],
        text_encoder_3=_t5(len(toks[2]), seed + 3), tokenizer_3=toks[2]))


def tiny_pixart_sigma_pipeline(seed: int = 0):
    """PixArtSigmaPipeline: a two-layer PixArt transformer (learned sigma) over a T5 encoder.

    Its sample_size (8) has no resolution bins: run it with
    ``pipeline_kwargs: {use_resolution_binning: false}``.
    """
    import torch
    from diffusers import DDIMScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    tok = char_tokenizer(512)
    torch.manual_seed(seed)
    transformer = PixArtTransformer2DModel(sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8,
                                           num_attention_heads=3, caption_channels=32, in_channels=4,
                                           cross_attention_dim=24, out_channels=8, attention_bias=True,
                                           activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
                                           norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6)
    return _ready(PixArtSigmaPipeline(transformer=transformer, vae=_vae(seed + 2, 2), text_encoder=_t5(len(tok), seed + 1),
                                      tokenizer=tok, scheduler=DDIMScheduler()))


#: family -> (builder, pipeline_kwargs the tiny model needs)
TINY_PIPELINES = {
    "sd15": (tiny_sd15_pipeline, {}),
    "sdxl": (tiny_sdxl_pipeline, {}),
    "sd3": (tiny_sd3_pipeline, {"max_sequence_length": 48}),
    "pixart_sigma": (tiny_pixart_sigma_pipeline, {"use_resolution_binning": False, "max_sequence_length": 48}),
    "flux": (lambda seed=0: tiny_flux_pipeline(seed, clip_max_length=CLIP_LENGTH), {"max_sequence_length": 48}),
}


def save_tiny_pipeline(family: str, directory, seed: int = 0) -> Path:
    """Build the tiny ``family`` pipeline and save it in the hub layout under ``directory``."""
    builder, _ = TINY_PIPELINES[family]
    directory = Path(directory)
    builder(seed).save_pretrained(directory)
    return directory


def _ready(pipe):
    for module in pipe.components.values():
        if hasattr(module, "eval"):
            module.eval()  # built from configs, so in train mode (dropout) until told otherwise
    pipe.set_progress_bar_config(disable=True)
    return pipe
