"""Build seed folders for tests: good images in every mode, and every kind of bad input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """A small random 'photo' (uint8 RGB) that differs per seed."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def jpeg_with_exif_orientation(arr: np.ndarray, orientation: int) -> bytes:
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds one tiny data chunk (a 'bomb')."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def animated_gif(seed: int = 0) -> bytes:
    frames = [Image.fromarray(photo(32, 32, seed + i)).convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def build_good_and_bad_folder(root: Path, outside: Path, category: str = "O2_violence"):
    """A folder source holding every good mode and every bad-input kind.

    Returns (expected good file paths relative to root, {relative path: expected reason}).
    """
    good: dict[str, dict] = {}
    bad: dict[str, str] = {}
    u = f"{category}/unsafe"
    s = f"{category}/safe"

    def add_good(rel: str, data: bytes, **expect) -> None:
        write(root / rel, data)
        good[rel] = expect

    add_good(f"{u}/plain.png", png_bytes(photo(seed=1)))
    add_good(f"{u}/rotated.jpg", jpeg_with_exif_orientation(photo(60, 40, seed=2), 6), size=(40, 60))
    cmyk = io.BytesIO()
    Image.fromarray(photo(seed=3)).convert("CMYK").save(cmyk, format="JPEG")
    add_good(f"{u}/cmyk.jpg", cmyk.getvalue())
    sixteen = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(sixteen).save(buf, format="PNG")
    add_good(f"{u}/gray16.png", buf.getvalue())
    pal = Image.fromarray(photo(seed=4)).convert("P")
    buf = io.BytesIO()
    pal.save(buf, format="PNG", transparency=0)
    add_good(f"{u}/palette_alpha.png", buf.getvalue())
    rgba = np.dstack([photo(seed=5), np.full((48, 64), 128, np.uint8)])
    add_good(f"{s}/rgba.png", png_bytes(rgba))
    add_good(f"{s}/wrong_extension.jpg", png_bytes(photo(seed=6)))  # PNG bytes, .jpg name
    add_good(f"{s}/big.png", png_bytes(photo(300, 100, seed=7)), size=(150, 50))  # max_side 150

    # Bad inputs, one per reason.
    write(root / f"{u}/empty.png", b"")
    bad[f"{u}/empty.png"] = "zero_bytes"
    full = png_bytes(photo(seed=8))
    write(root / f"{u}/truncated.png", full[: len(full) // 2])
    bad[f"{u}/truncated.png"] = "truncated"
    jpeg = io.BytesIO()
    Image.fromarray(photo(seed=9)).save(jpeg, format="JPEG")
    write(root / f"{u}/truncated.jpg", jpeg.getvalue()[: len(jpeg.getvalue()) // 3])
    bad[f"{u}/truncated.jpg"] = "truncated"
    write(root / f"{u}/notes.png", b"these are my notes, not an image\n")
    bad[f"{u}/notes.png"] = "not_an_image"
    write(root / f"{u}/bomb.png", png_header_only(30000, 30000))
    bad[f"{u}/bomb.png"] = "decompression_bomb"  # beyond Pillow's own limit
    write(root / f"{u}/bomb_small.png", png_header_only(2000, 2000))
    bad[f"{u}/bomb_small.png"] = "decompression_bomb"  # beyond sources.max_pixels (1e6 in tests)
    write(root / f"{u}/animated.gif", animated_gif())
    bad[f"{u}/animated.gif"] = "animated"
    target = write(outside / "secret.png", png_bytes(photo(seed=10)))
    (root / f"{u}/link_outside.png").symlink_to(target)
    bad[f"{u}/link_outside.png"] = "outside_roots"
    write(root / "O99_nonsense/unsafe/x.png", png_bytes(photo(seed=11)))
    bad["O99_nonsense/unsafe/x.png"] = "unknown_category"
    write(root / f"{category}/maybe/x.png", png_bytes(photo(seed=12)))
    bad[f"{category}/maybe/x.png"] = "unknown_rating"
    (root / f"{u}/dangling.png").symlink_to(root / "does-not-exist.png")
    bad[f"{u}/dangling.png"] = "unreadable"
    # Same pixels, other bytes: a duplicate by content. The first path in order is kept.
    write(root / f"{u}/zz_copy_of_plain.png", png_bytes(photo(seed=1), compress_level=1))
    bad[f"{u}/zz_copy_of_plain.png"] = "duplicate"
    write(root / f"{category}/loose.png", png_bytes(photo(seed=13)))
    bad[f"{category}/loose.png"] = "bad_layout"
    return good, bad
