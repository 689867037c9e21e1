"""A tiny random GLIGEN pipeline (StableDiffusionGLIGENPipeline) built from configs, for tests.

Shaped like diffusers' own fast test (tests/pipelines/stable_diffusion_gligen): a two-block
UNet with gated self-attention (``attention_type="gated"``, so it has the box projection and
the fusers), a small VAE and CLIP text encoder, a DDIM scheduler, no safety checker. Nothing
is downloaded: the tokenizer is the character-level one of the tiny FLUX. Same ``seed``, same
weights on any machine.
"""

from __future__ import annotations

from relbench.testing.models.flux import char_tokenizer


def tiny_gligen_pipeline(seed: int = 0, max_length: int = 32):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionGLIGENPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
        attention_type="gated",
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    tokenizer = char_tokenizer(max_length)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=0, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(tokenizer), projection_dim=32,
        max_position_embeddings=max_length,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    pipe = StableDiffusionGLIGENPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                         scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                         requires_safety_checker=False)
    for module in (unet, vae, text_encoder):
        module.eval()
    with torch.no_grad():  # random init leaves the gates at 0 (GLIGEN starts as plain SD): open them
        for name, p in unet.named_parameters():
            if name.endswith(("alpha_attn", "alpha_dense")):
                p.fill_(1.0)
    pipe.set_progress_bar_config(disable=True)
    return pipe
