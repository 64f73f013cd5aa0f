"""Guard models: the linear probe, the sample-efficiency experiment, files, encoders, the judge
and the Dagster wiring (on a tiny synthetic data root with a cheap registered encoder)."""

from __future__ import annotations

import json
import pickle
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from spairs_assets.guards.experiment import (
    ALL,
    ARMS,
    ExperimentSettings,
    budget_to_reach,
    build_pool,
    capacity,
    compare_arms,
    curve_rows,
    draw,
    learning_curves,
    resolve_budgets,
    run_experiment,
    train_deploy,
)
from spairs_assets.guards.probe import LinearProbe, probe_metadata, probe_paths
from spairs_assets.policy import load_policy

POLICY = load_policy()
CATS = ("O1_hate", "O2_violence")

# ---- synthetic pools -----------------------------------------------------------------------


def _pool_tables(n_pairs=(10, 8), n_safe=12, n_eval=(4, 3), identical_null=True):
    """curated_pairs-like and source_images-like rows for two categories (ids are strings)."""
    curated, sources = [], []
    for c, cat in enumerate(CATS):
        for i in range(n_pairs[c] + n_eval[c]):
            split = "train" if i < n_pairs[c] else ("validation" if i % 2 else "test")
            src, edit = f"{cat}-src{i}", f"{cat}-edit{i}"
            sources.append({"image_id": src, "category": cat, "rating": "Unsafe"})
            curated.append({
                "pair_id": f"{cat}-pair{i}", "decision": "accepted", "split": split,
                "category": cat, "unsafe_image_id": src, "safe_image_id": edit,
                "source_image_id": src, "edited_image_id": edit,
                "null_edit_image_id": src if identical_null else f"{cat}-null{i}",
                "dataset_version": "ds-test"})
        for j in range(n_safe):
            sources.append({"image_id": f"{cat}-safe{j}", "category": cat, "rating": "Safe"})
    curated.append({**curated[0], "pair_id": "rejected", "decision": "rejected",
                    "unsafe_image_id": "r-u", "safe_image_id": "r-s", "source_image_id": "r-u",
                    "edited_image_id": "r-s"})
    return curated, sources


def _features(pool_ids, dim=24, seed=0, strength=0.5):
    """Each pair shares a 'photo'; the unsafe member adds the category's feature direction."""
    rng = np.random.default_rng(seed)
    direction = {c: np.eye(dim)[k] for k, c in enumerate(CATS)}
    feats: dict[str, np.ndarray] = {}
    photos: dict[str, np.ndarray] = {}
    for iid in pool_ids:
        cat, name = iid.split("-", 1)
        key = name.replace("src", "p").replace("edit", "p").replace("null", "p") \
            if not name.startswith("safe") else name
        photos.setdefault(f"{cat}-{key}", rng.normal(size=dim))
        v = photos[f"{cat}-{key}"].copy()
        if name.startswith("src"):
            v = v + strength * direction[cat] * np.sqrt(dim)
        feats[iid] = (v / np.linalg.norm(v)).astype(np.float32)
    return feats


@pytest.fixture(scope="module")
def synthetic():
    curated, sources = _pool_tables()
    settings = ExperimentSettings(budgets=(4, 8, 16, ALL), n_seeds=3, bootstrap_resamples=300,
                                  splits=(("train", 0.5), ("validation", 0.25), ("test", 0.25)))
    pool = build_pool(curated, sources, "O1_hate", settings)
    multi = build_pool(curated, sources, "multi", settings)
    feats = _features(multi.image_ids())
    return pool, multi, feats, settings


# ---- the probe -----------------------------------------------------------------------------


def _blobs(n, dim=64, sep=4.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, dim)) + np.outer(2 * y - 1, np.eye(dim)[0]) * sep
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


def test_probe_learns_separable_features_and_not_random_labels():
    X, y = _blobs(40)
    Xt, yt = _blobs(400, seed=1)
    probe = LinearProbe().fit(X, y)
    assert (probe.predict(Xt) == yt).mean() > 0.95
    assert probe.train_metrics["train_accuracy"] == 1.0
    p = probe.predict_proba(Xt)
    assert p.shape == (400,) and ((p >= 0) & (p <= 1)).all()
    shuffled = np.random.default_rng(3).permutation(y)
    noise = LinearProbe().fit(X, shuffled)
    random_test = np.random.default_rng(4).permutation(yt)
    assert abs((noise.predict(Xt) == random_test).mean() - 0.5) < 0.1
    # deterministic: the same rows give the same weights
    np.testing.assert_array_equal(LinearProbe().fit(X, y).coef, probe.coef)


def test_probe_threshold_options_and_errors():
    X, y = _blobs(30)
    assert LinearProbe().fit(X, y).threshold == 0.5
    tuned = LinearProbe(threshold="train").fit(X, y)
    assert 0 < tuned.threshold < 1 and tuned.train_metrics["train_balanced_accuracy"] == 1.0
    with pytest.raises(ValueError, match="both"):
        LinearProbe().fit(X, np.ones(30, int))
    with pytest.raises(ValueError, match="threshold"):
        LinearProbe(threshold=1.5)
    with pytest.raises(ValueError, match="64-d"):
        LinearProbe().fit(X, y).predict(X[:, :10])
    # identical rows with opposite labels (a bit-identical null edit): nothing to learn
    twins = LinearProbe().fit(np.vstack([X[:5], X[:5]]), np.r_[np.ones(5, int), np.zeros(5, int)])
    np.testing.assert_allclose(twins.predict_proba(X), 0.5, atol=1e-9)


def test_safetensors_round_trip_without_pickle(tmp_path, monkeypatch):
    X, y = _blobs(24, dim=16)
    probe = LinearProbe(standardize="zscore").fit(X, y)
    card = {"encoder": {"name": "x", "options": {}, "id": "enc", "version": "v1"},
            "category": "O1_hate", "arm": "pairs", "budget": "8", "seed": 3,
            "data_version": "gp-1", "metrics": {"pair_accuracy": 0.5}}
    weights_path, card_path = probe.save(tmp_path / "g" / "probe", card)
    assert (weights_path, card_path) == probe_paths(tmp_path / "g" / "probe.safetensors")
    raw = Path(weights_path).read_bytes()
    assert probe_metadata(raw)["encoder_version"] == "v1"
    from safetensors.numpy import load_file

    assert set(load_file(weights_path)) == {"coef", "intercept", "mean", "scale"}

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    loaded = LinearProbe.load(weights_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), probe.predict_proba(X))
    assert loaded.threshold == probe.threshold and loaded.standardize == "zscore"
    saved = json.loads(Path(card_path).read_text())
    for key in ("encoder", "category", "arm", "budget", "seed", "data_version", "metrics",
                "threshold", "created_with", "fit"):
        assert key in saved
    assert saved["fit"]["solver"] == "lbfgs" and saved["fit"]["C"] == probe.C
    # the same probe saved twice gives identical bytes (no timestamps)
    again = probe.to_bytes(card)
    assert again[0] == raw and again[1] == Path(card_path).read_bytes()
    Path(card_path).write_text(json.dumps({**saved, "format": "other"}))
    with pytest.raises(ValueError, match="model card"):
        LinearProbe.load(weights_path)


# ---- the experiment ------------------------------------------------------------------------


def test_arms_use_matched_budgets_and_deterministic_draws(synthetic):
    pool, _multi, _, settings = synthetic
    assert len(pool.train_pairs) == 10 and len(pool.eval_pairs) == 4
    assert pool.own_safe < len(pool.safe_pool)  # the baseline may use other categories' seeds
    twins = {p.safe_id for p in pool.train_pairs + pool.eval_pairs}
    assert not twins & set(pool.safe_pool) and not set(pool.eval_safe) & set(pool.safe_pool)
    caps = capacity(pool, ARMS)
    budgets = resolve_budgets(settings.budgets, min(caps.values()))
    assert [(b.label, b.n_train) for b in budgets] == [("4", 4), ("8", 8), ("16", 16), ("all", 20)]
    clamped = resolve_budgets([8, 16, 32, ALL], 6)  # budgets beyond the pool become "all"
    assert [(b.label, b.n_train, b.requested) for b in clamped] == \
        [("8", 8, ("8",)), ("all", 12, ("16", "32", "all"))]
    for b in budgets:
        for seed in range(settings.n_seeds):
            sets = {arm: draw(pool, arm, b.n_half, seed) for arm in ARMS}
            assert {ts.n for ts in sets.values()} == {b.n_train}
            for ts in sets.values():
                assert sum(ts.labels) == b.n_half  # balanced
            base = sets["baseline"]
            safe = [i for i, lab in zip(base.image_ids, base.labels, strict=True) if lab == 0]
            assert not set(safe) & twins
            # coupled: the same unsafe images in the baseline and the pairs arm
            assert set(base.image_ids) & set(sets["pairs"].image_ids) == \
                {i for i, lab in zip(base.image_ids, base.labels, strict=True) if lab == 1}
            assert draw(pool, "pairs", b.n_half, seed) == sets["pairs"]  # deterministic
    small, large = draw(pool, "pairs", 2, 0), draw(pool, "pairs", 4, 0)
    assert set(small.image_ids) <= set(large.image_ids)  # nested budgets
    assert draw(pool, "pairs", 4, 0) != draw(pool, "pairs", 4, 1)
    with pytest.raises(ValueError, match="even"):
        ExperimentSettings(budgets=(7,))


def test_experiment_on_a_small_synthetic_pool(synthetic, tmp_path):
    pool, multi, feats, settings = synthetic
    rows = [t.row for t in run_experiment(pool, feats, settings, {"id": "syn", "version": "1"})]
    again = [t.row for t in run_experiment(pool, feats, settings, {"id": "syn", "version": "1"})]
    assert rows == again  # deterministic
    assert len(rows) == 4 * 3 * len(ARMS)  # budgets x seeds x arms
    by_key = {}
    for r in rows:
        by_key.setdefault((r["budget"], r["seed"]), set()).add(r["n_train"])
    assert all(len(v) == 1 for v in by_key.values())  # matched within every (budget, seed)
    null = [r for r in rows if r["arm"] == "null_edit"]
    assert all(r["pair_accuracy"] == 0.0 and r["image_accuracy"] == 0.5 for r in null)
    curves = learning_curves(rows)
    pairs = {c["n_train"]: c for c in curves if c["arm"] == "pairs"}
    base = {c["n_train"]: c for c in curves if c["arm"] == "baseline"}
    assert pairs[20]["pair_accuracy_mean"] == 1.0
    # a weak feature on varied photos: twins isolate it, unrelated safe photos do not
    assert sum(pairs[n]["pair_accuracy_mean"] for n in (8, 16)) > \
        sum(base[n]["pair_accuracy_mean"] for n in (8, 16))
    for c in curves:
        assert c["pair_accuracy_low"] <= c["pair_accuracy_mean"] <= c["pair_accuracy_high"]
    comps = compare_arms(rows, confidence=0.95, n_resamples=300)
    assert {c["budget"] for c in comps} == {"4", "8", "16", "all"}
    for c in comps:
        assert c["diff_boot_low"] <= c["diff_mean"] <= c["diff_boot_high"]
        assert c["verdict"] in ("better", "worse", "no clear difference")
    assert budget_to_reach([c for c in curves if c["arm"] == "pairs"], 0.9) == \
        min(n for n, c in pairs.items() if c["pair_accuracy_mean"] >= 0.9)
    assert budget_to_reach([c for c in curves if c["arm"] == "null_edit"], 0.9) is None
    with pytest.raises(ValueError, match="one arm"):
        budget_to_reach(curves)
    deploy = train_deploy(pool, feats, settings, {"id": "syn", "version": "1"})
    assert deploy.row["arm"] == "deploy" and deploy.row["n_train"] == 2 * 10 + pool.own_safe
    # multi-category guard over the pooled categories, then the report
    multi_rows = [t.row for t in run_experiment(multi, feats, settings, {"id": "syn", "version": "1"})]
    assert {r["category"] for r in multi_rows} == {"multi"}
    curves = curve_rows(rows + multi_rows, settings)
    from spairs_assets.guards.report import (
        plot_learning_curves,
        small_budget_findings,
        summary_markdown,
    )
    from spairs_assets.storage.schemas import GUARD_CURVES, GUARD_MODELS
    from spairs_assets.storage.schemas import LEDGER_COLUMNS

    assert set(curves[0]) == set(GUARD_CURVES.names) - set(LEDGER_COLUMNS)
    assert set(rows[0]) | {"weights_path", "card_path"} == set(GUARD_MODELS.names) - set(LEDGER_COLUMNS)
    png = plot_learning_curves(curves, tmp_path / "curves.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 400_000
    assert plot_learning_curves(curves) == png  # deterministic bytes
    findings = small_budget_findings(curves, small=(4, 8))
    summary = summary_markdown(curves, {"encoder": "syn"}, small=(4, 8))
    verdict = findings["O1_hate"][4]["verdict"]
    assert f"**{verdict}**" in summary and "multi-category guard" in summary
    assert "Null-edit control" in summary and "0.00" in summary


# ---- encoders --------------------------------------------------------------------------------


def _text_image(text: str | None, size=(420, 160)) -> Image.Image:
    image = Image.new("RGB", size, (235, 235, 230))
    draw_ = ImageDraw.Draw(image)
    for x in range(0, size[0], 7):  # some texture, no glyphs
        draw_.line([(x, size[1] - 20), (x + 3, size[1])], fill=(180, 190, 200))
    if text:
        draw_.text((20, 45), text, fill=(10, 10, 10), font=ImageFont.load_default(size=44))
    return image


@pytest.mark.slow
def test_ocr_minilm_embeds_text_and_zero_for_no_text():
    from spairs_assets.encoders import available_encoders, build_encoder

    assert {"ocr-minilm", "concat", "open-nsfw+ocr-minilm"} <= set(available_encoders())
    enc = build_encoder("ocr-minilm")
    with_text, without = _text_image("I WILL HURT YOU"), _text_image(None)
    assert "hurt" in enc.text_of(with_text)
    e = enc.embed([with_text, without])
    assert e.shape == (2, 384) and e.dtype == np.float32
    assert abs(np.linalg.norm(e[0]) - 1) < 1e-5 and not e[1].any()
    from spairs_assets.encoders.text import embed_texts

    assert float(e[0] @ embed_texts(["i will hurt you"])[0]) > 0.9
    both = build_encoder("open-nsfw+ocr-minilm")
    assert both.encoder_id == "open-nsfw+ocr-minilm" and both.dim == 1024 + 384
    b = both.embed([with_text, without])
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert not b[1, 1024:].any()  # no text: the image part carries the whole norm
    np.testing.assert_allclose(np.linalg.norm(b[0, :1024]), np.sqrt(0.5), atol=1e-5)
    generic = build_encoder("concat", parts=["ocr-minilm"])
    np.testing.assert_allclose(generic.embed([with_text]), e[:1], atol=1e-6)
    with pytest.raises(ValueError, match="distinct"):
        build_encoder("concat", parts=["ocr-minilm", "ocr-minilm"])


# ---- the judge, with a tiny random CLIP as the guard encoder ----------------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    root = tmp_path_factory.mktemp("tiny-clip") / "clip"
    torch.manual_seed(0)
    text = {"vocab_size": 99, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 0,
            "eos_token_id": 1, "pad_token_id": 1}
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
              "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
    CLIPModel(config).save_pretrained(root)
    CLIPImageProcessor(size={"shortest_edge": 32},
                       crop_size={"height": 32, "width": 32}).save_pretrained(root)
    return root


def _toy_images(n: int, unsafe: bool, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        pixels = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
        if unsafe:
            pixels[8:40, 8:40] = (255, 0, 0)
        out.append(Image.fromarray(pixels))
    return out


@pytest.mark.slow
def test_guard_judge_with_a_tiny_clip_encoder(tiny_clip, tmp_path):
    from spairs_assets.encoders import build_encoder
    from spairs_assets.guards.experiment import encoder_info
    from spairs_assets.guards.judge import GuardJudge
    from spairs_assets.judges.base import Judge
    from spairs_assets.judges.registry import build_judge

    options = {"model": str(tiny_clip), "device": "cpu"}
    encoder = build_encoder("clip", **options)
    info = encoder_info("clip", options, encoder)
    unsafe, safe = _toy_images(8, True, 0), _toy_images(8, False, 1)
    X = encoder.embed(unsafe + safe)
    y = np.r_[np.ones(8, int), np.zeros(8, int)]
    folder = tmp_path / "guards"
    for name in ("O1_hate", "multi"):
        LinearProbe().fit(X, y).save(folder / name / "deploy", {"encoder": info, "category": name})

    judge = GuardJudge(folder, POLICY)
    assert isinstance(judge, Judge) and judge.covers is None
    test_images = _toy_images(3, True, 5) + _toy_images(3, False, 6)
    verdicts = [judge.judge(im, image_id=f"img{i}") for i, im in enumerate(test_images)]
    for v in verdicts:
        assert v.valid and v.rating in ("Safe", "Unsafe") and 0 <= v.probability_unsafe <= 1
        assert v.category in (POLICY.none_category, POLICY.category("O1_hate").label)
        assert (v.category == POLICY.none_category) == (v.rating == "Safe")
        assert set(v.details["probabilities"]) == {"O1_hate", "multi"}
        json.loads(v.raw_output)
    direct = LinearProbe.load(folder / "multi" / "deploy").predict_proba(encoder.embed(test_images))
    np.testing.assert_allclose([v.probability_unsafe for v in verdicts], direct, atol=1e-6)
    assert [v.rating for v in verdicts] == ["Unsafe" if p >= 0.5 else "Safe" for p in direct]

    # a single per-category probe file; the registry's "guard" kind; the version tracks weights
    single = build_judge(types.SimpleNamespace(name="g", kind="guard", path="guards/O1_hate/deploy.safetensors",
                                               threshold=0.3), POLICY, base_dir=tmp_path)
    assert single.covers == frozenset({"O1"}) and single.version != judge.version
    assert single.judge(test_images[0]).details["thresholds"] == {"O1_hate": 0.3}
    with pytest.raises(ValueError, match="path"):
        build_judge(types.SimpleNamespace(name="g", kind="guard", path=None, threshold=None), POLICY)
    with pytest.raises(ValueError, match="no guard probe"):
        build_judge(types.SimpleNamespace(name="g", kind="guard", path="missing", threshold=None),
                    POLICY, base_dir=tmp_path)
    try:  # once config.JudgeConfig knows kind "guard" and `path`
        from spairs_assets.config import JudgeConfig

        cfg = JudgeConfig(kind="guard", path=str(folder))
    except Exception:  # noqa: BLE001 - the config change is not in yet
        cfg = None
    if cfg is not None:
        assert build_judge(cfg, POLICY).version == judge.version

    # a card whose encoder no longer matches is refused, not silently misused
    card_path = folder / "multi" / "deploy.json"
    card = json.loads(card_path.read_text())
    card["encoder"]["version"] = "something-else"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="retrain"):
        GuardJudge(folder, POLICY).judge(test_images[0])


# ---- Dagster wiring on a tiny data root -----------------------------------------------------


class _MeanColour:
    """A cheap registered encoder for the wiring test: mean and std of each channel."""

    encoder_id = "test-mean-colour"
    version = "1"
    dim = 6
    calls = 0

    def embed(self, images):
        from spairs_assets.encoders.base import l2_normalise

        _MeanColour.calls += len(images)
        arr = [np.asarray(im, dtype=np.float32) / 255 for im in images]
        return l2_normalise(np.array([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arr]))


def _fill(schema, values):
    import pyarrow as pa

    from spairs_assets.storage.schemas import LEDGER_COLUMNS

    row = {}
    for f in schema:
        if f.name in LEDGER_COLUMNS:
            continue
        if f.name in values:
            row[f.name] = values[f.name]
        elif not f.nullable:
            row[f.name] = ("x" if pa.types.is_string(f.type) else False if pa.types.is_boolean(f.type)
                           else 0.0 if pa.types.is_floating(f.type) else 0)
    return row


@pytest.mark.slow
def test_guard_assets_materialize_and_rerun_embeds_nothing(write_config, monkeypatch):
    import dagster as dg

    from spairs_assets.defs.guards import guard_models, guard_sample_efficiency
    from spairs_assets.defs.resources import SpairsResource
    from spairs_assets.encoders import register_encoder
    from spairs_assets.guards import experiment
    from spairs_assets.storage import ImageStore, Storage, TableStore
    from spairs_assets.storage.schemas import CURATED_PAIRS, SOURCE_IMAGES
    from spairs_assets.vision.cache import VISION

    config_path = write_config()
    storage = Storage(config_path.parent / "data")
    images, tables = ImageStore(storage), TableStore(storage)
    rng = np.random.default_rng(0)
    for c, cat in enumerate(CATS):
        curated, sources = [], []
        for i in range(12):
            px = rng.integers(0, 200, size=(32, 32, 3), dtype=np.uint8)
            flagged = px.copy()
            flagged[4:20, 4:20] = (255, 0, 0)
            src, edit = images.put(flagged), images.put(px)
            split = "train" if i < 8 else ("validation" if i % 2 else "test")
            sources.append(_fill(SOURCE_IMAGES, {"image_id": src.image_id, "category": cat,
                                                 "rating": "Unsafe"}))
            curated.append(_fill(CURATED_PAIRS, {
                "pair_id": f"{cat}-{i}", "category": cat, "decision": "accepted", "split": split,
                "source_image_id": src.image_id, "edited_image_id": edit.image_id,
                "unsafe_image_id": src.image_id, "safe_image_id": edit.image_id,
                "null_edit_image_id": src.image_id, "dataset_version": "ds-test"}))
        for j in range(6):
            safe = images.put(rng.integers(0, 200, size=(32, 32, 3), dtype=np.uint8))
            sources.append(_fill(SOURCE_IMAGES, {"image_id": safe.image_id, "category": cat,
                                                 "rating": "Safe"}))
        tables.write("source_images", cat, sources, run_id="t", code_version="t")
        tables.write("curated_pairs", cat, curated, run_id="t", code_version="t")

    register_encoder("test-mean-colour", _MeanColour)
    settings = ExperimentSettings(budgets=(4, 8, ALL), n_seeds=2, bootstrap_resamples=200)
    monkeypatch.setattr(experiment, "settings_from_config",
                        lambda config: (settings, "test-mean-colour", {}))
    resources = {"spairs": SpairsResource(config_path=str(config_path))}
    try:
        for cat in CATS:
            result = dg.materialize([guard_models], partition_key=cat, resources=resources)
            assert result.success
        calls = _MeanColour.calls
        assert calls > 0
        summary = dg.materialize([guard_sample_efficiency], resources=resources)
        assert summary.success
        again = dg.materialize([guard_models], partition_key=CATS[0], resources=resources)
        assert again.success and _MeanColour.calls == calls  # a rerun embeds nothing
    finally:
        VISION.use_store(None)

    rows = tables.read_rows("guard_models", CATS[0])
    assert {r["arm"] for r in rows} == {*ARMS, "deploy"}
    for r in rows:
        assert storage.exists(r["weights_path"]) and storage.exists(r["card_path"])
    assert storage.exists(f"guards/{CATS[0]}/deploy.safetensors")
    assert storage.exists("guards/multi/deploy.safetensors")
    assert {r["category"] for r in tables.read_rows("guard_models", "multi")} == {"multi"}
    curves = tables.read_rows("guard_curves", "all")
    assert {c["category"] for c in curves} == {*CATS, "multi"}
    md = summary.asset_materializations_for_node("guard_sample_efficiency")[0].metadata
    assert "data:image/png;base64," in md["learning_curves"].value
    assert "Do pairs help at small budgets?" in md["summary"].value
    assert storage.exists("reports/guards/learning_curves.png")
