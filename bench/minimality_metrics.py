"""Edit-minimality metrics throughput: `spairs_assets.verification.metrics` against scikit-image.

Builds N realistic pairs at 512x512: a crop of one of scikit-image's bundled photographs
(astronaut, coffee, chelsea, rocket, ...), resized to 512x512, and an edited copy in which a box
of about 10% of the image (random size and place) is painted over with a filled sign carrying
text, as a text-replacing editor would leave it. Then, on one core:

  (a) `minimality(src, edited, region=box, hashes=False)`: every pixel metric (SSIM, PSNR, L1,
      L2, changed fraction and box, change outside the region), the budget's "pixel metrics";
  (a+) the same with the three perceptual hashes (`hashes=True`, the default);
  (b) scikit-image's `structural_similarity(channel_axis=2, data_range=255)` plus
      `peak_signal_noise_ratio` in a plain loop (on the first --ref-pairs pairs: it is slow).

It prints pairs per second for each, the speed ratio (a)/(b), and the largest |SSIM difference|
between the two implementations. With --workers 2 it also runs (a) in a pool of 2 worker
processes (multiprocessing "fork": the pairs are inherited, not pickled; each worker takes
chunks of pair indices and returns the small result dicts), timed after the pool has started.

    python bench/minimality_metrics.py [--pairs 400] [--ref-pairs 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np

SIZE = 512
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "motorcycle_left")

_PAIRS: list[tuple[np.ndarray, np.ndarray, list[int]]] = []  # inherited by forked workers


def _photos() -> list[np.ndarray]:
    from skimage import data

    out = []
    for name in PHOTOS:
        try:
            img = getattr(data, name)()
        except Exception:  # noqa: BLE001 - a photo not bundled in this wheel
            continue
        if img.ndim == 3 and img.shape[2] == 3:
            out.append(img)
    return out


def build_pairs(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, list[int]]]:
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    photos = _photos()
    fonts = {s: ImageFont.load_default(size=s) for s in (22, 30, 38)}
    words = ("NO ENTRY", "HATE", "PEACE", "DANGER", "WELCOME", "KILL", "LOVE", "STOP")
    pairs = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) * 3 // 4, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        src = Image.fromarray(photo[y : y + side, x : x + side]).resize(
            (SIZE, SIZE), Image.BILINEAR
        )
        # an edited box of ~10% of the image (8-12%), random aspect and place
        area = SIZE * SIZE * rng.uniform(0.08, 0.12)
        aspect = rng.uniform(0.6, 1.8)
        bw = int(min(SIZE - 2, np.sqrt(area * aspect)))
        bh = int(min(SIZE - 2, area / bw))
        bx, by = int(rng.integers(0, SIZE - bw)), int(rng.integers(0, SIZE - bh))
        edited = src.copy()
        draw = ImageDraw.Draw(edited)
        fill = tuple(int(v) for v in rng.integers(150, 256, 3))
        draw.rectangle([bx, by, bx + bw - 1, by + bh - 1], fill=fill, outline=(20, 20, 20), width=3)
        font = fonts[int(rng.choice(list(fonts)))]
        draw.text((bx + 8, by + bh // 2 - 15), str(rng.choice(words)), fill=(10, 10, 10), font=font)
        pairs.append(
            (np.asarray(src).copy(), np.asarray(edited).copy(), [bx, by, bx + bw, by + bh])
        )
    return pairs


def _ours(i: int, hashes: bool = False) -> dict:
    from spairs_assets.verification.metrics import minimality

    src, edited, box = _PAIRS[i]
    return minimality(src, edited, region=box, hashes=hashes)


def _ours_chunk(indices: list[int]) -> float:
    """Run (a) on these pairs in a worker; return the CPU seconds it took."""
    cpu = time.process_time()
    for i in indices:
        _ours(i)
    return time.process_time() - cpu


def _noop(_: int) -> int:
    return os.getpid()


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--ref-pairs", type=int, default=60, help="pairs for the scikit-image loop")
    parser.add_argument(
        "--workers", type=int, default=2, help="also run (a) in N processes (0: no)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    args = parser.parse_args()

    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from spairs_assets.verification.metrics import minimality

    t = time.perf_counter()
    _PAIRS.extend(build_pairs(args.pairs))
    n = len(_PAIRS)
    fractions = [minimality(s, e, hashes=False)["changed_fraction"] for s, e, _ in _PAIRS]
    print(
        f"built {n} pairs of {SIZE}x{SIZE} in {time.perf_counter() - t:.1f} s; changed pixels "
        f"{np.mean(fractions):.1%} of the image on average "
        f"({min(fractions):.1%}-{max(fractions):.1%})"
    )
    print(f"cores: {os.cpu_count()}, timings are the best of {args.repeats}")

    cpu = time.process_time()
    ours_s = best_of(lambda: [_ours(i) for i in range(n)], args.repeats)
    ours_cpu = (time.process_time() - cpu) / args.repeats
    ours_rate = n / ours_s
    print(
        f"(a)  spairs minimality, pixel metrics, 1 process : {ours_rate:8.1f} pairs/s "
        f"({1e3 * ours_s / n:.2f} ms/pair; CPU time {1e3 * ours_cpu / n:.2f} ms/pair on average)"
    )

    n_hash = min(n, 100)
    hash_s = best_of(lambda: [_ours(i, hashes=True) for i in range(n_hash)], 1)
    print(
        f"(a+) spairs minimality incl. pHash/dHash/aHash  : {n_hash / hash_s:8.1f} pairs/s "
        f"({1e3 * hash_s / n_hash:.2f} ms/pair)"
    )

    n_ref = min(n, args.ref_pairs)
    ref_ssim: list[float] = []

    def reference() -> None:
        ref_ssim.clear()
        for src, edited, _ in _PAIRS[:n_ref]:
            ref_ssim.append(structural_similarity(src, edited, channel_axis=2, data_range=255))
            peak_signal_noise_ratio(src, edited, data_range=255)

    ref_s = best_of(reference, 1)
    ref_rate = n_ref / ref_s
    print(
        f"(b)  scikit-image SSIM + PSNR, 1 process       : {ref_rate:8.1f} pairs/s "
        f"({1e3 * ref_s / n_ref:.2f} ms/pair, {n_ref} pairs)"
    )
    print(f"speed ratio (a)/(b): {ours_rate / ref_rate:.1f}x")

    ours_ssim = [_ours(i)["ssim"] for i in range(n_ref)]
    diff = max(abs(a - b) for a, b in zip(ours_ssim, ref_ssim, strict=True))
    print(
        f"max |SSIM(spairs) - SSIM(scikit-image)| over {n_ref} pairs: {diff:.3e} "
        f"(SSIM range {min(ref_ssim):.4f}-{max(ref_ssim):.4f})"
    )

    if args.workers > 1:
        ctx = mp.get_context("fork")
        chunk = max(1, n // (args.workers * 8))
        chunks = [list(range(i, min(n, i + chunk))) for i in range(0, n, chunk)]
        with ctx.Pool(args.workers) as pool:
            pool.map(_noop, range(args.workers * 4))  # workers started and imported
            pool.map(_ours_chunk, chunks[: args.workers])  # warm
            par_s, cpu_s = float("inf"), 0.0
            for _ in range(args.repeats):
                t = time.perf_counter()
                cpu = sum(pool.map(_ours_chunk, chunks))
                wall = time.perf_counter() - t
                if wall < par_s:
                    par_s, cpu_s = wall, cpu
        print(
            f"(a)  spairs minimality, pixel metrics, {args.workers} processes: "
            f"{n / par_s:8.1f} pairs/s (fork pool, chunks of {chunk} pair indices)"
        )
        # If other programs hold a core, the workers get less than a core each: say so.
        print(
            f"     worker CPU time {1e3 * cpu_s / n:.2f} ms/pair; the workers had "
            f"{cpu_s / par_s:.2f} of {args.workers} cores (CPU-bound ceiling "
            f"{args.workers * n / cpu_s:.0f} pairs/s with {args.workers} free cores)"
        )


if __name__ == "__main__":
    main()
