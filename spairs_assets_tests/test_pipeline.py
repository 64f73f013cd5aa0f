"""The per-category pipeline end to end on a small demo, through Dagster: verification,
curation, the blocking minimality check, the benchmark and the dataset export."""

import json

import dagster as dg
import pytest

from spairs_assets_tests.fixtures_models import tiny_llava  # noqa: F401
from spairs_assets_tests.pipeline_fixtures import catalog, materialize_categories, tables, write_project

pytestmark = pytest.mark.slow
CATEGORIES = ["O2_violence", "O6_weapons_substances"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    config_path = write_project(tmp_path_factory.mktemp("project"),
                                benchmark={"splits": ["train", "validation", "test"]})
    with dg.instance_for_test() as instance:
        results = materialize_categories(config_path, CATEGORIES, instance, summaries=True)
        yield config_path, instance, results


def test_every_asset_and_check_succeeds(project):
    _, _, results = project
    for result in results:
        assert result.success
        failed = [(e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations()
                  if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
        assert failed == []


def test_curated_pairs_are_verified_minimal_and_split_by_source(project):
    config_path, _, _ = project
    rows = catalog(config_path).query(
        "SELECT c.*, v.flip_verified AS v_flip, v.passed AS v_passed FROM curated_pairs c "
        "JOIN verification_scores v USING (edit_id) WHERE c.decision = 'accepted'").to_pylist()
    assert len(rows) >= 8  # 6 seeds per category, most of them flip
    assert all(r["v_flip"] and r["v_passed"] for r in rows)
    assert all(r["ssim"] >= 0.75 and r["outside_changed_fraction"] == 0 for r in rows)
    splits_per_source = {}
    for r in rows:
        splits_per_source.setdefault(r["source_image_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_per_source.values())
    # Each pair's verdicts are recorded for both images, by every judge.
    judged = catalog(config_path).query(
        "SELECT source_verdicts, edited_verdicts FROM verification_scores WHERE kind = 'edit'").to_pylist()
    for r in judged:
        assert set(json.loads(r["source_verdicts"])) == {"ocr-lexicon", "ocr-embedding", "open-nsfw", "pictogram"}


def test_rerun_computes_nothing(project):
    config_path, instance, _ = project
    [result] = materialize_categories(config_path, CATEGORIES[:1], instance)
    assert result.success
    materializations = [e.event_specific_data.materialization
                        for e in result.get_asset_materialization_events()]
    by_asset = {m.asset_key.to_user_string(): m.metadata for m in materializations}
    assert by_asset["edit_instructions"]["work/computed"].value == 0
    assert by_asset["edited_images"]["work/computed"].value == 0
    calls = by_asset["benchmark_results"]["model_calls"].value
    assert set(calls) == {"ocr-lexicon", "ocr-embedding", "open-nsfw", "pictogram", "linear-probe-guard"}
    assert set(calls.values()) == {0}


def test_export_loads_back_with_a_card_listing_counts(project, tmp_path):
    import datasets

    from spairs_assets.config import load_config
    from spairs_assets.curation.export import export_from_tables, pipeline_provenance
    from spairs_assets.storage import ImageStore

    config_path, _, _ = project
    config = load_config(config_path)
    t = tables(config_path)
    result = export_from_tables(t, ImageStore(t.storage), config.safety_policy, tmp_path / "out",
                                pipeline_provenance(config))
    loaded = datasets.load_from_disk(str(tmp_path / "out" / "hf"))
    accepted = catalog(config_path).query(
        "SELECT category, split, count(*) AS n FROM curated_pairs WHERE decision = 'accepted' "
        "GROUP BY ALL").to_pylist()
    assert sum(len(loaded[s]) for s in loaded) == sum(r["n"] for r in accepted)
    for r in accepted:
        assert result.counts[r["category"]][r["split"]] == r["n"]
    card = (tmp_path / "out" / "README.md").read_text()
    for category in CATEGORIES:
        total = sum(r["n"] for r in accepted if r["category"] == category)
        label = config.safety_policy.category(category).label
        assert any(line.startswith(f"| {label} |") and line.endswith(f"| {total} |")
                   for line in card.splitlines())
    assert "Harmful-content notice" in card
    croissant = json.loads((tmp_path / "out" / "croissant.json").read_text())
    assert croissant["rai:hasSyntheticData"] is True and "rai:dataCollection" in croissant
    sample = loaded[next(iter(loaded))][0]
    assert sample["unsafe_image"].size == sample["safe_image"].size


def test_leaderboard_covers_every_model_with_intervals(project):
    config_path, _, results = project
    summary_checks = {e.check_name: e.passed for e in results[-1].get_asset_check_evaluations()}
    assert all(summary_checks.values()) and {"benchmark_leaderboard_expectations",
                                             "cross_category_leakage"} <= set(summary_checks)
    board = catalog(config_path).query(
        "SELECT * FROM benchmark_leaderboard WHERE category = 'all' ORDER BY rank").to_pylist()
    assert {r["model"] for r in board} == {"ocr-lexicon", "ocr-embedding", "open-nsfw", "pictogram",
                                           "linear-probe-guard"}  # the trained guard is benchmarked
    for r in board:
        assert r["pair_accuracy_low"] <= r["pair_accuracy"] <= r["pair_accuracy_high"]
    report = config_path.parent / "data" / "reports" / "benchmark" / "report.html"
    assert "pair accuracy" in report.read_text().lower()


def test_planted_non_minimal_edit_fails_edit_minimality_and_stops_downstream(tmp_path):
    """A verification bug records a non-minimal edit as passing: the blocking check recomputes
    minimality from the stored images, fails, and the benchmark downstream does not run."""
    import numpy as np

    from spairs_assets.defs.benchmark import benchmark_results
    from spairs_assets.defs.curation import curated_pairs
    from spairs_assets.storage import ImageStore

    config_path = write_project(tmp_path)
    category = "O2_violence"
    with dg.instance_for_test() as instance:
        [first] = materialize_categories(config_path, [category], instance)
        assert first.success
        t = tables(config_path)
        images = ImageStore(t.storage)
        scores = t.read_rows("verification_scores", category)
        chosen = next(r["edit_id"] for r in t.read_rows("curated_pairs", category)
                      if r["decision"] == "accepted")
        victim = next(r for r in scores if r["edit_id"] == chosen)
        rng = np.random.default_rng(0)
        source = images.load_array(victim["source_image_id"]).astype(np.int16)
        noisy = np.clip(source + rng.integers(-60, 60, source.shape), 0, 255).astype(np.uint8)
        victim["edited_image_id"] = images.put(noisy).image_id  # scores still say "minimal"
        t.write("verification_scores", category, [{k: v for k, v in r.items()
                                                   if k not in ("run_id", "code_version")}
                                                  for r in scores], run_id="plant", code_version="plant")

        [result] = materialize_categories(config_path, [category], instance,
                                          assets=[curated_pairs, benchmark_results])
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not checks["edit_minimality"].passed
        assert checks["edit_minimality"].metadata["violations"].value >= 1
        materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert "curated_pairs" in materialized  # a failing blocking check leaves its asset written
        assert "benchmark_results" not in materialized  # ...and stops what is downstream
        events = {(e.event_type_value, e.step_key) for e in result.all_events if e.step_key}
        assert ("STEP_FAILURE", "curated_pairs_edit_minimality") in events
        assert not any(key == "benchmark_results" for _, key in events)  # never started
        assert not result.success


def test_adding_a_model_evaluates_only_that_model(project, tiny_llava):
    """A tiny random LLaVA joins the CPU judges: it is the only model that makes calls, its
    garbage answers are recorded as invalid outputs, and the leaderboard lists it."""
    import yaml

    from spairs_assets.defs.benchmark import benchmark_results

    config_path, instance, _ = project
    settings = yaml.safe_load(config_path.read_text())
    models = [{"kind": k} for k in ("ocr-lexicon", "ocr-embedding", "open-nsfw", "pictogram")]
    models.append({"kind": "vlm", "name": "tiny-llava",
                   "model": {"model": str(tiny_llava), "max_new_tokens": 8}})
    settings["benchmark"]["models"] = models
    config_path.write_text(yaml.safe_dump(settings))

    [result] = materialize_categories(config_path, ["O2_violence"], instance, assets=[benchmark_results])
    assert result.success
    mat = next(e.event_specific_data.materialization for e in result.get_asset_materialization_events())
    calls = mat.metadata["model_calls"].value
    pairs = mat.metadata["pairs"].value
    assert calls == {"ocr-lexicon": 0, "ocr-embedding": 0, "open-nsfw": 0, "pictogram": 0,
                     "tiny-llava": 2 * pairs}
    rows = [r for r in tables(config_path).read_rows("benchmark_results", "O2_violence")
            if r["model"] == "tiny-llava"]
    assert len(rows) == 2 * pairs and all(r["raw_output"] is not None for r in rows)
    assert all(r["rating"] is None or r["rating"] in ("Safe", "Unsafe") for r in rows)

    [again] = materialize_categories(config_path, ["O2_violence"], instance, assets=[benchmark_results])
    mat = next(e.event_specific_data.materialization for e in again.get_asset_materialization_events())
    assert set(mat.metadata["model_calls"].value.values()) == {0}

    summary = materialize_categories(config_path, [], instance, summaries=True)[-1]
    assert summary.success
    board = catalog(config_path).query("SELECT DISTINCT model FROM benchmark_leaderboard").to_pylist()
    assert {"model": "tiny-llava"} in board
