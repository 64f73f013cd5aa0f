"""Preview grids of images for the Dagster UI, unsafe images blurred unless previews are on."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageFont

BLUR_RADIUS_FRACTION = 0.08  # of the thumbnail side: enough to make content unreadable


@dataclass(frozen=True)
class PreviewItem:
    image: Image.Image
    caption: str
    unsafe: bool


def thumbnail(image: Image.Image, size: int, *, blur: bool) -> Image.Image:
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    if blur:
        thumb = thumb.filter(ImageFilter.GaussianBlur(radius=max(2.0, size * BLUR_RADIUS_FRACTION)))
    canvas = Image.new("RGB", (size, size), (32, 32, 32))
    canvas.paste(thumb, ((size - thumb.width) // 2, (size - thumb.height) // 2))
    return canvas


def preview_grid(items: Sequence[PreviewItem], *, thumb_size: int = 128, columns: int = 6,
                 show_unsafe: bool = False) -> Image.Image:
    """A captioned grid; each unsafe image is blurred unless `show_unsafe`."""
    if not items:
        return Image.new("RGB", (thumb_size, 24), (255, 255, 255))
    columns = max(1, min(columns, len(items)))
    rows = (len(items) + columns - 1) // columns
    caption_h = 16
    grid = Image.new("RGB", (columns * thumb_size, rows * (thumb_size + caption_h)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=11)
    for i, item in enumerate(items):
        x, y = (i % columns) * thumb_size, (i // columns) * (thumb_size + caption_h)
        blur = item.unsafe and not show_unsafe
        grid.paste(thumbnail(item.image, thumb_size, blur=blur), (x, y))
        caption = item.caption + (" (blurred)" if blur else "")
        draw.text((x + 3, y + thumb_size + 2), caption[:28], fill=(0, 0, 0), font=font)
    return grid


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str = "preview") -> str:
    """Markdown that embeds a PNG inline, which the Dagster UI renders in asset metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
