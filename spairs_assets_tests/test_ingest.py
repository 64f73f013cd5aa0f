import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spairs_assets.config import ConfigError, load_config
from spairs_assets.sources.ingest import QUARANTINE_REASONS, UNKNOWN_PARTITION
from spairs_assets.sources.seeds import collect_seeds
from spairs_assets.storage import ImageStore, ItemCache, Storage
from spairs_assets_tests.seedfiles import build_good_and_bad_folder, photo, png_bytes, write

LIMITS = {"max_side": 150, "max_pixels": 1_000_000}


def _collect(config, partition="O2_violence"):
    storage = Storage(config.data_url)
    cache = ItemCache(storage, "ingest")
    batch = collect_seeds(config, partition, images=ImageStore(storage), cache=cache, code_version="t")
    return batch, storage


def test_every_bad_input_is_quarantined_with_its_reason_and_no_good_row_is_lost(tmp_path, write_config):
    root = tmp_path / "seeds"
    good, bad = build_good_and_bad_folder(root, tmp_path / "outside")
    config = load_config(write_config(sources={
        **LIMITS, "items": [{"kind": "folder", "name": "mine", "root": str(root), "licence": "CC0"}]}))
    batch, storage = _collect(config)

    got_good = {r["source_path"]: r for r in batch.source_images}
    assert set(got_good) == set(good), "every good file becomes exactly one seed"
    reasons = {r["source_path"]: r["reason"] for r in batch.quarantine + batch.unknown_quarantine}
    assert reasons == bad
    assert set(bad.values()) >= set(QUARANTINE_REASONS) - {"bad_manifest_row"}
    assert all(r["detail"] for r in batch.quarantine)
    assert {r["category"] for r in batch.unknown_quarantine} == {UNKNOWN_PARTITION}

    store = ImageStore(storage)
    for rel, expect in good.items():
        row = got_good[rel]
        img = store.load_array(row["image_id"])
        assert img.dtype == np.uint8 and img.shape[2] == 3
        assert (row["width"], row["height"]) == (img.shape[1], img.shape[0])
        if "size" in expect:
            assert (row["width"], row["height"]) == expect["size"]
        assert row["licence"] == "CC0" and row["category_id"] == "O2"
    assert got_good["O2_violence/safe/rgba.png"]["rating"] == "Safe"
    prov = json.loads(got_good["O2_violence/unsafe/rotated.jpg"]["provenance"])
    assert prov["exif_orientation"] == 6 and prov["original_size"] == [60, 40]
    assert "alpha on white" in json.loads(got_good["O2_violence/safe/rgba.png"]["provenance"])["converted"]
    assert json.loads(got_good["O2_violence/unsafe/gray16.png"]["provenance"])["mode"].startswith("I")


def test_sixteen_bit_and_alpha_are_scaled_not_clipped(tmp_path, write_config):
    root = tmp_path / "seeds"
    ramp = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    write(root / "O2_violence/unsafe/ramp.png", buf.getvalue())
    config = load_config(write_config(sources={"items": [{"kind": "folder", "name": "m", "root": str(root)}]}))
    batch, storage = _collect(config)
    pixels = ImageStore(storage).load_array(batch.source_images[0]["image_id"])
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255
    assert len(np.unique(pixels[..., 0])) > 200  # the ramp survived as a ramp


def test_rerun_gives_identical_rows_and_hits_the_decode_cache(tmp_path, write_config):
    root = tmp_path / "seeds"
    build_good_and_bad_folder(root, tmp_path / "outside")
    config = load_config(write_config(sources={
        **LIMITS, "items": [{"kind": "folder", "name": "mine", "root": str(root)}]}))
    first, _ = _collect(config)
    second, _ = _collect(config)
    assert first.source_images == second.source_images
    assert first.quarantine == second.quarantine
    assert second.cache_hits == len(second.source_images) + 1  # + the duplicate's decode
    assert first.cache_hits == 0


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_manifest_sources(tmp_path, write_config, fmt):
    base = tmp_path / "manifest"
    write(base / "imgs/a.png", png_bytes(photo(seed=1)))
    write(base / "imgs/b.png", png_bytes(photo(seed=2)))
    write(tmp_path / "elsewhere/c.png", png_bytes(photo(seed=3)))
    allowed = tmp_path / "allowed"
    write(allowed / "d.png", png_bytes(photo(seed=4)))
    rows = [
        {"path": "imgs/a.png", "category": "O2", "rating": "unsafe", "source": "lab", "licence": "CC-BY-4.0", "note": "x"},
        {"path": "imgs/b.png", "category": "O2: Violence, Harm, or Cruelty", "rating": "Safe", "source": "", "licence": ""},
        {"path": "../elsewhere/c.png", "category": "O2_violence", "rating": "unsafe", "source": "", "licence": ""},
        {"path": str(allowed / "d.png"), "category": "O2", "rating": "unsafe", "source": "", "licence": ""},
        {"path": "imgs/missing.png", "category": "O2", "rating": "unsafe", "source": "", "licence": ""},
        {"path": "imgs/a.png", "category": "Q7", "rating": "unsafe", "source": "", "licence": ""},
        {"path": "", "category": "O2", "rating": "unsafe", "source": "", "licence": ""},
    ]
    path = base / f"seeds.{fmt}"
    if fmt == "csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            for r in rows:
                writer.writerow({k: r.get(k, "") for k in rows[0]})
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    else:
        pq.write_table(pa.Table.from_pylist([{**{k: "" for k in rows[0]}, **r} for r in rows]), path)
    config = load_config(write_config(sources={
        "allowed_roots": [str(allowed)],
        "items": [{"kind": "manifest", "name": "man", "path": str(path), "licence": "default-licence"}]}))
    batch, _ = _collect(config)
    seeds = {r["source_path"]: r for r in batch.source_images}
    assert set(seeds) == {"imgs/a.png", "imgs/b.png", str(allowed / "d.png")}
    assert seeds["imgs/a.png"]["source_name"] == "lab" and seeds["imgs/a.png"]["licence"] == "CC-BY-4.0"
    assert seeds["imgs/b.png"]["licence"] == "default-licence" and seeds["imgs/b.png"]["rating"] == "Safe"
    assert json.loads(seeds["imgs/a.png"]["provenance"])["note"] == "x"
    reasons = sorted(r["reason"] for r in batch.quarantine + batch.unknown_quarantine)
    expected = ["bad_manifest_row", "outside_roots", "unknown_category", "unreadable"]
    if fmt == "jsonl":
        expected = sorted(expected + ["bad_manifest_row"])
    assert reasons == expected


def test_manifest_missing_columns_is_a_clear_error(tmp_path, write_config):
    path = tmp_path / "m.csv"
    path.write_text("file,category\nx.png,O1\n")
    config = load_config(write_config(sources={"items": [{"kind": "manifest", "name": "m", "path": str(path)}]}))
    with pytest.raises(ValueError, match=r"missing columns \['path', 'rating'\]"):
        _collect(config)


@pytest.mark.parametrize(
    "settings, setting_name",
    [
        ({"sources": {"max_side": 0}}, "sources.max_side"),
        ({"sources": {"items": [{"kind": "ftp", "name": "x"}]}}, "sources.items.0"),
        ({"previews": {"count": -1}}, "previews.count"),
        ({"surprise": 1}, "surprise"),
        ({"policy": "no-such-policy.yaml"}, "policy"),
    ],
)
def test_bad_configuration_fails_early_naming_the_setting(write_config, settings, setting_name):
    with pytest.raises(ConfigError, match=f"`{setting_name}"):
        load_config(write_config(**settings))


def test_incoming_folder_is_read_as_folder_and_manifest_source(tmp_path, write_config):
    incoming = tmp_path / "incoming"
    write(incoming / "O2_violence/unsafe/new.png", png_bytes(photo(seed=30)))
    write(incoming / "batch/one.png", png_bytes(photo(seed=31)))
    (incoming / "batch.csv").write_text("path,category,rating\nbatch/one.png,O2,safe\n")
    config = load_config(write_config(sources={"items": [], "incoming": str(incoming)}))
    batch, _ = _collect(config)
    assert sorted((r["source_name"], r["source_path"], r["rating"]) for r in batch.source_images) == [
        ("incoming", "O2_violence/unsafe/new.png", "Unsafe"),
        ("incoming:batch.csv", "batch/one.png", "Safe"),
    ]
    # Neither the manifest nor the image it lists is mistaken for a badly placed file...
    assert batch.quarantine == [] and batch.unknown_quarantine == []
    # ...but an image no manifest lists, outside <category>/<rating>/, is still reported.
    write(incoming / "batch/stray.png", png_bytes(photo(seed=32)))
    batch, _ = _collect(config)
    assert [(r["source_path"], r["reason"]) for r in batch.unknown_quarantine] == [
        ("batch/stray.png", "bad_layout")]


def test_folder_discovery_never_enters_hidden_folders(tmp_path, monkeypatch):
    """A category being written beside its final place (`.tmp-*`, by another process) may vanish
    mid-walk: discovery must not even list it (this raced when nine categories ran at once)."""
    import os

    from PIL import Image

    from spairs_assets.sources.discover import SeedCandidate, discover_folder

    for rel in ("O1_hate/unsafe/a.png", ".tmp-O3_sexual-x/unsafe/b.png", "O1_hate/safe/.partial.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / rel)
    real_scandir = os.scandir

    def vanished(path="."):
        if "/.tmp-" in str(path):
            raise FileNotFoundError(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", vanished)
    found = list(discover_folder(tmp_path, kind="demo", name="demo", licence=None, allowed_roots=()))
    assert [(c.category_ref, c.rating_ref, c.source_path) for c in found
            if isinstance(c, SeedCandidate)] == [("O1_hate", "unsafe", "O1_hate/unsafe/a.png")]
    assert len(found) == 1
