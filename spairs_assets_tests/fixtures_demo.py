"""Demo seeds and shared helpers for the OCR, symbol, generator and classical-editor tests.

Only tests and evaluation code may read the demo's ground truth rows; the platform code under
test never sees them (it is given `SeedImage`s: pixels and the label only).

`demo_subset` is session-scoped; the generated folder and the grounded instructions are also
memoised at module level, so test modules that import the fixture share one copy.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from spairs_assets.instructions.base import SeedImage

# Three categories keep the slow tests within budget while covering text on signs, placards,
# stickers and photos, and weapons/hazard pictograms.
SUBSET_CATEGORIES = ("O2", "O6", "O9")

_DEMO: dict[tuple[str, ...], tuple[Path, list[dict[str, Any]]]] = {}
_INSTRUCTIONS: dict[tuple[str, str, str], list[Any]] = {}


@pytest.fixture(scope="session")
def demo_subset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """(root, ground-truth rows) of the demo seeds of `SUBSET_CATEGORIES` (24 unsafe and 6
    safe each)."""
    key = SUBSET_CATEGORIES
    if key not in _DEMO:
        from spairs_assets.sources.demo import generate_demo

        root = tmp_path_factory.mktemp("demo_subset")
        rows = generate_demo(root, list(key))
        _DEMO[key] = (root, rows)
    return _DEMO[key]


def image_of(root: Path, row: dict[str, Any]) -> Image.Image:
    with Image.open(root / row["category_id"] / row["file_name"]) as im:
        return im.convert("RGB")


def make_seed(image: Image.Image, category_id: str, rating: str = "Unsafe") -> SeedImage:
    """A SeedImage whose id is the content hash, as the platform makes them (OCR and detector
    results are memoised per id, so ids must never be shared by different pixels)."""
    from spairs_assets.ids import image_id

    rgb = image.convert("RGB")
    return SeedImage(image_id=image_id(np.asarray(rgb)), category=category_id,
                     category_id=category_id, category_label=category_id, rating=rating,
                     image=rgb)


def seed_of(root: Path, row: dict[str, Any]) -> SeedImage:
    """The SeedImage a generator gets for a demo row: pixels and label, no ground truth."""
    rating = "Unsafe" if row["rating"] == "unsafe" else "Safe"
    return make_seed(image_of(root, row), row["category_id"], rating)


def grounded_instructions(generator: Any, root: Path, row: dict[str, Any], direction: str
                          ) -> list[Any]:
    """The grounded generator's instructions for a demo row (memoised for the session)."""
    key = (str(root), f"{row['category_id']}/{row['file_name']}", direction)
    if key not in _INSTRUCTIONS:
        _INSTRUCTIONS[key] = generator.generate(seed_of(root, row), direction)
    return _INSTRUCTIONS[key]


def changed_mask(before: Image.Image, after: Image.Image) -> np.ndarray:
    a, b = np.asarray(before.convert("RGB")), np.asarray(after.convert("RGB"))
    assert a.shape == b.shape, "an edit must keep the image size"
    return np.any(a != b, axis=2)


def changes_outside(before: Image.Image, after: Image.Image, box: Any, pad: int = 3) -> int:
    """How many changed pixels lie outside `box` (x0, y0, x1, y1) grown by `pad`."""
    changed = changed_mask(before, after)
    x0, y0, x1, y1 = (int(v) for v in box)
    inside = np.zeros_like(changed)
    inside[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = True
    return int((changed & ~inside).sum())


# --------------------------------------------------------------------------------------------
# Synthetic images (independent of the demo generator)
# --------------------------------------------------------------------------------------------

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default(size=size)


def photo(size: tuple[int, int] = (420, 420), which: str = "chelsea.png", seed: int = 0
          ) -> Image.Image:
    """A crop of one of scikit-image's bundled photographs (no network)."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    with Image.open(data / which) as im:
        src = im.convert("RGB")
    rng = random.Random(seed)
    w, h = size
    scale = max(w / src.width, h / src.height)
    if scale > 1:
        src = src.resize((int(src.width * scale) + 1, int(src.height * scale) + 1))
    x0 = rng.randint(0, src.width - w)
    y0 = rng.randint(0, src.height - h)
    return src.crop((x0, y0, x0 + w, y0 + h))


def sign_image(text: str, *, plate: tuple[int, int, int] = (255, 214, 0),
               ink: tuple[int, int, int] = (0, 0, 0), size: int = 36, angle: float = 0.0,
               background: Image.Image | None = None, at: tuple[int, int] = (30, 150)
               ) -> tuple[Image.Image, dict[str, Any]]:
    """`text` on a sign pasted onto a photo. Returns the image and where things were drawn:
    ``sign_box`` and, per word, ``word_boxes`` (ink boxes, upright signs only)."""
    base = (background or photo()).copy()
    f = font(size)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=f)
    pad = size // 2
    sign = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (*plate, 255))
    d = ImageDraw.Draw(sign)
    origin = (pad - left, pad - top)
    d.text(origin, text, font=f, fill=(*ink, 255))
    word_boxes = {}
    x = 0
    for word in text.split(" "):
        start = text.index(word, x)
        offset = d.textlength(text[:start], font=f) if start else 0.0
        wl, wt, wr, wb = d.textbbox((origin[0] + offset, origin[1]), word, font=f)
        word_boxes[word] = [int(wl) + at[0], int(wt) + at[1], int(wr) + 1 + at[0],
                            int(wb) + 1 + at[1]]
        x = start + len(word)
    if angle:
        sign = sign.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
        word_boxes = {}
    base.paste(sign, at, sign)
    sign_box = [at[0], at[1], at[0] + sign.width, at[1] + sign.height]
    return base, {"sign_box": sign_box, "word_boxes": word_boxes}


def pictogram_image(name: str, *, size: int = 110, color: tuple[int, int, int] = (0, 0, 0),
                    plate: tuple[int, int, int] | None = (255, 214, 0), angle: float = 0.0,
                    at: tuple[int, int] = (150, 140), background: Image.Image | None = None
                    ) -> tuple[Image.Image, dict[str, Any]]:
    """A library pictogram on a square plate (or straight on the photo when `plate` is None)."""
    from spairs_assets.sources.pictograms import render_pictogram

    base = (background or photo()).copy()
    icon = render_pictogram(name, size, color)
    pad = size // 5 if plate else 0
    layer = Image.new("RGBA", (size + 2 * pad, size + 2 * pad),
                      (*plate, 255) if plate else (0, 0, 0, 0))
    layer.alpha_composite(icon, (pad, pad))
    if angle:
        layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    base.paste(layer, at, layer)
    feature_box = list(layer.getchannel("A").getbbox())
    feature_box = [feature_box[0] + at[0], feature_box[1] + at[1], feature_box[2] + at[0],
                   feature_box[3] + at[1]]
    return base, {"feature_box": feature_box, "center": (at[0] + layer.width / 2,
                                                         at[1] + layer.height / 2)}


def plain_photos(n: int = 8) -> list[Image.Image]:
    """Crops of several bundled photographs with nothing drawn on them."""
    names = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png",
             "camera.png", "coins.png", "grass.png", "brick.png", "moon.png", "gravel.png",
             "retina.jpg")
    out = []
    for i in range(n):
        out.append(photo((400, 400), names[i % len(names)], seed=i))
    return out
