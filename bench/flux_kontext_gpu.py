"""Flux Kontext edits per second: the platform's editor backend against a bare diffusers loop.

Why: the platform wraps diffusers (`spairs_assets.editing.diffusers_editors.DiffusersEditor`:
resizing to the working resolution, a CPU generator per item, result records). This measures
what that wrapping costs at the real model size, where it matters: same pipeline object, same
calls (1024x1024 input, `--steps` steps, guidance 2.5), timed alternately after warm-up.

The model is the REAL-SIZE FLUX.1 Kontext architecture with random bf16 weights (no download):
FluxTransformer2DModel with 19 double-stream + 38 single-stream blocks, 24 heads x 128,
joint_attention_dim 4096, pooled projection 768, guidance embeddings (about 11.9 B parameters);
the FLUX VAE (16 latent channels, 128/256/512/512); CLIP ViT-L/14 text encoder (12 layers, 768);
T5-XXL encoder (24 layers, d_model 4096, d_ff 10240, 64 heads). About 34 GB of GPU memory. The
tokenizers are the offline byte-level ones of the tests: prompts are padded to the same lengths
(77 CLIP, 512 T5 tokens) as with the real tokenizers, so the compute is the same.

On a CUDA machine (about 1-2 minutes to build, then about a minute of timing on an H100/H200):

    .venv/bin/python bench/flux_kontext_gpu.py --steps 4 --warmup 2 --runs 5

CPU smoke test of the same comparison on the tiny test model (loaded through from_pretrained):

    .venv/bin/python bench/flux_kontext_gpu.py --tiny

Without CUDA and without --tiny the script refuses and exits with status 2. `--through-disk`
saves the real-size pipeline (about 34 GB) and loads it through `from_pretrained`, as a user's
checkpoint would be, instead of handing the in-memory pipeline to the editor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Published FLUX.1 configs (black-forest-labs/FLUX.1-Kontext-dev and its encoders), in the form
# the tests' builder takes (`spairs_assets_tests.tiny_models.flux_components`).
REAL_SIZE_FLUX = {
    "transformer": dict(patch_size=1, in_channels=64, out_channels=None, num_layers=19,
                        num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
                        joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                        axes_dims_rope=(16, 56, 56)),
    "vae": dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, act_fn="silu", latent_channels=16, norm_num_groups=32,
                sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False, force_upcast=True),
    "clip": dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                 projection_dim=768),
    "t5": dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
               relative_attention_num_buckets=32, relative_attention_max_distance=128,
               feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, is_encoder_decoder=False,
               tie_word_embeddings=False, pad_token_id=0, eos_token_id=1),
}
PROMPT = 'Replace the word "HURT" on the sign with "HELP". Keep everything else unchanged.'


@contextlib.contextmanager
def _build_on(device: str, dtype):
    """Create parameters directly on `device` in `dtype` (no 48 GB fp32 copy on the host)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build_real_size_pipeline(device: str = "cuda"):
    """The FLUX.1 Kontext pipeline at full size with random bf16 weights, on `device`."""
    import torch
    from diffusers import FluxKontextPipeline

    from spairs_assets_tests.tiny_models import flux_components

    started = time.perf_counter()
    with _build_on(device, torch.bfloat16):
        parts = flux_components(REAL_SIZE_FLUX)
    pipe = FluxKontextPipeline(**parts, image_encoder=None, feature_extractor=None)
    modules = [parts[k] for k in ("transformer", "text_encoder_2", "text_encoder", "vae")]
    for m in modules:
        m.eval()
    n_params = sum(p.numel() for m in modules for p in m.parameters())
    print(
        f"built real-size FLUX.1 Kontext: {n_params / 1e9:.2f} B parameters "
        f"(transformer {sum(p.numel() for p in parts['transformer'].parameters()) / 1e9:.2f} B) "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return pipe


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bare_edit(pipe, image, seed: int, *, steps: int, size: tuple[int, int]):
    """What a bare script does: one pipeline call with the same arguments."""
    import torch

    width, height = size
    out = pipe(
        image=image,
        prompt=PROMPT,
        num_inference_steps=steps,
        guidance_scale=2.5,
        height=height,
        width=width,
        max_area=width * height,
        _auto_resize=False,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="pil",
    ).images[0]
    return out.resize(image.size) if out.size != image.size else out


def measure(label: str, fn, runs: int) -> float:
    _sync()
    started = time.perf_counter()
    for i in range(runs):
        fn(1000 + i)
    _sync()
    return runs / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test on the tiny test model")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed edits per round and method")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (bare, platform)")
    parser.add_argument("--size", type=int, default=None, help="input side (1024; 64 with --tiny)")
    parser.add_argument(
        "--through-disk", action="store_true", help="save + from_pretrained the real-size model"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    from spairs_assets.config import DiffusersEditorConfig
    from spairs_assets.editing.diffusers_editors import DiffusersEditor
    from spairs_assets.instructions.base import Instruction

    if not args.tiny and not torch.cuda.is_available():
        print(
            "refusing: no CUDA device. This benchmark builds the real-size FLUX.1 Kontext "
            "(~34 GB of bf16 weights) and needs a GPU; run with --tiny for the CPU smoke test.",
            file=sys.stderr,
        )
        return 2

    side = args.size or (64 if args.tiny else 1024)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    instruction = Instruction(PROMPT, "replace", "text", "HURT", "HELP", "unsafe_to_safe")

    with tempfile.TemporaryDirectory(prefix="flux-kontext-bench-") as tmp:
        folder = Path(tmp) / ("tiny-flux-kontext" if args.tiny else "FLUX.1-Kontext-random")
        if args.tiny:
            from spairs_assets_tests.tiny_models import build_tiny_flux_kontext

            build_tiny_flux_kontext(folder)
            config = DiffusersEditorConfig(
                model=str(folder),
                device="cpu",
                dtype="float32",
                steps=args.steps,
                max_area=side * side,
            )
            editor = DiffusersEditor("flux-kontext", config)  # loads through from_pretrained
            pipe = editor.pipe
        else:
            built = build_real_size_pipeline("cuda")
            config_kwargs = dict(
                device="cuda", dtype="bfloat16", steps=args.steps, max_area=side * side
            )
            if args.through_disk:
                started = time.perf_counter()
                built.save_pretrained(folder, safe_serialization=True)
                del built
                torch.cuda.empty_cache()
                print(f"saved to {folder} in {time.perf_counter() - started:.1f} s", flush=True)
                started = time.perf_counter()
                editor = DiffusersEditor(
                    "flux-kontext", DiffusersEditorConfig(model=str(folder), **config_kwargs)
                )
                pipe = editor.pipe
                print(
                    f"loaded through from_pretrained in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
            else:
                # The editor's identity comes from the folder's configs; the weights stay in memory.
                built.save_config(folder)
                built.vae.save_config(folder / "vae")
                editor = DiffusersEditor(
                    "flux-kontext",
                    DiffusersEditorConfig(model=str(folder), **config_kwargs),
                    pipeline=built,
                )
                pipe = built
        pipe.set_progress_bar_config(disable=True)
        size = editor.working_size(image.size)
        print(
            f"editor {editor.editor_id} revision {editor.revision} working size {size} "
            f"params {editor.params}"
        )

        def bare(seed: int):
            return bare_edit(pipe, image, seed, steps=args.steps, size=size)

        def platform(seed: int):
            return editor.edit(image, instruction, seed).image

        # Same seed, same calls: the two paths must produce the same picture.
        a, b = np.asarray(bare(7), dtype=np.int16), np.asarray(platform(7), dtype=np.int16)
        max_diff = int(np.abs(a - b).max())
        for _ in range(max(0, args.warmup - 1)):
            bare(0)
            platform(0)
        rates: dict[str, list[float]] = {"bare": [], "platform": []}
        with torch.inference_mode():
            for _ in range(args.rounds):
                rates["bare"].append(measure("bare", bare, args.runs))
                rates["platform"].append(measure("platform", platform, args.runs))

    bare_rate = statistics.median(rates["bare"])
    platform_rate = statistics.median(rates["platform"])
    device = "cpu (tiny model)" if args.tiny else torch.cuda.get_device_name(0)
    result = {
        "device": device,
        "model": "tiny FLUX Kontext" if args.tiny else "real-size FLUX.1 Kontext (random bf16)",
        "size": [side, side],
        "working_size": list(size),
        "steps": args.steps,
        "runs_per_round": args.runs,
        "rounds": args.rounds,
        "bare_edits_per_s": round(bare_rate, 4),
        "platform_edits_per_s": round(platform_rate, 4),
        "platform_over_bare": round(platform_rate / bare_rate, 4),
        "all_rates": {k: [round(v, 4) for v in vs] for k, vs in rates.items()},
        "max_pixel_diff_bare_vs_platform": max_diff,
    }
    if torch.cuda.is_available() and not args.tiny:
        result["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    print(f"device: {device}")
    print(f"bare diffusers loop : {bare_rate:.3f} edits/s")
    print(f"platform backend    : {platform_rate:.3f} edits/s")
    print(f"ratio platform/bare : {platform_rate / bare_rate:.3f}")
    print(f"same output for the same seed: max pixel difference {max_diff}")
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
