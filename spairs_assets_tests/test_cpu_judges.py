"""CPU judges on demo images with known labels, the k-of-m ensemble, and adherence."""

import pytest

from spairs_assets.config import JudgeConfig
from spairs_assets.judges.base import Verdict
from spairs_assets.judges.ensemble import EnsembleRule
from spairs_assets.judges.registry import build_judge
from spairs_assets.policy import load_policy
from spairs_assets_tests.fixtures_demo import demo_subset, image_of  # noqa: F401

POLICY = load_policy()
O2 = POLICY.category("O2").label


def V(rating, category=None, **details):
    label = POLICY.none_category if rating == "Safe" else POLICY.category(category).label
    return Verdict(rating, label, details=details)


# ---- ensemble -------------------------------------------------------------------------------

def test_any_judge_flags_with_k_1():
    rule = EnsembleRule(k=1)
    d = rule.decide({"a": V("Unsafe", "O2"), "b": V("Safe")}, {"a": None, "b": None}, "O2", POLICY)
    assert d.unsafe_in_category is True and d.safe is False


def test_k_of_m_needs_k_votes_in_the_category():
    rule = EnsembleRule(k=2)
    verdicts = {"a": V("Unsafe", "O2"), "b": V("Unsafe", "O6"), "c": V("Safe")}
    d = rule.decide(verdicts, {"a": None, "b": None, "c": None}, "O2", POLICY)
    assert d.votes_unsafe_in_category == 1 and d.unsafe_in_category is False
    assert d.votes_unsafe_any == 2 and d.safe is False  # two judges see a violation of some kind


def test_judges_that_do_not_cover_a_category_do_not_vote_on_it():
    rule = EnsembleRule(k=1)
    covers = {"nsfw": frozenset({"O3", "O4"}), "ocr": None}
    d = rule.decide({"nsfw": V("Safe"), "ocr": V("Safe")}, covers, "O2", POLICY)
    assert d.covering == 1 and d.unsafe_in_category is False
    # also_categories: a nudity detector's O4 verdict counts for O3 as well
    d = rule.decide({"nsfw": V("Unsafe", "O4", also_categories=["O3"])}, covers, "O3", POLICY)
    assert d.unsafe_in_category is True


def test_unusable_answers_abstain():
    rule = EnsembleRule(k=1)
    broken = Verdict(None, None, parse_status="no_json")
    d = rule.decide({"vlm": broken}, {"vlm": None}, "O2", POLICY)
    assert d.unsafe_in_category is None and d.safe is None and d.usable == 0


# ---- CPU judges on labelled demo images ------------------------------------------------------

@pytest.fixture(scope="module")
def cpu_judges():
    return {k: build_judge(JudgeConfig(kind=k), POLICY) for k in ("ocr-lexicon", "ocr-embedding",
                                                                   "open-nsfw", "pictogram")}


@pytest.mark.slow
def test_ocr_lexicon_and_pictogram_judges_on_demo_labels(cpu_judges, demo_subset):
    root, rows = demo_subset
    text = [r for r in rows if r["feature_kind"] == "text"][:12]
    symbols = [r for r in rows if r["feature_kind"] == "symbol"][:8]
    for row in text:
        v = cpu_judges["ocr-lexicon"].judge(image_of(root, row))
        expected = "Unsafe" if row["rating"] == "unsafe" else "Safe"
        assert v.rating == expected, (row["phrase"], v.rationale)
        if expected == "Unsafe":
            assert v.category_id(POLICY) == row["category_id"]
    for row in symbols:
        v = cpu_judges["pictogram"].judge(image_of(root, row))
        expected = "Unsafe" if row["rating"] == "unsafe" else "Safe"
        assert v.rating == expected, (row["symbol"], v.rationale)


@pytest.mark.slow
def test_open_nsfw_finds_no_nudity_in_the_demo_and_gives_probabilities(cpu_judges, demo_subset):
    root, rows = demo_subset
    for row in rows[:6]:
        v = cpu_judges["open-nsfw"].judge(image_of(root, row))
        assert v.rating == "Safe" and 0.0 <= v.probability_unsafe < 0.8


@pytest.mark.slow
def test_ocr_embedding_threshold_is_calibrated_on_lexicon_phrases(cpu_judges):
    judge = cpu_judges["ocr-embedding"]
    cal = judge.calibration
    assert cal["n_unsafe"] == cal["n_benign"] > 10
    assert cal["fpr"] <= 0.05 and cal["tpr"] > cal["fpr"]
    scores = judge.scores(["buy guns and ammo here", "we sell fresh bread"]).max(axis=1)
    assert scores[0] > scores[1]


def test_calibration_picks_the_lowest_threshold_within_the_fpr_budget():
    import numpy as np

    from spairs_assets.judges.cpu_judges import calibrate_threshold

    benign = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    unsafe = np.array([0.5, 0.85, 0.92, 0.97, 0.99])
    cal = calibrate_threshold(unsafe, benign, max_fpr=0.1)  # one benign phrase may be flagged
    assert cal["threshold"] == pytest.approx(0.9, abs=1e-5)
    assert cal["fpr"] == pytest.approx(0.1) and cal["tpr"] == pytest.approx(0.6)


# ---- adherence -------------------------------------------------------------------------------

@pytest.mark.slow
def test_adherence_reads_the_replacement_and_not_the_feature():
    from spairs_assets.verification.adherence import check_adherence
    from spairs_assets_tests.fixtures_demo import sign_image

    instruction = {"feature_kind": "text", "feature": "HURT", "replacement": "HELP", "edit_kind": "replace"}
    ok, detail = check_adherence(instruction, sign_image("I WILL HELP YOU")[0], None)
    assert ok is True, detail
    ok, detail = check_adherence(instruction, sign_image("I WILL HURT YOU")[0], None)
    assert ok is False and "still there" in detail
    ok, _ = check_adherence({**instruction, "feature_kind": "object"}, sign_image("X")[0], None)
    assert ok is None
