"""Edit-minimality metrics: hand-computed cases and agreement with scikit-image."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from spairs_assets.verification import metrics as M


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        structural_similarity(a, b, channel_axis=2 if a.ndim == 3 else None, data_range=255)
    )


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[100:164, 200:280])  # 64x80 RGB


# ---- identical images ------------------------------------------------------------------------


def test_identical_images(photo):
    m = M.minimality(photo, photo.copy(), region=[10, 10, 20, 20])
    assert m["identical"] is True
    assert m["ssim"] == 1.0
    assert m["psnr"] is None  # infinite PSNR is reported as None in the dict...
    assert M.psnr(photo, photo) == math.inf  # ...and as inf by the function
    assert m["l1"] == 0.0 and m["l2"] == 0.0 and m["max_abs_diff"] == 0
    assert m["changed_pixels"] == 0 and m["changed_fraction"] == 0.0
    assert m["changed_bbox"] is None and m["changed_bbox_area"] is None
    assert M.changed_region(photo, photo) is None
    assert m["outside_changed_fraction"] == 0.0 and m["outside_max_abs_diff"] == 0
    assert m["phash_distance"] == m["dhash_distance"] == m["ahash_distance"] == 0
    json.dumps(m, allow_nan=False)  # strictly JSON-serialisable


# ---- one changed pixel -----------------------------------------------------------------------


def test_one_changed_pixel_by_hand():
    h, w = 20, 30
    a = np.full((h, w, 3), 100, np.uint8)
    b = a.copy()
    b[5, 7] = (110, 100, 94)  # channel differences 10, 0, 6
    m = M.minimality(a, b)
    assert m["changed_pixels"] == 1
    assert m["changed_fraction"] == pytest.approx(1 / (h * w))
    assert m["changed_bbox"] == [7, 5, 8, 6]  # [x0, y0, x1, y1], exclusive
    assert m["changed_bbox_area"] == 1
    assert M.changed_region(a, b) == M.ChangedRegion(bbox=(7, 5, 8, 6), area=1)
    n = h * w * 3
    assert m["l1"] == pytest.approx((10 + 6) / n / 255)
    assert m["l2"] == pytest.approx(math.sqrt((100 + 36) / n) / 255)
    assert m["psnr"] == pytest.approx(10 * math.log10(255**2 / ((100 + 36) / n)))
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255))
    assert m["max_abs_diff"] == 10
    assert m["ssim"] == pytest.approx(_sk_ssim(a, b), abs=1e-12)
    # tolerance: a pixel counts as changed only if some channel differs by more than it
    assert M.changed_fraction(a, b, tolerance=9) == pytest.approx(1 / (h * w))
    assert M.changed_fraction(a, b, tolerance=10) == 0.0
    assert M.changed_region(a, b, tolerance=10) is None
    assert M.minimality(a, b, tolerance=10)["changed_bbox"] is None
    # the distortion metrics do not depend on the tolerance
    assert M.minimality(a, b, tolerance=10)["l1"] == m["l1"]


# ---- one changed box -------------------------------------------------------------------------


def test_changed_box_and_outside_change(photo):
    edited = photo.copy()
    box = [20, 10, 50, 40]  # x0, y0, x1, y1
    edited[10:40, 20:50] = 255 - edited[10:40, 20:50]  # every pixel in the box changes
    m = M.minimality(photo, edited, region=box)
    assert m["changed_bbox"] == box
    assert m["changed_pixels"] == 30 * 30 == m["changed_bbox_area"]
    assert m["region"] == box
    assert m["outside_changed_pixels"] == 0
    assert m["outside_changed_fraction"] == 0.0
    assert m["outside_max_abs_diff"] == 0
    # a smaller declared region: the rest of the box counts as change outside it
    smaller = [25, 15, 45, 35]
    o = M.outside_change(photo, edited, smaller)
    n_outside = 64 * 80 - 20 * 20
    assert o["n_outside"] == n_outside
    assert o["pixels"] == 30 * 30 - 20 * 20
    assert o["fraction"] == pytest.approx((30 * 30 - 20 * 20) / n_outside)
    assert o["max_abs_diff"] > 0
    assert M.minimality(photo, edited, region=smaller)["outside_changed_fraction"] > 0
    # a disjoint region: all changes are outside
    assert M.outside_change(photo, edited, [0, 50, 10, 60])["pixels"] == 900
    # a region covering the whole image leaves nothing outside
    whole = M.outside_change(photo, edited, [0, 0, 80, 64])
    assert whole["fraction"] is None and whole["n_outside"] == 0
    # the full-size mask and the heat map agree with the box
    mask = M.changed_mask(photo, edited)
    assert mask.shape == (64, 80) and mask.sum() == 900 and mask[10:40, 20:50].all()
    assert (M.diff_map(photo, edited) > 0).sum() == 900
    assert m["ssim"] == pytest.approx(_sk_ssim(photo, edited), abs=1e-10)
    json.dumps(m, allow_nan=False)


def test_region_parsing(photo):
    edited = photo.copy()
    edited[5, 5] = 0
    # fractional boxes round outwards; boxes beyond the image are clipped
    assert M.minimality(photo, edited, region=[4.5, 4.2, 5.1, 5.9])["region"] == [4, 4, 6, 6]
    assert M.minimality(photo, edited, region=[-10, -10, 500, 500])["region"] == [0, 0, 80, 64]
    for bad in ([1, 2, 3], [5, 5, 1, 1], ["a", 0, 1, 1], [0, 0, math.nan, 1]):
        with pytest.raises(ValueError, match="region"):
            M.minimality(photo, edited, region=bad)
    with pytest.raises(ValueError, match="tolerance"):
        M.minimality(photo, edited, tolerance=-1)


# ---- agreement with scikit-image -------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        (7, 7, 3),
        (8, 11, 3),
        (13, 31, 3),
        (64, 64, 3),
        (101, 57, 3),
        (130, 259, 3),
        (40, 33),
        (33, 40, 1),
        (50, 60, 4),
    ],
)
def test_ssim_and_psnr_agree_with_skimage(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    h, w = shape[:2]
    cases = {
        "independent": rng.integers(0, 256, shape, dtype=np.uint8),
        "noise": np.clip(a.astype(int) + rng.integers(-8, 9, shape), 0, 255).astype(np.uint8),
    }
    box = a.copy()
    box[h // 3 : h // 2 + 1, w // 4 : w - 2] = rng.integers(
        0, 256, box[h // 3 : h // 2 + 1, w // 4 : w - 2].shape
    )
    cases["box"] = box
    corners = a.copy()  # two far-apart single pixels: the bounding box is the whole image
    corners[0, 0] ^= 0xFF
    corners[-1, -1] ^= 0x0F
    cases["corners"] = corners
    edge = a.copy()
    edge[:, -1] = 0  # the last column only
    cases["edge"] = edge
    for name, b in cases.items():
        ref = _sk_ssim(a, b)
        assert M.ssim(a, b) == pytest.approx(ref, abs=1e-10), name
        assert M.psnr(a, b) == pytest.approx(
            peak_signal_noise_ratio(a, b, data_range=255), rel=1e-12
        ), name
        assert M.minimality(a, b, hashes=False)["ssim"] == pytest.approx(ref, abs=1e-10), name


def test_ssim_on_a_photo_edit_agrees_with_skimage():
    src = np.ascontiguousarray(data.coffee()[:256, :256])
    edited = np.asarray(Image.fromarray(src).rotate(0.5)).copy()
    edited[:40] = src[:40]  # change confined to rows 40..256
    assert M.ssim(src, edited) == pytest.approx(_sk_ssim(src, edited), abs=1e-10)


def test_pil_inputs_are_accepted(photo):
    edited = photo.copy()
    edited[3, 4] = 0
    pil = M.minimality(
        Image.fromarray(photo), Image.fromarray(edited).convert("RGBA"), hashes=False
    )
    assert pil["changed_bbox"] == [4, 3, 5, 4] and pil["channels"] == 3


# ---- refusals --------------------------------------------------------------------------------


def test_images_smaller_than_the_ssim_window():
    a = np.zeros((6, 20, 3), np.uint8)
    b = a.copy()
    b[2, 3] = 9
    with pytest.raises(ValueError, match="at least 7x7"):
        M.ssim(a, b)
    with pytest.raises(ValueError):  # scikit-image refuses these too
        structural_similarity(a, b, channel_axis=2, data_range=255)
    m = M.minimality(a, b)  # everything else is still measured
    assert m["ssim"] is None and m["changed_bbox"] == [3, 2, 4, 3]


def test_bad_inputs():
    a = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        M.minimality(a, np.zeros((10, 11, 3), np.uint8))
    with pytest.raises(ValueError, match="differ in shape"):
        M.ssim(a, np.zeros((10, 10), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        M.l1(a, a.astype(np.float32))
    with pytest.raises(TypeError, match="numpy array or a PIL image"):
        M.l2(a, a.tolist())
    with pytest.raises(ValueError, match="empty"):
        M.changed_fraction(np.zeros((0, 5, 3), np.uint8), np.zeros((0, 5, 3), np.uint8))


def test_hash_distances_match_imagehash(photo):
    import imagehash

    edited = photo.copy()
    edited[:, :40] = 0
    d = M.hash_distances(photo, edited)
    pa, pb = Image.fromarray(photo), Image.fromarray(edited)
    assert d == {
        "phash": imagehash.phash(pa) - imagehash.phash(pb),
        "dhash": imagehash.dhash(pa) - imagehash.dhash(pb),
        "ahash": imagehash.average_hash(pa) - imagehash.average_hash(pb),
    }
    assert d["phash"] > 0
    m = M.minimality(photo, edited, hashes=False)
    assert m["phash_distance"] is None


def test_stored_source_hashes_give_the_same_distances(photo):
    edited = photo.copy()
    edited[:, :40] = 0
    stored = M.image_hashes(photo)
    assert set(stored) == {"phash", "dhash", "ahash"} and all(len(v) == 16 for v in stored.values())
    json.dumps(stored)
    full = M.minimality(photo, edited)
    cached = M.minimality(photo, edited, source_hashes=stored)
    assert cached == full
    assert M.hash_distances(photo, edited, source_hashes=stored)["phash"] == full["phash_distance"]
    with pytest.raises(ValueError, match="source_hashes lacks"):
        M.minimality(photo, edited, source_hashes={"phash": stored["phash"]})
