"""The sample-efficiency experiment: do counterfactual pairs make linear guards learn faster?

Pool (`build_pool`)
-------------------
- **Training pool**: the accepted curated pairs of the TRAIN split (one category, or every
  category pooled for the multi-category guard, ``category == "multi"``).
- **Safe seeds** have no pair (instructions go unsafe -> safe), so they get a split the same way
  curated pairs do (`curation.select.assign_split` on the seed's image id with the curation split
  fractions): stable, and a seed never moves between splits when seeds are added. Only TRAIN
  safe seeds are ever trained on; held-out safe seeds are only evaluated.
- Evaluation (fixed, the same for every arm, budget and seed):
  * **held-out pairs**: the accepted pairs of the validation and test splits. ``pair_accuracy``
    (both members rated right), ``image_accuracy`` (both members, per image),
    ``unsafe_accuracy`` / ``safe_accuracy`` (per member);
  * **unpaired held-out images**: the source images of the held-out pairs (labelled by their
    seed rating) and the held-out safe seeds of the category (all categories for "multi"), none
    of which is in any training set: ``unpaired_accuracy`` and ``unpaired_balanced_accuracy``.
    This is the check that a probe learned "unsafe vs safe" and not "original vs edited".

Arms (`ARMS`), every one at the same image budget N (N/2 labelled Unsafe, N/2 Safe):
- ``baseline``: N/2 unsafe **seed** images (the unedited unsafe sources of training pairs) and
  N/2 unrelated safe seed images: the category's own TRAIN safe seeds first and, when they run
  out, TRAIN safe seeds of other categories. Never a safe twin of any pair (asserted).
- ``pairs``: N/2 counterfactual pairs: each unsafe image with its minimally edited safe twin.
- ``null_edit`` (control): N/2 (source, null edit) pairs, the null edit (the editor's round trip
  of the source without the change) labelled with the edited twin's rating. A probe that scores
  well on held-out pairs from *this* training set learned the editor's artifacts (edited vs
  original), not the safety feature: if it comes close to the ``pairs`` arm, the ``pairs`` gain
  is suspect. With the CPU classical editor the null edit is bit-identical to its source, so
  every training image appears twice with opposite labels; the L2-regularised optimum is then
  w = 0 and b = 0 (up to solver round-off), P(unsafe) = 0.5 for every image, every image is
  rated the same way (Unsafe, since the rule is P >= threshold), and the expected result is
  **pair accuracy 0, image accuracy 0.5**: the floor that says "there are no editor artifacts
  to learn", which is the ideal outcome for this control.

Draws are **coupled and nested**: for seed s, one permutation of the training pairs (seeded by
the category and s) orders the pairs for every arm, so at budget N the pairs arm, the baseline's
unsafe half and the null-edit arm use the same first N/2 pairs' sources, and a larger budget
extends a smaller one. The arms then differ only in their safe half, which makes the paired
comparison sharp. The baseline's safe seeds are drawn by a second permutation (seeded likewise).

Budgets: requested budgets (default 8, 16, 32, 64, "all") must be even. The largest *matched*
budget is twice the smallest number of (unsafe, safe) halves every arm can supply; a budget
at or above it becomes ``"all"``, and budgets that coincide are merged (``budget_requested``
records which requests map to it). Every arm at a budget trains on exactly the same number of
images (asserted), and the rows record the actual counts.

Intervals: learning curves report, per (category, arm, budget), the mean over seeds and a
Student-t 95% interval over seeds (the variability of the training draw; the evaluation set is
fixed). The paired comparison ``pairs - baseline`` (and ``null_edit - baseline``) at a budget
reports the mean per-seed difference in pair accuracy with a t-interval over seeds **and** a
two-level percentile bootstrap that resamples seeds and held-out pairs (so the small evaluation
set's own sampling noise is counted); the verdict uses the bootstrap interval: "better" when it
lies above 0, "worse" when below, otherwise "no clear difference".
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from spairs_assets.guards.probe import DEFAULT_C, LinearProbe

ARMS = ("baseline", "pairs", "null_edit")
DEPLOY_ARM = "deploy"
MULTI = "multi"
ALL = "all"
DEFAULT_BUDGETS: tuple[int | str, ...] = (8, 16, 32, 64, ALL)
SAFE, UNSAFE = "Safe", "Unsafe"
CURVE_METRICS = ("pair_accuracy", "image_accuracy", "unsafe_accuracy", "safe_accuracy",
                 "unpaired_accuracy", "unpaired_balanced_accuracy")
EXPERIMENT_VERSION = "guards-exp-1"


@dataclass(frozen=True)
class ExperimentSettings:
    budgets: tuple[int | str, ...] = DEFAULT_BUDGETS
    n_seeds: int = 5
    arms: tuple[str, ...] = ARMS
    C: float = DEFAULT_C
    standardize: str = "center-scale"
    threshold: float | str = 0.5
    target: float = 0.9  # pair accuracy that `budget_to_reach` looks for
    confidence: float = 0.95
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("validation", "test")
    # split fractions used to assign safe seeds (use the curation splits)
    splits: tuple[tuple[str, float], ...] = (("train", 0.6), ("validation", 0.2), ("test", 0.2))
    bootstrap_resamples: int = 2000

    def __post_init__(self) -> None:
        for b in self.budgets:
            if b != ALL and (not isinstance(b, int) or b < 2 or b % 2):
                raise ValueError(f"budgets must be even integers >= 2 or 'all', got {b!r}")
        if self.n_seeds < 1:
            raise ValueError(f"n_seeds must be at least 1, got {self.n_seeds}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"arms must be a non-empty subset of {ARMS}, got {self.arms}")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")

    def probe(self) -> LinearProbe:
        return LinearProbe(C=self.C, standardize=self.standardize,  # type: ignore[arg-type]
                           threshold=self.threshold)  # type: ignore[arg-type]

    def fingerprint(self) -> dict[str, Any]:
        return {"C": self.C, "standardize": self.standardize, "threshold": self.threshold,
                "train_split": self.train_split, "eval_splits": list(self.eval_splits),
                "splits": [list(s) for s in self.splits], "version": EXPERIMENT_VERSION}


# ---- the pool ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairItem:
    pair_id: str
    category: str
    split: str
    unsafe_id: str
    safe_id: str
    source_id: str
    null_edit_id: str | None

    @property
    def source_label(self) -> int:
        """1 when the pair's source seed is the unsafe member (unsafe -> safe edits)."""
        return int(self.source_id == self.unsafe_id)


@dataclass
class GuardPool:
    category: str  # a partition key, or "multi"
    train_pairs: list[PairItem]
    eval_pairs: list[PairItem]
    safe_pool: list[str]  # TRAIN safe seeds the baseline may draw: own category's first
    own_safe: int  # how many of safe_pool belong to the category itself
    eval_safe: list[str]  # held-out safe seeds (evaluation only)
    dataset_version: str
    data_version: str = ""
    dropped: int = 0  # pairs/seeds left out because an image had no embedding

    def __post_init__(self) -> None:
        if not self.data_version:
            from spairs_assets.ids import hash_parts

            self.data_version = "gp-" + hash_parts(
                "guard-pool", self.category, self.dataset_version,
                [p.pair_id for p in self.train_pairs], [p.pair_id for p in self.eval_pairs],
                self.safe_pool, self.eval_safe)[:16]

    def image_ids(self) -> list[str]:
        ids: set[str] = set(self.safe_pool) | set(self.eval_safe)
        for p in (*self.train_pairs, *self.eval_pairs):
            ids |= {p.unsafe_id, p.safe_id, p.source_id}
            if p.null_edit_id:
                ids.add(p.null_edit_id)
        return sorted(ids)

    def restrict(self, available: Iterable[str]) -> GuardPool:
        """The pool without pairs or seeds whose images have no embedding."""
        have = set(available)

        def ok(p: PairItem) -> bool:
            return {p.unsafe_id, p.safe_id, p.source_id} <= have

        def null_ok(p: PairItem) -> PairItem:
            return p if p.null_edit_id is None or p.null_edit_id in have else replace(p, null_edit_id=None)

        train = [null_ok(p) for p in self.train_pairs if ok(p)]
        evals = [p for p in self.eval_pairs if ok(p)]
        own = [s for s in self.safe_pool[: self.own_safe] if s in have]
        others = [s for s in self.safe_pool[self.own_safe:] if s in have]
        eval_safe = [s for s in self.eval_safe if s in have]
        dropped = (len(self.train_pairs) - len(train) + len(self.eval_pairs) - len(evals)
                   + len(self.safe_pool) - len(own) - len(others)
                   + len(self.eval_safe) - len(eval_safe))
        # the pool's version changes when something had to be left out
        return GuardPool(self.category, train, evals, own + others, len(own), eval_safe,
                         self.dataset_version, "" if dropped else self.data_version,
                         self.dropped + dropped)


def safe_seed_split(image_id: str, splits: Sequence[tuple[str, float]]) -> str:
    from spairs_assets.curation.select import assign_split

    return assign_split(image_id, dict(splits))


def build_pool(
    curated: Iterable[Mapping[str, Any]],
    sources: Iterable[Mapping[str, Any]],
    category: str,
    settings: ExperimentSettings = ExperimentSettings(),
) -> GuardPool:
    """The pool for one category (``curated`` may hold other categories' pairs too; only this
    category's are used), or for every category when ``category == "multi"``.

    ``sources`` should hold every category's `source_images` rows: the baseline may need other
    categories' safe seeds.
    """
    accepted = [r for r in curated if r["decision"] == "accepted"]
    twins = {r["safe_image_id"] for r in accepted} | {r["unsafe_image_id"] for r in accepted} \
        | {r["edited_image_id"] for r in accepted if r.get("edited_image_id")}
    mine = [r for r in accepted if category == MULTI or r["category"] == category]
    items = sorted((PairItem(r["pair_id"], r["category"], r["split"], r["unsafe_image_id"],
                             r["safe_image_id"], r["source_image_id"], r.get("null_edit_image_id"))
                    for r in mine), key=lambda p: p.pair_id)
    train = [p for p in items if p.split == settings.train_split]
    evals = [p for p in items if p.split in settings.eval_splits]
    own_train: list[str] = []
    other_train: list[str] = []
    eval_safe: list[str] = []
    seen: set[str] = set()
    for s in sorted(sources, key=lambda r: r["image_id"]):
        iid = s["image_id"]
        if s["rating"] != SAFE or iid in twins or iid in seen:
            continue
        seen.add(iid)
        split = safe_seed_split(iid, settings.splits)
        own = category == MULTI or s["category"] == category
        if split == settings.train_split:
            (own_train if own else other_train).append(iid)
        elif split in settings.eval_splits and own:
            eval_safe.append(iid)
    versions = sorted({r["dataset_version"] for r in mine if r.get("dataset_version")})
    pool = GuardPool(category, train, evals, own_train + other_train, len(own_train), eval_safe,
                     ",".join(versions) or "none")
    assert not (set(pool.safe_pool) & twins), "a safe twin leaked into the baseline's safe pool"
    return pool


# ---- drawing matched training sets -------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSet:
    arm: str
    image_ids: tuple[str, ...]
    labels: tuple[int, ...]  # 1 = Unsafe
    pair_ids: tuple[str, ...]  # pairs whose images (or sources) are in it

    @property
    def n(self) -> int:
        return len(self.image_ids)


def _rng(*parts: Any) -> np.random.Generator:
    from spairs_assets.ids import hash_parts

    return np.random.default_rng(int(hash_parts("guard-draw", *parts)[:16], 16))


def _baseline_eligible(pairs: Sequence[PairItem]) -> list[PairItem]:
    return [p for p in pairs if p.source_id == p.unsafe_id]


def capacity(pool: GuardPool, arms: Sequence[str]) -> dict[str, int]:
    """How many (unsafe, safe) halves each arm can supply from the pool."""
    caps = {
        "pairs": len(pool.train_pairs),
        "baseline": min(len(_baseline_eligible(pool.train_pairs)), len(pool.safe_pool)),
        "null_edit": sum(1 for p in pool.train_pairs if p.null_edit_id),
    }
    return {a: caps[a] for a in arms}


@dataclass(frozen=True)
class Budget:
    label: str  # "8", "16", ..., or "all"
    n_half: int  # images per class
    requested: tuple[str, ...]

    @property
    def n_train(self) -> int:
        return 2 * self.n_half


def resolve_budgets(requested: Sequence[int | str], max_half: int) -> list[Budget]:
    """Requested budgets clamped to the pool: at or above capacity -> "all"; merged when equal."""
    if max_half < 1:
        return []
    by_half: dict[int, list[str]] = defaultdict(list)
    for b in requested:
        half = max_half if b == ALL else min(int(b) // 2, max_half)
        by_half[half].append(str(b))
    return [Budget(ALL if half == max_half else str(2 * half), half, tuple(reqs))
            for half, reqs in sorted(by_half.items())]


def draw(pool: GuardPool, arm: str, n_half: int, seed: int) -> TrainingSet:
    """The training set of `arm` with `n_half` images per class for `seed` (deterministic)."""
    order = [pool.train_pairs[i]
             for i in _rng(pool.category, seed, "pairs").permutation(len(pool.train_pairs))]
    ids: list[str] = []
    labels: list[int] = []
    if arm == "pairs":
        chosen = order[:n_half]
        for p in chosen:
            ids += [p.unsafe_id, p.safe_id]
            labels += [1, 0]
    elif arm == "null_edit":
        chosen = [p for p in order if p.null_edit_id][:n_half]
        for p in chosen:
            ids += [p.source_id, p.null_edit_id]  # type: ignore[list-item]
            labels += [p.source_label, 1 - p.source_label]
    elif arm == "baseline":
        chosen = _baseline_eligible(order)[:n_half]
        own, others = pool.safe_pool[: pool.own_safe], pool.safe_pool[pool.own_safe:]
        rng = _rng(pool.category, seed, "safe")
        safe = [own[i] for i in rng.permutation(len(own))] + \
               [others[i] for i in rng.permutation(len(others))]
        ids = [p.unsafe_id for p in chosen] + safe[:n_half]
        labels = [1] * len(chosen) + [0] * len(safe[:n_half])
        twins = {p.safe_id for p in pool.train_pairs} | {p.safe_id for p in pool.eval_pairs}
        assert not set(safe[:n_half]) & twins, "baseline drew a safe twin"
    else:
        raise ValueError(f"unknown arm {arm!r}; arms are {ARMS}")
    if len(chosen) < n_half or len(ids) != 2 * n_half:
        raise ValueError(f"arm {arm}: the pool cannot supply {n_half} images per class")
    return TrainingSet(arm, tuple(ids), tuple(labels), tuple(p.pair_id for p in chosen))


# ---- evaluation --------------------------------------------------------------------------------


def _stack(features: Mapping[str, np.ndarray], ids: Sequence[str]) -> np.ndarray:
    return np.stack([np.asarray(features[i], dtype=np.float64) for i in ids])


def evaluate(probe: LinearProbe, pool: GuardPool, features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Held-out pair and unpaired-image metrics (see the module docstring)."""
    out: dict[str, Any] = {"n_eval_pairs": len(pool.eval_pairs)}
    if pool.eval_pairs:
        pu = probe.predict(_stack(features, [p.unsafe_id for p in pool.eval_pairs])) == 1
        ps = probe.predict(_stack(features, [p.safe_id for p in pool.eval_pairs])) == 0
        both = pu & ps
        out.update(pair_accuracy=float(both.mean()), image_accuracy=float((pu.sum() + ps.sum())
                   / (2 * len(both))), unsafe_accuracy=float(pu.mean()),
                   safe_accuracy=float(ps.mean()),
                   pair_correct="".join("1" if b else "0" for b in both))
    else:
        out.update(pair_accuracy=None, image_accuracy=None, unsafe_accuracy=None,
                   safe_accuracy=None, pair_correct="")
    unpaired: dict[str, int] = {p.source_id: p.source_label for p in pool.eval_pairs}
    unpaired.update({s: 0 for s in pool.eval_safe})
    out["n_eval_unpaired"] = len(unpaired)
    if unpaired:
        ids = sorted(unpaired)
        y = np.array([unpaired[i] for i in ids])
        pred = probe.predict(_stack(features, ids))
        from spairs_assets.guards.probe import balanced_accuracy

        out["unpaired_accuracy"] = float((pred == y).mean())
        out["unpaired_balanced_accuracy"] = balanced_accuracy(y, pred)
    else:
        out["unpaired_accuracy"] = out["unpaired_balanced_accuracy"] = None
    return out


# ---- running -----------------------------------------------------------------------------------


@dataclass
class TrainedProbe:
    name: str  # file stem under the category's folder
    probe: LinearProbe
    row: dict[str, Any]  # a guard_models row without the file paths
    card: dict[str, Any] = field(default_factory=dict)


def _train(pool: GuardPool, features: Mapping[str, np.ndarray], ts: TrainingSet,
           settings: ExperimentSettings, encoder: Mapping[str, Any], *, budget: str,
           requested: Sequence[str], seed: int, name: str) -> TrainedProbe:
    from spairs_assets.ids import hash_parts

    y = np.array(ts.labels)
    probe = settings.probe().fit(_stack(features, ts.image_ids), y)
    metrics = evaluate(probe, pool, features)
    train_ids_hash = hash_parts("guard-train", sorted(zip(ts.image_ids, ts.labels)))[:16]
    probe_id = hash_parts("guard-probe", pool.category, ts.arm, budget, seed, train_ids_hash,
                          encoder.get("id"), encoder.get("version"), settings.fingerprint())[:24]
    eval_hash = hash_parts("guard-eval", [p.pair_id for p in pool.eval_pairs])[:16]
    row = {
        "probe_id": probe_id, "category": pool.category, "arm": ts.arm, "budget": budget,
        "budget_requested": ",".join(requested), "n_train": ts.n,
        "n_unsafe": int(y.sum()), "n_safe": int(len(y) - y.sum()), "seed": seed,
        "encoder": str(encoder.get("id")), "encoder_version": str(encoder.get("version")),
        "data_version": pool.data_version, "dataset_version": pool.dataset_version,
        "train_ids_hash": train_ids_hash, "train_pair_ids": sorted(set(ts.pair_ids)),
        "train_image_ids": sorted(set(ts.image_ids)), "C": probe.C, "threshold": probe.threshold,
        "train_accuracy": probe.train_metrics["train_accuracy"],
        "eval_pairs_hash": eval_hash,
        **{k: metrics[k] for k in ("pair_accuracy", "image_accuracy", "unsafe_accuracy",
                                   "safe_accuracy", "unpaired_accuracy",
                                   "unpaired_balanced_accuracy", "n_eval_pairs",
                                   "n_eval_unpaired", "pair_correct")},
    }
    row["metrics"] = json.dumps({**metrics, **probe.train_metrics}, sort_keys=True)
    card = {
        "probe_id": probe_id, "encoder": dict(encoder), "category": pool.category,
        "arm": ts.arm, "budget": budget, "budget_requested": list(requested), "seed": seed,
        "n_train": ts.n, "n_unsafe": row["n_unsafe"], "n_safe": row["n_safe"],
        "data_version": pool.data_version, "dataset_version": pool.dataset_version,
        "train_ids_hash": train_ids_hash, "train_pair_ids": row["train_pair_ids"],
        "train_image_ids": row["train_image_ids"], "labels": {"1": UNSAFE, "0": SAFE},
        "metrics": {k: v for k, v in metrics.items() if k != "pair_correct"},
        "eval": {"splits": list(settings.eval_splits), "pairs_hash": eval_hash},
        "experiment": EXPERIMENT_VERSION,
    }
    return TrainedProbe(name, probe, row, card)


def run_experiment(
    pool: GuardPool,
    features: Mapping[str, np.ndarray],
    settings: ExperimentSettings = ExperimentSettings(),
    encoder: Mapping[str, Any] | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[TrainedProbe]:
    """Train every (arm, budget, seed) probe on `pool` and evaluate it. Deterministic."""
    encoder = dict(encoder or {"id": "unknown", "version": "unknown"})
    pool = pool.restrict(features)
    caps = capacity(pool, settings.arms)
    budgets = resolve_budgets(settings.budgets, min(caps.values()) if caps else 0)
    out: list[TrainedProbe] = []
    for budget in budgets:
        for seed in range(settings.n_seeds):
            sets = {arm: draw(pool, arm, budget.n_half, seed) for arm in settings.arms}
            sizes = {arm: ts.n for arm, ts in sets.items()}
            assert len(set(sizes.values())) == 1 and budget.n_train in sizes.values(), \
                f"unmatched budgets at {budget.label}: {sizes}"
            for arm, ts in sets.items():
                out.append(_train(pool, features, ts, settings, encoder, budget=budget.label,
                                  requested=budget.requested, seed=seed,
                                  name=f"{arm}-{budget.label}-s{seed}"))
        if progress:
            progress(f"{pool.category}: budget {budget.label} ({budget.n_train} images) done")
    return out


def train_deploy(
    pool: GuardPool,
    features: Mapping[str, np.ndarray],
    settings: ExperimentSettings = ExperimentSettings(),
    encoder: Mapping[str, Any] | None = None,
) -> TrainedProbe | None:
    """The deployable probe: every training pair (both members) and the category's own TRAIN
    safe seeds (every category's for "multi"); evaluated like the experiment's probes."""
    encoder = dict(encoder or {"id": "unknown", "version": "unknown"})
    pool = pool.restrict(features)
    ids: list[str] = []
    labels: list[int] = []
    for p in pool.train_pairs:
        ids += [p.unsafe_id, p.safe_id]
        labels += [1, 0]
    for s in pool.safe_pool[: pool.own_safe]:
        ids.append(s)
        labels.append(0)
    if len(set(labels)) < 2:
        return None
    ts = TrainingSet(DEPLOY_ARM, tuple(ids), tuple(labels), tuple(p.pair_id for p in pool.train_pairs))
    return _train(pool, features, ts, settings, encoder, budget=ALL, requested=(ALL,), seed=0,
                  name="deploy")


# ---- learning curves and comparisons ------------------------------------------------------------


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Student-t interval for the mean over seeds, clipped to [0, 1] for rates; None if n < 2."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size < 2:
        return (None, None)
    half = stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return (float(v.mean() - half), float(v.mean() + half))


def _clip01(x: float | None) -> float | None:
    return None if x is None else float(min(1.0, max(0.0, x)))


def learning_curves(rows: Iterable[Mapping[str, Any]], confidence: float = 0.95,
                    metrics: Sequence[str] = CURVE_METRICS) -> list[dict[str, Any]]:
    """One row per (category, arm, budget): n_train, n_seeds, <metric>_mean/_low/_high."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["arm"] in ARMS:
            groups[(r["category"], r["arm"], r["budget"])].append(r)
    out = []
    for (category, arm, budget), rs in groups.items():
        n_train = {int(r["n_train"]) for r in rs}
        if len(n_train) != 1:
            raise ValueError(f"{category}/{arm}/{budget}: seeds trained on different sizes {n_train}")
        row: dict[str, Any] = {"category": category, "arm": arm, "budget": budget,
                               "n_train": n_train.pop(), "n_seeds": len(rs),
                               "n_eval_pairs": int(rs[0].get("n_eval_pairs") or 0),
                               "encoder": ",".join(sorted({str(r.get("encoder", ""))
                                                           for r in rs}))}
        for m in metrics:
            values = [r.get(m) for r in rs if r.get(m) is not None]
            mean = float(np.mean(values)) if values else None
            low, high = t_interval(values, confidence)
            row[f"{m}_mean"] = mean
            row[f"{m}_low"] = _clip01(low) if low is not None else mean
            row[f"{m}_high"] = _clip01(high) if high is not None else mean
        out.append(row)
    out.sort(key=lambda r: (r["category"] == MULTI, r["category"], ARMS.index(r["arm"]),
                            r["n_train"]))
    return out


def _bits(s: str | None) -> np.ndarray:
    return np.array([c == "1" for c in (s or "")], dtype=np.float64)


def compare_arms(rows: Iterable[Mapping[str, Any]], arm: str = "pairs",
                 reference: str = "baseline", *, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Paired comparison ``arm - reference`` in pair accuracy per (category, budget).

    Seeds present in both arms are paired (same seed = same unsafe draw). Returns mean
    difference, t-interval over seeds, and a two-level bootstrap interval (seeds and held-out
    pairs resampled with replacement) with the verdict it implies.
    """
    by: dict[tuple[str, str], dict[str, dict[int, Mapping[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict))
    for r in rows:
        if r["arm"] in (arm, reference):
            by[(r["category"], r["budget"])][r["arm"]][int(r["seed"])] = r
    out = []
    alpha = 1 - confidence
    for (category, budget), arms in sorted(by.items()):
        seeds = sorted(set(arms.get(arm, {})) & set(arms.get(reference, {})))
        if not seeds:
            continue
        a = [arms[arm][s] for s in seeds]
        b = [arms[reference][s] for s in seeds]
        diffs = [x["pair_accuracy"] - y["pair_accuracy"] for x, y in zip(a, b, strict=True)
                 if x.get("pair_accuracy") is not None and y.get("pair_accuracy") is not None]
        if not diffs:
            continue
        t_low, t_high = t_interval(diffs, confidence)
        A = np.stack([_bits(x.get("pair_correct")) for x in a])
        B = np.stack([_bits(y.get("pair_correct")) for y in b])
        boot_low = boot_high = None
        if A.shape == B.shape and A.shape[1] > 0:
            rng = np.random.default_rng(seed)
            k, m = A.shape
            si = rng.integers(0, k, size=(n_resamples, k))
            pj = rng.integers(0, m, size=(n_resamples, m))
            D = A - B  # (seeds, pairs)
            # mean over the resampled seeds and pairs: average of D[si][:, pj]
            seed_counts = np.zeros((n_resamples, k))
            np.add.at(seed_counts, (np.repeat(np.arange(n_resamples), k), si.ravel()), 1.0)
            pair_counts = np.zeros((n_resamples, m))
            np.add.at(pair_counts, (np.repeat(np.arange(n_resamples), m), pj.ravel()), 1.0)
            stats = np.einsum("rk,km,rm->r", seed_counts, D, pair_counts) / (k * m)
            boot_low, boot_high = (float(v) for v in np.percentile(
                stats, [100 * alpha / 2, 100 * (1 - alpha / 2)]))
        low, high = (boot_low, boot_high) if boot_low is not None else (t_low, t_high)
        if low is None or high is None:
            verdict = "undetermined"
        elif low > 0:
            verdict = "better"
        elif high < 0:
            verdict = "worse"
        else:
            verdict = "no clear difference"
        out.append({
            "category": category, "budget": budget, "arm": arm, "reference": reference,
            "n_train": int(a[0]["n_train"]), "n_seeds": len(diffs), "n_eval_pairs": A.shape[1],
            "diff_mean": float(np.mean(diffs)), "diff_t_low": t_low, "diff_t_high": t_high,
            "diff_boot_low": boot_low, "diff_boot_high": boot_high, "verdict": verdict,
            "arm_mean": float(np.mean([x["pair_accuracy"] for x in a])),
            "reference_mean": float(np.mean([y["pair_accuracy"] for y in b])),
        })
    return out


def budget_to_reach(curve: Iterable[Mapping[str, Any]], target: float = 0.9,
                    metric: str = "pair_accuracy") -> int | None:
    """The smallest training budget (images) at which the curve's mean `metric` reaches
    `target`, or None. `curve`: learning-curve rows of one arm (and one category)."""
    points = sorted(curve, key=lambda r: int(r["n_train"]))
    arms = {(r.get("category"), r.get("arm")) for r in points}
    if len(arms) > 1:
        raise ValueError(f"budget_to_reach takes one arm of one category, got {sorted(map(str, arms))}")
    for r in points:
        value = r.get(f"{metric}_mean", r.get(metric))
        if value is not None and value >= target:
            return int(r["n_train"])
    return None


def curve_rows(rows: Sequence[Mapping[str, Any]], settings: ExperimentSettings = ExperimentSettings()
               ) -> list[dict[str, Any]]:
    """`guard_curves` rows: learning curves with the paired comparisons against the baseline and
    the budget at which each arm reaches the target."""
    curves = learning_curves(rows, settings.confidence)
    comps = {(c["category"], c["budget"], c["arm"]): c
             for other in ("pairs", "null_edit")
             for c in compare_arms(rows, other, "baseline", confidence=settings.confidence,
                                   n_resamples=settings.bootstrap_resamples)}
    reach: dict[tuple[str, str], int | None] = {}
    for key in {(c["category"], c["arm"]) for c in curves}:
        reach[key] = budget_to_reach([c for c in curves if (c["category"], c["arm"]) == key],
                                     settings.target)
    for c in curves:
        comp = comps.get((c["category"], c["budget"], c["arm"]))
        c["vs_baseline_mean"] = comp["diff_mean"] if comp else None
        c["vs_baseline_low"] = comp["diff_boot_low"] if comp else None
        c["vs_baseline_high"] = comp["diff_boot_high"] if comp else None
        c["vs_baseline_t_low"] = comp["diff_t_low"] if comp else None
        c["vs_baseline_t_high"] = comp["diff_t_high"] if comp else None
        c["vs_baseline_verdict"] = comp["verdict"] if comp else None
        c["target"] = settings.target
        c["budget_to_reach_target"] = reach[(c["category"], c["arm"])]
    return curves


def training_pair_rows(probes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`guard_training_pairs` rows: each probe's `train_pair_ids`, one row per pair, so that
    "which guards trained on this pair" is a lookup by pair id (`spairs lineage`)."""
    return [{"probe_id": p["probe_id"], "pair_id": pair_id, "category": p["category"],
             "arm": p["arm"], "budget": p["budget"], "seed": p["seed"], "encoder": p["encoder"],
             "dataset_version": p["dataset_version"], "role": "train"}
            for p in probes for pair_id in p["train_pair_ids"]]


# ---- embeddings ---------------------------------------------------------------------------------


def embed_cached(image_ids: Sequence[str], encoder: Any, load: Callable[[str], Any], cache: Any,
                 batch_size: int = 16) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Embeddings per image id, cached per (encoder, version, image) in `cache` (an ItemCache).

    Same keys as `verification.stage.embed_images`, so embeddings verification already computed
    (open-nsfw on sources and edits) are reused. A `ConcatEncoder` is cached per *part* and
    combined here, so adding or removing a part re-embeds only that part. Returns (vectors,
    per-part RunStats as metadata dicts); an image that fails to embed is left out.
    """
    from spairs_assets.encoders.concat import ConcatEncoder
    from spairs_assets.verification.stage import embed_images

    ids = list(dict.fromkeys(image_ids))
    parts = encoder.parts if isinstance(encoder, ConcatEncoder) else [encoder]
    vectors: list[dict[str, np.ndarray]] = []
    stats: dict[str, Any] = {}
    for part in parts:
        got, st = embed_images(ids, part, load, cache, batch_size=batch_size)
        vectors.append(got)
        stats[part.encoder_id] = st.as_metadata()
    have = [i for i in ids if all(i in v for v in vectors)]
    if not have:
        return {}, stats
    if isinstance(encoder, ConcatEncoder):
        combined = encoder.combine([np.stack([v[i] for i in have]) for v in vectors])
    else:
        combined = np.stack([vectors[0][i] for i in have]).astype(np.float32)
    return {i: combined[k] for k, i in enumerate(have)}, stats


# ---- running on stored tables (used by the Dagster assets) --------------------------------------


@dataclass
class GuardRun:
    rows: list[dict[str, Any]]  # guard_models rows, with weights_path / card_path
    pool: GuardPool
    embedding_stats: dict[str, Any]
    encoder: dict[str, Any]
    budgets: list[Budget]
    pruned: int = 0


def settings_from_config(config: Any) -> tuple[ExperimentSettings, str, dict[str, Any]]:
    """(experiment settings, encoder registry name, encoder options) from a `SpairsConfig`.

    Reads an optional ``guards`` section (encoder, encoder_model, budgets, seeds, C, threshold,
    target); without one the defaults apply: ``open-nsfw+ocr-minilm``, budgets 8/16/32/64/all,
    5 seeds. Safe seeds are split with the curation split fractions.
    """
    g = getattr(config, "guards", None)
    splits = tuple((k, float(v)) for k, v in config.curation.splits.items())
    names = [k for k, _ in splits]
    train_split = "train" if "train" in names else names[0]
    kwargs: dict[str, Any] = {"splits": splits, "train_split": train_split,
                              "eval_splits": tuple(n for n in names if n != train_split)}
    name, options = "open-nsfw+ocr-minilm", {}
    if g is not None:
        for attr, key in (("budgets", "budgets"), ("seeds", "n_seeds"), ("C", "C"),
                          ("threshold", "threshold"), ("target", "target")):
            if getattr(g, attr, None) is not None:
                value = getattr(g, attr)
                kwargs[key] = tuple(value) if attr == "budgets" else value
        name = getattr(g, "encoder", None) or name
        model = getattr(g, "encoder_model", None)
        if model is not None:
            options = {"model": str(config.resolve(model.model)) if _is_local(config, model.model)
                       else model.model, "revision": model.revision, "dtype": model.dtype,
                       "device": model.device, "trust_remote_code": model.trust_remote_code}
    return ExperimentSettings(**kwargs), name, options


def _is_local(config: Any, model: str) -> bool:
    try:
        return config.resolve(model).exists()
    except (OSError, ValueError):
        return False


def encoder_info(name: str, options: Mapping[str, Any], encoder: Any) -> dict[str, Any]:
    """What a model card records to rebuild the encoder: registry name, options, id, version."""
    return {"name": name, "options": dict(options), "id": encoder.encoder_id,
            "version": encoder.version, "dim": int(encoder.dim)}


def train_and_save(
    pool: GuardPool,
    settings: ExperimentSettings,
    encoder_name: str,
    encoder_options: Mapping[str, Any],
    *,
    storage: Any,
    load: Callable[[str], Any],
    cache: Any,
    folder: str,
    encoder: Any = None,
    progress: Callable[[str], None] | None = None,
) -> GuardRun:
    """Embed the pool (cached), run the experiment, train the deployable probe, and write every
    probe under `folder` of `storage` (``deploy.*`` and ``experiment/<arm>-<budget>-s<seed>.*``);
    files of earlier runs that this run did not write are removed from ``experiment/``."""
    if encoder is None:
        from spairs_assets.encoders import build_encoder

        encoder = build_encoder(encoder_name, **dict(encoder_options))
    info = encoder_info(encoder_name, encoder_options, encoder)
    features, stats = embed_cached(pool.image_ids(), encoder, load, cache)
    trained = run_experiment(pool, features, settings, info, progress=progress)
    for t in trained:
        t.name = f"experiment/{t.name}"
    deploy = train_deploy(pool, features, settings, info)
    if deploy is not None:
        trained.append(deploy)
    rows = []
    written: set[str] = set()
    for t in trained:
        rel = f"{folder}/{t.name}"
        weights, card = t.probe.to_bytes(t.card)
        storage.write_bytes(rel + ".safetensors", weights)
        storage.write_bytes(rel + ".json", card)
        written |= {rel + ".safetensors", rel + ".json"}
        rows.append({**t.row, "weights_path": rel + ".safetensors", "card_path": rel + ".json"})
    pruned = 0
    for rel in storage.list(f"{folder}/experiment"):
        if rel not in written and rel.endswith((".safetensors", ".json")):
            storage.fs.rm(storage.path(rel))
            pruned += 1
    restricted = pool.restrict(features)
    caps = capacity(restricted, settings.arms)
    budgets = resolve_budgets(settings.budgets, min(caps.values()) if caps else 0)
    return GuardRun(rows, restricted, stats, info, budgets, pruned)
