"""Tiny random-weight models, built offline from configs and saved like real checkpoints.

No weights can be downloaded here, so every model backend is tested on models that are the real
architectures at toy sizes. Each builder constructs the components from configs with a fixed
torch seed, builds its tokenizer offline (a byte-level vocabulary: the 256 `bytes_to_unicode`
characters plus the model's special tokens, no merges), saves everything with `save_pretrained`
in safetensors form and returns the folder. Tests then load that folder through exactly the
`from_pretrained` code path that a user's real checkpoint takes.

Sizes (all float32): InstructPix2Pix about 1 MB, Flux Kontext about 1 MB, Qwen-Image-Edit about
1 MB, LLaVA and Qwen2.5-VL well under 1 MB. Each builds in well under a second after imports.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# Chat templates in the form the published checkpoints ship (llava-hf/llava-1.5-*-hf and
# Qwen/Qwen2.5-VL-*-Instruct), so the backends are exercised against realistic templates:
# LLaVA 1.5's drops system messages, Qwen's renders them.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def byte_vocab(extra: tuple[str, ...] = ()) -> dict[str, int]:
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    for token in extra:
        vocab.setdefault(token, len(vocab))
    return vocab


# ---- tokenizers ---------------------------------------------------------------------------


def clip_tokenizer(model_max_length: int = 77):
    """A byte-level CLIP tokenizer (CLIP marks word ends with `</w>`, so both forms exist)."""
    from transformers import CLIPTokenizer

    chars = list(bytes_to_unicode().values())
    vocab = {ch: i for i, ch in enumerate(chars)}
    for ch in chars:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def t5_tokenizer(model_max_length: int = 512):
    """A unigram T5 tokenizer over single characters (ids 0..2 are pad, eos, unk as in T5)."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(chr(c), -3.0) for c in range(32, 127)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)


def qwen_tokenizer():
    from transformers import Qwen2Tokenizer

    tok = Qwen2Tokenizer(
        vocab=byte_vocab(),
        merges=[],
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tok.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS[1:])})
    tok.add_special_tokens({"pad_token": "<|endoftext|>"})
    return tok


def llava_tokenizer():
    """A byte-level tokenizer with LLaVA's `<image>` token and Llama-style BOS/EOS/pad."""
    from transformers import Qwen2Tokenizer

    tok = Qwen2Tokenizer(
        vocab=byte_vocab(),
        merges=[],
        unk_token=None,
        bos_token=None,
        eos_token="</s>",
        pad_token="<pad>",
    )
    tok.add_special_tokens(
        {"eos_token": "</s>", "pad_token": "<pad>", "additional_special_tokens": ["<image>"]}
    )
    return tok


# ---- transformers VLMs ---------------------------------------------------------------------


def _qwen2_5_vl_parts(hidden: int = 32, *, processor_class: str = "Qwen2_5_VLProcessor"):
    """Tiny Qwen2.5-VL model, tokenizer and processor (needs the no-torchvision workaround)."""
    import torch
    import transformers
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessor,
    )

    from spairs_assets.models.loading import ensure_processors_work_without_torchvision

    ensure_processors_work_without_torchvision()
    tok = qwen_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_scaling": {"mrope_section": [2, 2, 4], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    # Small images: 56x56 to 112x112 pixels, i.e. 4 to 16 patches of 14 px, 1 to 4 merged tokens.
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112)
    processor = getattr(transformers, processor_class)(
        image_processor=image_processor, tokenizer=tok, chat_template=QWEN_VL_CHAT_TEMPLATE
    )
    return model, tok, processor


def build_tiny_qwen2_5_vl(path: str | Path) -> Path:
    """Tiny `Qwen2_5_VLForConditionalGeneration` + `Qwen2_5_VLProcessor` with a chat template."""
    path = Path(path)
    model, _tok, processor = _qwen2_5_vl_parts()
    model.save_pretrained(path, safe_serialization=True)
    processor.save_pretrained(path)
    return path


def build_tiny_llava(path: str | Path) -> Path:
    """Tiny `LlavaForConditionalGeneration` (CLIP vision tower, Llama text model) + processor."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    path = Path(path)
    tok = llava_tokenizer()
    image_token_id = tok.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
        projection_dim=16,
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}, do_center_crop=True
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    processor.save_pretrained(path)
    return path


# ---- diffusers editing pipelines ------------------------------------------------------------


def build_tiny_instruct_pix2pix(path: str | Path) -> Path:
    """Tiny `StableDiffusionInstructPix2PixPipeline`: 8-channel UNet, 2-level VAE, CLIP text."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path)
    tok = clip_tokenizer()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=8,  # noisy latents + image latents
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),  # 4 levels: 8x downsampling, as in SD
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            projection_dim=32,
        )
    )
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


# FLUX.1's scheduler settings (the same for the tiny and the real-size model).
FLUX_SCHEDULER = dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                      base_image_seq_len=256, max_image_seq_len=4096)

# A FLUX-shaped model small enough for CPU tests: 16 latent channels packed 2x2, an 8x VAE,
# guidance embeddings. `bench/flux_kontext_gpu.py` passes the published real-size configs.
TINY_FLUX = {
    "transformer": dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                        pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 6, 6)),
    "vae": dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16),
                layers_per_block=1, latent_channels=16, norm_num_groups=8, use_quant_conv=False,
                use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611,
                sample_size=64),
    "clip": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 max_position_embeddings=77, projection_dim=32),
    "t5": dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
               relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
               is_encoder_decoder=False, pad_token_id=0, eos_token_id=1),
}


def flux_components(sizes: dict = TINY_FLUX) -> dict:
    """The modules of a `FluxKontextPipeline` with random weights, built from `sizes` (configs of
    the transformer, VAE, CLIP and T5 text encoders; vocabulary sizes default to the offline
    tokenizers'). Seeded, so the same sizes give the same weights."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tok = clip_tokenizer()
    tok2 = t5_tokenizer()
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(**sizes["transformer"])
    vae = AutoencoderKL(**sizes["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**{
        "vocab_size": len(tok), **sizes["clip"], "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}))
    text_encoder_2 = T5EncoderModel(T5Config(**{"vocab_size": len(tok2), **sizes["t5"]}))
    return dict(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tok2,
        transformer=transformer,
    )


def build_tiny_flux_kontext(path: str | Path) -> Path:
    """Tiny `FluxKontextPipeline`: FLUX-shaped (16 latent channels, 8x VAE, guidance embeds)."""
    from diffusers import FluxKontextPipeline

    path = Path(path)
    pipe = FluxKontextPipeline(**flux_components(), image_encoder=None, feature_extractor=None)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_qwen_image_edit(path: str | Path, *, plus: bool = False) -> Path:
    """Tiny `QwenImageEditPipeline` (or `QwenImageEditPlusPipeline` with `plus=True`).

    The text encoder is the same tiny Qwen2.5-VL as `build_tiny_qwen2_5_vl`, with a
    `Qwen2VLProcessor` as the published checkpoints ship.
    """
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )

    path = Path(path)
    text_encoder, tok, processor = _qwen2_5_vl_parts(hidden=32, processor_class="Qwen2VLProcessor")
    torch.manual_seed(0)
    z_dim = 4
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=4 * z_dim,
        out_channels=z_dim,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    )
    vae = AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=z_dim,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=0.9,
        base_image_seq_len=256,
        max_image_seq_len=8192,
    )
    cls = QwenImageEditPlusPipeline if plus else QwenImageEditPipeline
    pipe = cls(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        processor=processor,
        transformer=transformer,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def copy_as_pipeline_class(src: str | Path, dst: str | Path, class_name: str) -> Path:
    """Copy a saved pipeline and name another pipeline class in its model_index.json."""
    dst = Path(dst)
    shutil.copytree(src, dst)
    index = json.loads((dst / "model_index.json").read_text())
    index["_class_name"] = class_name
    (dst / "model_index.json").write_text(json.dumps(index, indent=2))
    return dst


BUILDERS = {
    "instruct-pix2pix": build_tiny_instruct_pix2pix,
    "flux-kontext": build_tiny_flux_kontext,
    "qwen-image-edit": build_tiny_qwen_image_edit,
    "llava": build_tiny_llava,
    "qwen2.5-vl": build_tiny_qwen2_5_vl,
}
