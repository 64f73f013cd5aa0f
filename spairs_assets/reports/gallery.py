"""A self-contained HTML gallery of curated pairs, per category and dataset version.

`render_gallery(pairs, verification_rows, load_image, show_unsafe=..., title=...)` shows every
accepted pair (and, on request, the rejected ones) side by side with the difference mask, its
scores and the curation decision and reason. Images are small PNG thumbnails embedded as base64,
so the file opens anywhere and needs nothing else. The unsafe member is blurred on the server
with PIL unless `show_unsafe`, so the unblurred pixels are never written into the file; the
difference mask, which can outline the unsafe feature, is then drawn coarse (max-pooled blocks).

`write_gallery(storage, ...)` writes `reports/gallery/<category>/<dataset_version>.html`.

The image helpers here (`blur`, `difference_heatmap`, `png_data_uri`) are shared with the
lineage card (`spairs_assets.lineage.card`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from spairs_assets.reports.previews import BLUR_RADIUS_FRACTION
from spairs_assets.storage.fs import Storage

LoadImage = Callable[[str], Image.Image]
THUMB = 192  # gallery thumbnail side, pixels
MAX_PAIRS = 300  # per section; the rest are counted, not drawn (a report, not an export)

# "inferno"-like colour map: black (no change) through purple and orange to pale yellow.
_ANCHORS = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66),
                     (245, 125, 21), (250, 193, 39), (252, 255, 164)], dtype=np.float64)
_LUT = np.stack([np.interp(np.arange(256), np.linspace(0, 255, len(_ANCHORS)), _ANCHORS[:, c])
                 for c in range(3)], axis=1).round().astype(np.uint8)


# ---- image helpers ----------------------------------------------------------------------------
def blur(image: Image.Image) -> Image.Image:
    """A blur strong enough to make content unreadable (the preview grids' strength)."""
    side = max(image.size)
    return image.convert("RGB").filter(ImageFilter.GaussianBlur(radius=max(2.0, side * BLUR_RADIUS_FRACTION)))


def difference_heatmap(a: Image.Image, b: Image.Image, *,
                       boxes: Sequence[tuple[Sequence[int] | None, tuple[int, int, int]]] = (),
                       coarse: bool = False) -> tuple[Image.Image, int, float]:
    """|a - b|, max over channels, colour-mapped (normalised to the largest difference so small
    edits show), with optional outlined boxes [(x0, y0, x1, y1), colour]. `coarse`: max-pooled
    over blocks of ~1/24 of the image side, so the map shows where the edit is without the shape
    of what changed (used when unsafe previews are off). Returns the map, the largest absolute
    difference and the fraction of changed pixels."""
    x = np.asarray(a.convert("RGB"), dtype=np.int16)
    y_img = b.convert("RGB")
    if y_img.size != a.size:
        y_img = y_img.resize(a.size, Image.Resampling.BILINEAR)
    y = np.asarray(y_img, dtype=np.int16)
    diff = np.abs(x - y).max(axis=2).astype(np.uint8)
    peak, changed = int(diff.max()), float((diff > 0).mean())
    if coarse:
        h, w = diff.shape
        k = max(8, max(h, w) // 24)
        padded = np.zeros((-(-h // k) * k, -(-w // k) * k), dtype=np.uint8)
        padded[:h, :w] = diff
        pooled = padded.reshape(padded.shape[0] // k, k, padded.shape[1] // k, k).max(axis=(1, 3))
        diff = np.repeat(np.repeat(pooled, k, axis=0), k, axis=1)[:h, :w]
    scaled = diff if peak == 0 else (diff.astype(np.float32) * (255.0 / peak)).round().astype(np.uint8)
    heat = Image.fromarray(_LUT[scaled], "RGB")
    draw = ImageDraw.Draw(heat)
    for box, colour in boxes:
        if box is not None and len(box) == 4:
            x0, y0, x1, y1 = (int(v) for v in box)
            draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=2)
    return heat, peak, changed


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def png_data_uri(image: Image.Image) -> str:
    """Lossless: the embedded pixels are exactly `image`'s."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def jpeg_data_uri(image: Image.Image, quality: int = 85) -> str:
    """Small thumbnails for galleries (a tenth of a PNG's size)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def thumbnail(image: Image.Image, size: int) -> Image.Image:
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    return thumb


def _safe_load(load_image: LoadImage, image_id: str | None) -> Image.Image | None:
    if not image_id:
        return None
    try:
        return load_image(image_id)
    except (OSError, FileNotFoundError, ValueError, KeyError):
        return None


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _esc(value)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def flagged_by(verdicts: Any) -> list[str]:
    """Judges whose verdict rates the image unsafe."""
    verdicts = _json(verdicts)
    if not isinstance(verdicts, dict):
        return []
    return sorted(j for j, v in verdicts.items() if isinstance(v, dict) and v.get("rating") == "Unsafe")


BASE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d1d1f;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px} h3{font-size:15px;margin:16px 0 6px}
.note{color:#6b6b6b;font-size:13px} .warn{background:#fff4e5;border:1px solid #f0c36d;padding:8px 12px;
border-radius:6px;font-size:13px;margin:10px 0}
table{border-collapse:collapse;font-size:13px;margin:6px 0} td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top} th{background:#f0f0f0}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
figure{margin:0;display:inline-block;text-align:center} figcaption{font-size:12px;color:#444}
.accepted{color:#1a7f37;font-weight:600} .rejected{color:#b42318;font-weight:600}
.blurred{outline:3px dashed #b42318}
"""

GALLERY_CSS = BASE_CSS + """
.pair{background:#fff;border:1px solid #ddd;border-radius:8px;padding:10px;margin:10px 0;
display:flex;gap:14px;align-items:flex-start;flex-wrap:wrap}
.pair img{display:block;max-width:192px;max-height:192px;border-radius:4px}
.meta{font-size:13px;min-width:280px;max-width:520px}
"""


# ---- the gallery ------------------------------------------------------------------------------
def _figure(image: Image.Image | None, caption: str, *, blurred: bool) -> str:
    if image is None:
        return f'<figure><div class="note">{_esc(caption)}: image not in the store</div></figure>'
    cls = ' class="blurred"' if blurred else ""
    label = caption + (" (blurred)" if blurred else "")
    return (f'<figure><img{cls} alt="{_esc(label)}" src="{jpeg_data_uri(image)}">'
            f"<figcaption>{_esc(label)}</figcaption></figure>")


def _pair_entry(pair: Mapping[str, Any], scores: Mapping[str, Any] | None, load_image: LoadImage,
                *, show_unsafe: bool, thumb: int) -> str:
    unsafe = _safe_load(load_image, pair.get("unsafe_image_id"))
    safe = _safe_load(load_image, pair.get("safe_image_id"))
    def small(image: Image.Image, hide: bool) -> Image.Image:
        # Downscale first, then blur the thumbnail (the preview grids' strength, relative to
        # its side): what is encoded never held the unblurred pixels at any size.
        t = thumbnail(image, thumb)
        return blur(t) if hide else t

    figures = [
        _figure(small(unsafe, not show_unsafe) if unsafe is not None else None, "unsafe",
                blurred=unsafe is not None and not show_unsafe),
        _figure(small(safe, False) if safe is not None else None, "safe", blurred=False),
    ]
    if unsafe is not None and safe is not None:
        boxes = [((scores or {}).get("changed_box"), (0, 229, 255))]
        heat, peak, _ = difference_heatmap(unsafe, safe, boxes=boxes, coarse=not show_unsafe)
        label = f"difference (max |Δ| {peak})" + ("" if show_unsafe else ", coarse")
        figures.append(_figure(small(heat, False), label, blurred=False))
    decision = pair.get("decision", "")
    rows = [
        ("decision", f'<span class="{_esc(decision)}">{_esc(decision)}</span>: {_esc(pair.get("reason"))}'),
        ("instruction", _esc(pair.get("instruction"))),
        ("split", _esc(pair.get("split"))),
        ("ssim / psnr", f"{_num(pair.get('ssim'))} / {_num(pair.get('psnr'), 2)}"),
        ("changed / outside", (f"{_num(pair.get('changed_fraction'))} / "
                              f"{_num(pair.get('outside_changed_fraction'))}")),
        ("encoder cosine / pHash", f"{_num(pair.get('encoder_cosine'))} / {_num(pair.get('phash_distance'))}"),
        ("flip / adherence", f"{_esc(pair.get('flip_verified'))} / {_esc(pair.get('adherence'))}"),
        ("candidates", f"{_esc(pair.get('candidates_passing'))} of {_esc(pair.get('candidates'))} passed"),
    ]
    if scores:
        src_flag = flagged_by(scores.get("source_verdicts"))
        edt_flag = flagged_by(scores.get("edited_verdicts"))
        rows.append(("unsafe by (source | edit)",
                     f"{_esc(', '.join(src_flag) or 'none')} | {_esc(', '.join(edt_flag) or 'none')}"))
        reasons = _json(scores.get("reasons"))
        if reasons:
            rows.append(("candidate reasons", _esc(", ".join(map(str, reasons)))))
    table = "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    pid = str(pair.get("pair_id", ""))
    return (f'<div class="pair" id="pair-{_esc(pid)}" data-pair-id="{_esc(pid)}" '
            f'data-decision="{_esc(decision)}">{"".join(figures)}'
            f'<div class="meta"><div class="mono">pair {_esc(pid[:16])} · edit '
            f'{_esc(str(pair.get("edit_id", ""))[:16])}</div><table>{table}</table>'
            f'<div class="note mono">spairs lineage {_esc(pid[:16])}</div></div></div>')


def render_gallery(pairs: Iterable[Mapping[str, Any]], verification_rows: Iterable[Mapping[str, Any]],
                   load_image: LoadImage, *, show_unsafe: bool, title: str,
                   include_rejected: bool = False, thumb: int = THUMB,
                   max_pairs: int = MAX_PAIRS) -> str:
    """HTML with one section per (category, dataset version): accepted pairs (then rejected ones
    when `include_rejected`), each as unsafe | safe | difference mask with scores and decision.

    `pairs`: curated_pairs rows; `verification_rows`: verification_scores rows (matched by
    edit_id, for the changed box, judge verdicts and reasons); `load_image(image_id)` -> PIL.
    """
    pairs = list(pairs)
    scores = {r["edit_id"]: r for r in verification_rows}
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for p in pairs:
        groups[(str(p.get("category")), str(p.get("dataset_version")))].append(p)

    parts = [(f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_esc(title)}</title>"
             f"<style>{GALLERY_CSS}</style></head><body><h1>{_esc(title)}</h1>")]
    if not show_unsafe:
        parts.append('<div class="warn">Unsafe images are blurred and difference masks coarse '
                     "(previews are off). Set <code>previews.show_unsafe: true</code> or "
                     "<code>SPAIRS_SHOW_UNSAFE=1</code> to render them unblurred.</div>")
    else:
        parts.append('<div class="warn">This report shows unsafe images unblurred.</div>')
    if not pairs:
        parts.append('<p class="note">No curated pairs.</p>')
    for (category, version), rows in sorted(groups.items()):
        accepted = sorted((r for r in rows if r.get("decision") == "accepted"), key=lambda r: r["pair_id"])
        rejected = sorted((r for r in rows if r.get("decision") != "accepted"), key=lambda r: r["pair_id"])
        splits = Counter(r.get("split") for r in accepted)
        reasons = Counter(str(r.get("reason", "")).split(":")[0] for r in rejected)
        parts.append(f"<h2>{_esc(category)} · dataset version <code>{_esc(version)}</code></h2>"
                     f'<p class="note">{len(accepted)} accepted ('
                     + ", ".join(f"{_esc(k)} {v}" for k, v in sorted(splits.items(), key=lambda kv: str(kv[0])))
                     + f"), {len(rejected)} rejected"
                     + (" (" + "; ".join(f"{_esc(k)}: {v}" for k, v in reasons.most_common()) + ")"
                        if reasons else "") + ".</p>")
        sections = [("Accepted pairs", accepted)] + ([("Rejected", rejected)] if include_rejected else [])
        for heading, items in sections:
            parts.append(f"<h3>{_esc(heading)} ({len(items)})</h3>")
            for p in items[:max_pairs]:
                parts.append(_pair_entry(p, scores.get(p.get("edit_id")), load_image,
                                         show_unsafe=show_unsafe, thumb=thumb))
            if len(items) > max_pairs:
                parts.append(f'<p class="note">{len(items) - max_pairs} more not shown '
                             f"(see <code>spairs sql</code>).</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def gallery_path(category: str, dataset_version: str) -> str:
    """Root-relative path of a gallery file."""
    for part in (category, dataset_version):
        if not part or "/" in part or part.startswith("."):
            raise ValueError(f"not a valid path component: {part!r}")
    return f"reports/gallery/{category}/{dataset_version}.html"


def write_gallery(storage: Storage, pairs: Iterable[Mapping[str, Any]],
                  verification_rows: Iterable[Mapping[str, Any]], load_image: LoadImage, *,
                  show_unsafe: bool, title: str | None = None, include_rejected: bool = False,
                  thumb: int = THUMB, max_pairs: int = MAX_PAIRS) -> list[str]:
    """Write one gallery per (category, dataset version) of `pairs` to
    `reports/gallery/<category>/<dataset_version>.html` (atomically); returns the root-relative
    paths written (one for a curated_pairs partition)."""
    pairs = list(pairs)
    verification_rows = list(verification_rows)
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for p in pairs:
        groups[(str(p["category"]), str(p["dataset_version"]))].append(p)
    written = []
    for (category, version), rows in sorted(groups.items()):
        edits = {r["edit_id"] for r in rows}
        page = render_gallery(rows, [v for v in verification_rows if v["edit_id"] in edits], load_image,
                              show_unsafe=show_unsafe,
                              title=title or f"SafetyPairs gallery: {category}, {version}",
                              include_rejected=include_rejected, thumb=thumb, max_pairs=max_pairs)
        rel = gallery_path(category, version)
        storage.write_bytes(rel, page.encode("utf-8"))
        written.append(rel)
    return written
