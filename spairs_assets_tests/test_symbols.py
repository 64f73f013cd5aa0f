"""Pictogram detector: names, boxes, colour robustness, false positives, quiet regions."""

from __future__ import annotations

import numpy as np
import pytest

from spairs_assets.sources.pictograms import PICTOGRAMS
from spairs_assets.vision.symbols import (
    DetectorSettings,
    SymbolDetection,
    detect_symbols,
    find_quiet_region,
    placed_mask,
)
from spairs_assets_tests.fixtures_demo import (  # noqa: F401
    demo_subset,
    image_of,
    photo,
    pictogram_image,
    plain_photos,
)


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _ink_box(image, before) -> list[int]:
    diff = np.any(np.asarray(image) != np.asarray(before), axis=2)
    ys, xs = np.nonzero(diff)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


@pytest.mark.parametrize(("name", "color", "plate", "angle", "size"), [
    ("knife", (0, 0, 0), (255, 214, 0), 0.0, 110),  # dark on light
    ("flame", (255, 255, 255), (200, 16, 30), -4.0, 90),  # light on dark, rotated
    ("pistol", (20, 60, 200), None, 3.0, 125),  # straight on the photo, coloured
    ("heart", (0, 110, 50), (250, 250, 245), 0.0, 80),  # a benign one
])
def test_detects_library_pictograms_whatever_their_colour(name, color, plate, angle, size):
    image, info = pictogram_image(name, color=color, plate=plate, angle=angle, size=size)
    found = detect_symbols(image)
    assert found, f"{name} not detected"
    det = found[0]
    assert det.name == name, [d.name for d in found]
    assert det.unsafe == PICTOGRAMS[name].unsafe
    assert abs(det.size - size) <= 0.06 * size and abs(det.angle_deg - angle) <= 2.5
    if plate is None:  # the box is the pictogram's ink
        assert _iou(det.box, info["feature_box"]) > 0.8
    assert np.linalg.norm(np.subtract(det.color, color)) < 50


def test_placed_mask_reproduces_the_detected_ink():
    image, _ = pictogram_image("fist", color=(0, 0, 0), plate=None, angle=-3.0, size=120)
    before = photo()
    det = detect_symbols(image)[0]
    mask = placed_mask(det.name, det.size, det.angle_deg, det.center, (image.height, image.width))
    truth = np.any(np.asarray(image) != np.asarray(before), axis=2)
    cover = mask > 0.5
    assert (cover & truth).sum() / cover.sum() > 0.85  # the mask lies on the ink ...
    assert (cover & truth).sum() / truth.sum() > 0.8  # ... and covers most of it


def test_detection_round_trips_through_a_dict():
    image, _ = pictogram_image("syringe")
    det = detect_symbols(image)[0]
    back = SymbolDetection.from_dict(det.to_dict())
    assert (back.name, back.box, back.size, back.angle_deg) == (det.name, det.box, det.size,
                                                               det.angle_deg)


def test_settings_are_validated_and_fingerprinted():
    with pytest.raises(ValueError, match="min_size"):
        DetectorSettings(min_size=200, max_size=100)
    with pytest.raises(ValueError, match="unknown pictograms"):
        DetectorSettings(names=("unicorn",))
    assert DetectorSettings(threshold=0.8).fingerprint != DetectorSettings().fingerprint
    sizes = DetectorSettings().sizes
    assert sizes[0] == 60 and sizes[-1] == 160 and list(sizes) == sorted(sizes)


def test_restricting_the_library_restricts_the_answers():
    image, _ = pictogram_image("knife")
    only = DetectorSettings(names=("flame", "heart"))
    assert all(d.name in ("flame", "heart") for d in detect_symbols(image, settings=only))


def test_no_pictograms_on_plain_photos():
    found = {i: [d.name for d in detect_symbols(p)] for i, p in enumerate(plain_photos(8))}
    assert all(not v for v in found.values()), found


def test_quiet_region_avoids_texture_and_given_boxes():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    arr[:, 200:] = 128  # the right half is flat
    box = find_quiet_region(arr, (80, 40))
    assert box[0] >= 200 and box[2] - box[0] == 80 and box[3] - box[1] == 40
    blocked = (200, 0, 400, 150)
    box2 = find_quiet_region(arr, (80, 40), [blocked])
    assert box2[1] >= 150 + 6 - 1 and box2[0] >= 200
    # A region larger than the image shrinks to fit; an image too small for any raises.
    small = find_quiet_region(arr[:40, :60], (80, 40))
    assert small[2] <= 60 and small[3] <= 40
    with pytest.raises(ValueError, match="does not fit"):
        find_quiet_region(arr[:12, :12], (80, 40))


@pytest.mark.slow
def test_demo_symbol_seeds_detected_without_false_positives(demo_subset):  # noqa: F811
    """Measured on the full demo: 72/72 unsafe pictograms named first, no pictogram on the
    'none' seeds or on plain photos; asserted with a margin."""
    root, rows = demo_subset
    unsafe = [r for r in rows if r["rating"] == "unsafe" and r["feature_kind"] == "symbol"]
    hits = 0
    for row in unsafe:
        found = detect_symbols(image_of(root, row))
        if found and found[0].name == row["symbol"]:
            x0, y0, x1, y1 = row["feature_box"]
            b = found[0].box
            hits += x0 - 3 <= b[0] and y0 - 3 <= b[1] and b[2] <= x1 + 3 and b[3] <= y1 + 3
    rate = hits / len(unsafe)
    assert rate >= 0.9, f"detected {rate:.0%} of {len(unsafe)} demo pictograms"
    none = [r for r in rows if r["feature_kind"] == "none"]
    false = [d.name for r in none for d in detect_symbols(image_of(root, r))]
    assert len(false) <= 1, false


def test_fast_correlations_agree_with_opencv_matchtemplate():
    """The detector's own |TM_CCOEFF_NORMED| (sparse edge sums, region DFTs) against OpenCV's."""
    import numpy as np

    from spairs_assets.vision import symbols as s

    rng = np.random.default_rng(0)
    gray = (rng.random((90, 110)) * 255).astype(np.float32)
    gray[20:60, 30:70] = 10.0  # a flat patch: OpenCV scores flat windows 0
    plane = s._Plane(gray)
    name = s.DEFAULT_DETECTOR_SETTINGS.library[0]
    for size, angle in ((21, 0.0), (27, 15.0)):
        templ = s._template(name, size, angle)
        ref = s._ncc(gray, templ)
        assert ref.max() > 0.1 and (ref == 0).any()  # real correlations and flat windows
        side = templ.shape[0]
        ny, nx = gray.shape[0] - side + 1, gray.shape[1] - side + 1
        [small] = s._match_small(plane, [(s._kernel(name, size, angle), 0, 0, ny, nx)])
        [wide] = s._match_wide(plane, name, [(size, angle, 0, 0, ny, nx)])
        np.testing.assert_allclose(small.reshape(ny, nx), ref, atol=1e-4)
        np.testing.assert_allclose(wide.reshape(ny, nx), ref, atol=1e-4)
