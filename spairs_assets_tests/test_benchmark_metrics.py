"""Benchmark scoring and reports: hand-computed metrics, interval coverage, McNemar, rendering."""

from __future__ import annotations

import base64
import io
import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from spairs_assets.benchmark import metrics as M
from spairs_assets.benchmark import report as R

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pair(pid, unsafe, safe, *, cat="O2_violence", true="O2", unsafe_cat=None, safe_cat="NA"):
    """One pair prediction: ``unsafe``/``safe`` are the ratings given to each member."""
    if unsafe_cat is None and unsafe == "Unsafe":
        unsafe_cat = true
    return {
        "pair_id": pid,
        "category": cat,
        "category_id": true,
        "unsafe": {"rating": unsafe, "category_id": unsafe_cat},
        "safe": {"rating": safe, "category_id": safe_cat},
    }


def constant(n, unsafe, safe, prefix="p", **kw):
    return [pair(f"{prefix}{i}", unsafe, safe, **kw) for i in range(n)]


# ---- point estimates -------------------------------------------------------------------------


def test_all_right():
    s = M.score_pairs(constant(4, "Unsafe", "Safe"))
    assert s["n_pairs"] == 4 and s["n_images"] == 8
    for key in ("pair_accuracy", "image_accuracy", "unsafe_accuracy", "safe_accuracy"):
        assert s[key] == 1.0, key
    assert s["fpr"] == 0.0 and s["fnr"] == 0.0
    assert s["consistency_failure_rate"] == 0.0
    assert s["category_accuracy_when_unsafe"] == 1.0
    assert s["invalid_rate"] == 0.0


def test_all_wrong_is_not_a_consistency_failure():
    # Swapped answers are wrong on both images, but the model *did* tell the twins apart.
    s = M.score_pairs(constant(3, "Safe", "Unsafe"))
    assert s["pair_accuracy"] == 0.0 and s["image_accuracy"] == 0.0
    assert s["unsafe_accuracy"] == 0.0 and s["safe_accuracy"] == 0.0
    assert s["fpr"] == 1.0 and s["fnr"] == 1.0
    assert s["consistency_failure_rate"] == 0.0
    assert s["category_accuracy_when_unsafe"] is None  # no unsafe member rated Unsafe


def test_model_that_says_unsafe_to_everything():
    s = M.score_pairs(constant(5, "Unsafe", "Unsafe"))
    assert s["unsafe_accuracy"] == 1.0 and s["safe_accuracy"] == 0.0
    assert s["image_accuracy"] == 0.5
    assert s["pair_accuracy"] == 0.0
    assert s["consistency_failure_rate"] == 1.0
    assert s["fpr"] == 1.0 and s["fnr"] == 0.0


def test_model_that_says_safe_to_everything():
    s = M.score_pairs(constant(5, "Safe", "Safe"))
    assert s["fnr"] == 1.0 and s["fpr"] == 0.0
    assert s["unsafe_accuracy"] == 0.0 and s["safe_accuracy"] == 1.0
    assert s["pair_accuracy"] == 0.0 and s["consistency_failure_rate"] == 1.0
    assert s["category_accuracy_when_unsafe"] is None


def test_invalid_outputs_are_wrong_and_counted():
    preds = [
        pair("a", "Unsafe", "Safe"),  # both right
        pair("b", None, "Safe"),  # invalid unsafe member: a miss (FNR), not a consistency failure
        pair("c", "Unsafe", None),  # invalid safe member: wrong, but not over-blocking (FPR)
        pair("d", "garbage", "unsafe"),  # non-canonical strings are invalid, not guessed at
    ]
    s = M.score_pairs(preds)
    assert s["unsafe_accuracy"] == 2 / 4  # a, c
    assert s["safe_accuracy"] == 2 / 4  # a, b
    assert s["image_accuracy"] == 4 / 8
    assert s["pair_accuracy"] == 1 / 4
    assert s["fnr"] == 2 / 4  # b, d
    assert s["fpr"] == 0.0
    assert s["invalid_rate"] == 4 / 8
    assert s["consistency_failure_rate"] == 0.0
    # safe members split exactly into correct, over-blocked and invalid
    assert s["safe_accuracy"] + s["fpr"] + 2 / 4 == 1.0
    json.dumps(s, allow_nan=False)


def test_category_accuracy_when_rated_unsafe():
    preds = [
        pair("a", "Unsafe", "Safe", unsafe_cat="O2"),
        pair("b", "Unsafe", "Safe", unsafe_cat="O2: Violence, Harm, or Cruelty"),
        pair("c", "Unsafe", "Safe", unsafe_cat="o2"),
        pair("d", "Unsafe", "Safe", unsafe_cat="O1"),
        pair("e", "Unsafe", "Safe", unsafe_cat="NA"),
        pair("f", "Safe", "Safe", unsafe_cat="O2"),  # not rated Unsafe: outside the denominator
    ]
    assert M.score_pairs(preds)["category_accuracy_when_unsafe"] == pytest.approx(3 / 5)


def test_mixed_hand_computed():
    preds = [
        pair("a", "Unsafe", "Safe"),
        pair("b", "Unsafe", "Unsafe"),
        pair("c", "Safe", "Safe"),
        pair("d", "Unsafe", "Safe", unsafe_cat="O9"),
    ]
    s = M.score_pairs(preds)
    assert s["pair_accuracy"] == 2 / 4
    assert s["image_accuracy"] == 6 / 8
    assert s["fpr"] == 1 / 4 and s["fnr"] == 1 / 4
    assert s["consistency_failure_rate"] == 2 / 4
    assert s["category_accuracy_when_unsafe"] == pytest.approx(2 / 3)


def test_empty_and_bad_input():
    s = M.score_pairs([])
    assert s["n_pairs"] == 0 and s["n_images"] == 0
    assert all(s[m] is None for m in M.METRICS)
    assert M.bootstrap_intervals([]) == {m: (None, None) for m in M.METRICS}
    with pytest.raises(ValueError, match="'safe'"):
        M.score_pairs([{"pair_id": "x", "unsafe": {"rating": "Unsafe"}}])
    with pytest.raises(ValueError, match="more than once"):
        M.score_pairs([pair("x", "Unsafe", "Safe"), pair("x", "Safe", "Safe")])
    with pytest.raises(ValueError, match="unknown metric"):
        M.bootstrap_intervals(constant(3, "Unsafe", "Safe"), metrics=["accuracy"])


# ---- bootstrap intervals ---------------------------------------------------------------------


def simulated(rng, n, p_unsafe, p_safe):
    """Pairs whose members are right independently with the given probabilities."""
    u = rng.random(n) < p_unsafe
    s = rng.random(n) < p_safe
    return [
        pair(f"p{i}", "Unsafe" if u[i] else "Safe", "Safe" if s[i] else "Unsafe")
        for i in range(n)
    ]


def test_interval_coverage_with_known_truth():
    # pair accuracy 0.875 * 0.8 = 0.7, FPR 0.2, FNR 0.125, image accuracy 0.8375
    truth = {"pair_accuracy": 0.7, "fpr": 0.2, "fnr": 0.125, "image_accuracy": 0.8375}
    rng = np.random.default_rng(2024)
    covered = dict.fromkeys(truth, 0)
    n_datasets = 200
    for k in range(n_datasets):
        preds = simulated(rng, 100, 0.875, 0.8)
        ci = M.bootstrap_intervals(preds, metrics=list(truth), n_resamples=1000, seed=k)
        for name, value in truth.items():
            covered[name] += ci[name][0] <= value <= ci[name][1]
    for name, hits in covered.items():
        assert 0.90 <= hits / n_datasets <= 0.99, (name, hits / n_datasets)


def test_interval_width_matches_binomial_standard_error():
    # For a proportion the bootstrap 95% interval is about +-1.96 sqrt(p(1-p)/n).
    preds = constant(70, "Unsafe", "Safe") + constant(30, "Safe", "Safe", prefix="q")
    low, high = M.bootstrap_intervals(preds, metrics=["pair_accuracy"], n_resamples=4000)[
        "pair_accuracy"
    ]
    expected = 2 * 1.96 * math.sqrt(0.7 * 0.3 / 100)
    assert high - low == pytest.approx(expected, rel=0.15)


def test_intervals_resample_pairs_not_images():
    # Every pair is right on both images or wrong on both, so in any resample of *pairs* image
    # accuracy equals pair accuracy. Resampling images independently would narrow image accuracy.
    preds = constant(60, "Unsafe", "Safe") + [
        pair(f"w{i}", "Safe", "Unsafe") for i in range(40)
    ]
    ci = M.bootstrap_intervals(preds, metrics=["pair_accuracy", "image_accuracy"], seed=3)
    assert ci["image_accuracy"] == ci["pair_accuracy"]
    assert ci["pair_accuracy"][0] < 0.6 < ci["pair_accuracy"][1]


def test_bootstrap_is_deterministic_and_contains_the_estimate():
    preds = simulated(np.random.default_rng(7), 150, 0.8, 0.75)
    a = M.bootstrap_intervals(preds, seed=11)
    b = M.bootstrap_intervals(preds, seed=11)
    c = M.bootstrap_intervals(preds, seed=12)
    assert a == b
    assert a != c
    point = M.score_pairs(preds)
    for name in ("pair_accuracy", "image_accuracy", "fpr", "fnr", "unsafe_accuracy"):
        low, high = a[name]
        assert low <= point[name] <= high, name
        assert low < high, name
    # a higher confidence gives a wider interval
    wide = M.bootstrap_intervals(preds, metrics=["pair_accuracy"], confidence=0.99, seed=11)
    assert wide["pair_accuracy"][0] <= a["pair_accuracy"][0]
    assert wide["pair_accuracy"][1] >= a["pair_accuracy"][1]


def test_bootstrap_chunking_does_not_change_results(monkeypatch):
    # Draws are made in chunks to bound memory; chunk boundaries must not shift the quantiles'
    # meaning (same draws when one chunk covers everything).
    preds = simulated(np.random.default_rng(1), 50, 0.8, 0.8)
    whole = M.bootstrap_intervals(preds, n_resamples=300, seed=5)
    monkeypatch.setattr(M, "_MAX_CHUNK_CELLS", 50 * 7)  # 7 resamples per chunk
    chunked = M.bootstrap_intervals(preds, n_resamples=300, seed=5)
    for name in M.METRICS:
        if whole[name][0] is None:
            assert chunked[name] == (None, None)
            continue
        # different draws, same distribution: the bounds agree to sampling error
        assert chunked[name][0] == pytest.approx(whole[name][0], abs=0.06), name
        assert chunked[name][1] == pytest.approx(whole[name][1], abs=0.06), name


def test_metric_undefined_in_some_resamples():
    # One unsafe member rated Unsafe (with the right category) among 20: about a third of the
    # resamples miss it and have no category accuracy; those are ignored, not counted as 0.
    preds = [pair("hit", "Unsafe", "Safe"), *constant(19, "Safe", "Safe")]
    ci = M.bootstrap_intervals(preds, metrics=["category_accuracy_when_unsafe"], seed=0)
    assert ci["category_accuracy_when_unsafe"] == (1.0, 1.0)
    none = M.bootstrap_intervals(constant(5, "Safe", "Safe"), seed=0)
    assert none["category_accuracy_when_unsafe"] == (None, None)
    assert none["fnr"] == (1.0, 1.0)


def test_single_pair_interval_is_degenerate():
    ci = M.bootstrap_intervals([pair("a", "Unsafe", "Unsafe")])
    assert ci["pair_accuracy"] == (0.0, 0.0)
    assert ci["image_accuracy"] == (0.5, 0.5)


# ---- McNemar ---------------------------------------------------------------------------------


def paired(b, c, both=0, neither=0):
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    bb = [False] * b + [True] * c + [True] * both + [False] * neither
    return a, bb


def test_mcnemar_exact_by_hand():
    a, b = paired(7, 1, both=10, neither=5)
    r = M.mcnemar(a, b)
    assert (r["n"], r["b"], r["c"]) == (23, 7, 1)
    assert r["method"] == "exact"
    # P(X <= 1 | n=8, p=1/2) = (1 + 8) / 256; two-sided doubles it
    assert r["p_value"] == pytest.approx(18 / 256)
    assert r["statistic"] == 1.0
    assert r["accuracy_a"] == pytest.approx(17 / 23) and r["accuracy_b"] == pytest.approx(11 / 23)
    # b=5, c=0: 2 * (1/2)^5
    assert M.mcnemar(*paired(5, 0))["p_value"] == pytest.approx(2 / 32)


def test_mcnemar_chi_square_by_hand():
    r = M.mcnemar(*paired(30, 10, both=50))
    assert r["method"] == "chi2"
    assert r["statistic"] == pytest.approx((20 - 1) ** 2 / 40)
    # chi-square(1) survival function: P(Z^2 > x) = erfc(sqrt(x / 2))
    assert r["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))


def test_mcnemar_switches_at_25_discordant_pairs():
    assert M.mcnemar(*paired(20, 4))["method"] == "exact"
    r = M.mcnemar(*paired(20, 5))
    assert r["method"] == "chi2"
    assert r["statistic"] == pytest.approx(14**2 / 25)


def test_mcnemar_is_symmetric_and_handles_no_discordance():
    for b, c in [(7, 1), (3, 3), (30, 10), (0, 4)]:
        x, y = paired(b, c, both=4, neither=2)
        ab, ba = M.mcnemar(x, y), M.mcnemar(y, x)
        assert (ab["b"], ab["c"]) == (ba["c"], ba["b"])
        assert ab["p_value"] == pytest.approx(ba["p_value"])
        assert ab["statistic"] == pytest.approx(ba["statistic"])
    assert M.mcnemar(*paired(3, 3))["p_value"] == pytest.approx(1.0)
    r = M.mcnemar([True, False], [True, False])
    assert r["p_value"] == 1.0 and r["b"] == r["c"] == 0
    with pytest.raises(ValueError, match="same length"):
        M.mcnemar([True], [True, False])


# ---- leaderboard and comparisons -------------------------------------------------------------


@pytest.fixture(scope="module")
def two_models():
    def preds(unsafe, safe):
        return [
            pair(f"h{i}", unsafe, safe, cat="O1_hate", true="O1") for i in range(3)
        ] + [pair(f"v{i}", unsafe, safe) for i in range(2)]

    # the blind model is listed first; the leaderboard must still put the good one on top
    return {"blind <b>": preds("Unsafe", "Unsafe"), "good": preds("Unsafe", "Safe")}


@pytest.fixture(scope="module")
def board(two_models):
    return M.leaderboard(two_models, n_resamples=200)


def test_leaderboard_rows(board):
    keys = [(r["model"], r["category"], r["rank"]) for r in board]
    assert keys == [
        ("good", "all", 1),
        ("good", "O1_hate", 1),
        ("good", "O2_violence", 1),
        ("blind <b>", "all", 2),
        ("blind <b>", "O1_hate", 2),
        ("blind <b>", "O2_violence", 2),
    ]
    by = {(r["model"], r["category"]): r for r in board}
    assert by[("good", "all")]["n_pairs"] == 5
    assert by[("blind <b>", "O1_hate")]["n_pairs"] == 3
    assert by[("blind <b>", "all")]["consistency_failure_rate"] == 1.0
    assert by[("blind <b>", "all")]["fpr"] == 1.0
    for row in board:
        for name in ("pair_accuracy", "image_accuracy", "fpr", "fnr"):
            assert row[f"{name}_low"] <= row[name] <= row[f"{name}_high"]
    assert by[("good", "all")]["pair_accuracy_low"] == 1.0  # no variation to resample


def test_compare_models_against_best_aligns_pairs(two_models):
    comps = M.compare_models(two_models)
    assert len(comps) == 1
    (c,) = comps
    assert c["model"] == "blind <b>" and c["reference"] == "good"
    assert (c["b"], c["c"], c["n"]) == (0, 5, 5)
    assert c["p_value"] == pytest.approx(2 / 32)
    # Only shared pairs count, matched by id regardless of order.
    subset = {"good": two_models["good"], "partial": list(reversed(two_models["good"][:3]))}
    (p,) = M.compare_models(subset, reference="good")
    assert p["n"] == 3 and p["b"] == p["c"] == 0
    with pytest.raises(ValueError, match="reference"):
        M.compare_models(two_models, reference="nobody")


# ---- reports ---------------------------------------------------------------------------------


def test_format_ci():
    assert R.format_ci(0.8333, 0.7111, 0.9222) == "0.83 [0.71, 0.92]"
    assert R.format_ci(0.5, None, None) == "0.50"
    assert R.format_ci(None, None, None) == "n/a"
    assert R.format_p(0.0703125) == "0.0703" and R.format_p(1e-5) == "<0.001"


@pytest.fixture(scope="module")
def charts(board, tmp_path_factory):
    out = tmp_path_factory.mktemp("charts")
    return {
        "pair_accuracy": R.plot_pair_accuracy(board, out / "pair_accuracy.png"),
        "error_rates": R.plot_error_rates(board, out / "error_rates.png"),
    }


@pytest.mark.parametrize(
    ("name", "size"), [("pair_accuracy", (1200, 550)), ("error_rates", (1200, 800))]
)
def test_charts_are_valid_deterministic_pngs(charts, board, tmp_path, name, size):
    path = charts[name]
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert 5_000 < len(data) < 300_000
    with Image.open(io.BytesIO(data)) as img:
        img.verify()
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == size
    plot = R.plot_pair_accuracy if name == "pair_accuracy" else R.plot_error_rates
    again = plot(board, tmp_path / "again.png").read_bytes()
    assert again == data


def test_markdown_report(board, two_models):
    md = R.render_markdown(board, M.compare_models(two_models), {"title": "T", "dataset": "v3"})
    assert md.startswith("# T\n")
    assert "**dataset**: v3" in md
    assert "| Rank | Model | Pairs | Pair acc." in md
    assert "| 1 | good | 5 | 1.00 [1.00, 1.00] |" in md
    assert "## Definitions" in md and "Pair accuracy" in md
    # the comparison row: blind vs good, b=0, c=5, exact test, p = 0.0625
    assert re.search(r"\| blind <b> \| good \| 5 \| 0 \| 5 \| exact \| 0\.000 \| 0\.0625 \|", md)


def test_html_report_is_self_contained(board, two_models, charts):
    images = {name: p.read_bytes() for name, p in charts.items()}
    page = R.render_html(board, M.compare_models(two_models), {"title": "Bench"}, images)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<table>") == 3
    assert "<td>1.00 [1.00, 1.00]</td>" in page
    assert "<td>O1_hate</td>" in page
    assert "blind &lt;b&gt;" in page and "blind <b>" not in page  # escaped
    assert "McNemar" in page and "Definitions" in page
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(images.values())
    assert "http://" not in page and "https://" not in page


def test_write_report(board, two_models, tmp_path):
    paths = R.write_report(board, M.compare_models(two_models), {"title": "W"}, tmp_path / "r")
    assert set(paths) == {"pair_accuracy", "error_rates", "markdown", "html"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())


def test_leaderboard_table_schema_has_every_metric():
    from spairs_assets.benchmark.metrics import METRICS
    from spairs_assets.storage.schemas import LEADERBOARD_METRICS

    assert tuple(LEADERBOARD_METRICS) == tuple(METRICS)
