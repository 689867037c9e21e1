"""Tiny random vision-language models saved in the Hugging Face hub layout (no downloads).

Each builder writes config.json, model.safetensors, the tokenizer files, the preprocessor /
processor config and a chat template into a directory that ``AutoModelForImageTextToText`` and
``AutoProcessor`` load with ``local_files_only=True``, exactly as a real snapshot would be read.
The tokenizer is a small byte-level BPE trained locally (the ``tokenizers`` library) on a few
words, with the family's special tokens; the chat templates are short versions of the real
ones (same role markers and image placeholders). Families: Qwen3-VL (GenEval 2's judge),
Qwen2.5-VL (SpatialScore's base) and Idefics3 (SmolVLM's architecture, a cheap judge).
"""

from __future__ import annotations

import os
from pathlib import Path

FAMILIES = ("qwen3_vl", "qwen2_5_vl", "idefics3")

_CORPUS = [" Yes yes No no A B" * 20] + [
    "Yes yes No no Yes. No. yes no A B A: B: The answer is yes. The answer is no.",
    "Does this image show a dog riding a horse? Answer the question with Yes or No.",
    "Which caption matches the image? Answer with A or B. Is there a cat in the image?",
    "Answer in one word. a cup on the table, a person holding a bag, a man wearing a hat",
    "user assistant system Assistant: User: left right above below on top of next to",
]

_QWEN_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]
_QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_IDEFICS_SPECIAL = (
    ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>", "<global-img>"]
    + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
)
_IDEFICS_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _tokenizer(special: list[str], vocab_size: int, template: str):
    """A byte-level BPE with the family's special tokens (ids vocab_size - len(special) ...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(special), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=special[0], pad_token=special[0])
    fast.add_special_tokens({"additional_special_tokens": special[1:]})
    fast.chat_template = template
    return fast


def _save(model, processor, directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    return str(directory)


#: the answers the tiny judges' heads are built to say (first tokens of each spelling), GenEval 2's
#: count spellings included (the word, capitalised, with a leading space; the digit; "other")
_COUNTS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "other")
_ANSWERS = ("Yes", "yes", " Yes", " yes", "No", "no", " No", " no", "A", " A", "B", " B")
_COUNT_ANSWERS = tuple(
    f"{space}{form}" for w in _COUNTS for form in (w, w.capitalize()) for space in ("", " ")
) + tuple(str(i) for i in range(1, 11))
_COUNT_SCALE = 0.5


def _informative_head(model, tok) -> None:
    """Make the answer depend on the input. At the default initialisation (std 0.02) the last
    hidden state is the last prompt token's embedding plus almost nothing, and every logit is
    near 0: P(yes) is about 4/vocab for every input, so a bug that reads the wrong position or
    loses the image moves it by ~1e-4 and no comparison can catch it. Scaling the text decoder's
    matrices by 5 lets attention carry the image and question into the last position, and the
    answer tokens' head rows N(0, 1) turn that into P(yes) from ~1e-4 to ~0.3."""
    import torch

    with torch.no_grad():
        for name, p in model.get_decoder().named_parameters():
            if p.dim() >= 2 and "embed" not in name:
                p.mul_(5.0)
        head = model.get_output_embeddings().weight
        first = lambda answers: sorted({tok.encode(a, add_special_tokens=False)[0] for a in answers})  # noqa: E731
        ids = first(_ANSWERS)
        head[ids] = torch.randn(len(ids), head.shape[1])
        # the count spellings' first tokens after the others, at a smaller scale: they get
        # probability that depends on the input without drowning yes / no / A / B
        counts = [i for i in first(_COUNT_ANSWERS) if i not in ids]
        head[counts] = _COUNT_SCALE * torch.randn(len(counts), head.shape[1])


def make_tiny_vlm(family: str, directory: str | os.PathLike, seed: int = 0, informative: bool = True) -> str:
    """Build and save a tiny random VLM of ``family`` (one of FAMILIES); returns the directory.

    informative: answer logits that depend on the image and question (_informative_head);
    False keeps the plain random initialisation (near-uniform next token)."""
    import torch
    from transformers import AutoModelForImageTextToText

    if family not in FAMILIES:
        raise ValueError(f"unknown tiny VLM family {family!r}; allowed: {', '.join(FAMILIES)}")
    torch.manual_seed(seed)
    d = Path(directory)
    if family in ("qwen3_vl", "qwen2_5_vl"):
        tok = _tokenizer(_QWEN_SPECIAL, 320, _QWEN_TEMPLATE)
        ids = {t: tok.convert_tokens_to_ids(t) for t in _QWEN_SPECIAL}
        token_ids = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                         vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
        eos = ids["<|endoftext|>"]
        text = dict(vocab_size=len(tok), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=8)
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=32,
                      spatial_merge_size=2, temporal_patch_size=2)
        if family == "qwen3_vl":
            from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLProcessor, Qwen3VLVideoProcessor

            config = Qwen3VLConfig(
                text_config=dict(text, rope_scaling={"rope_type": "default", "mrope_section": [2, 1, 1],
                                                     "mrope_interleaved": True}),
                vision_config=dict(vision, patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[1]),
                **token_ids,
            )
            image_processor = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2,
                                                    min_pixels=32 * 32, max_pixels=128 * 128)
            video_processor = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2)
            processor = Qwen3VLProcessor(image_processor=image_processor, tokenizer=tok,
                                         video_processor=video_processor, chat_template=_QWEN_TEMPLATE)
        else:
            from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

            config = Qwen2_5_VLConfig(
                text_config=dict(text, rope_scaling={"rope_type": "default", "mrope_section": [2, 1, 1]}),
                vision_config=dict(vision, patch_size=14, window_size=56, fullatt_block_indexes=[1]),
                **token_ids,
            )
            image_processor = Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2,
                                                    min_pixels=28 * 28, max_pixels=112 * 112)
            video_processor = Qwen2VLVideoProcessor(patch_size=14, merge_size=2, temporal_patch_size=2)
            processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tok,
                                            video_processor=video_processor, chat_template=_QWEN_TEMPLATE)
    else:
        from transformers import Idefics3Config, Idefics3ImageProcessor, Idefics3Processor

        tok = _tokenizer(_IDEFICS_SPECIAL, 360, _IDEFICS_TEMPLATE)
        config = Idefics3Config(
            text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             pad_token_id=tok.pad_token_id),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                               image_size=32, patch_size=8),
            scale_factor=2, image_token_id=tok.convert_tokens_to_ids("<image>"),
        )
        # image_seq_len = (32/8)^2 / 2^2 = 4 tokens per crop; a 64x64 image -> 2x2 crops + global view
        image_processor = Idefics3ImageProcessor(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
        processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4,
                                      chat_template=_IDEFICS_TEMPLATE)
    model = AutoModelForImageTextToText.from_config(config).eval()
    if family == "qwen2_5_vl":  # as Qwen2.5-VL-Instruct's generation_config.json
        model.generation_config.repetition_penalty = 1.05
    if informative:
        _informative_head(model, tok)
    return _save(model, processor, d)


def geneval2_probabilities(model, processor, image, question: str, answers, repetition_penalty: float | None = None):
    """GenEval 2's evaluation.py (send_message_with_image) for ONE question, step by step: the
    chat template applied to one unbatched conversation, generate(max_new_tokens=1,
    do_sample=False, output_scores=True, return_dict_in_generate=True) with the model's own
    generation_config (so its repetition_penalty applies: 1.05 in Qwen2.5-VL-Instruct), the
    softmax of the first step's scores, and for each spelling of an answer group the probability
    of ``tokenizer.encode(spelling)[0]`` added up (as there, not deduplicated).

    repetition_penalty: None keeps the generation config's; a number overrides it (1.0 = off).
    """
    import torch

    msg = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]
    enc = processor.apply_chat_template(msg, tokenize=True, add_generation_prompt=True, return_dict=True,
                                        return_tensors="pt").to(model.device)
    kw = {} if repetition_penalty is None else {"repetition_penalty": repetition_penalty}
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=1, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, **kw)
    probs = torch.softmax(out.scores[0], dim=-1)
    return [sum(probs[0, processor.tokenizer.encode(s)[0]].item() for s in group) for group in answers]
