"""A linear probe: L2-regularised logistic regression on frozen image embeddings.

Model
-----
``P(unsafe | x) = sigmoid(w . z(x) + b)`` with ``z`` the feature transform fitted on the
training rows (``standardize``):

- ``"center-scale"`` (default): subtract the training mean, divide every feature by one scalar,
  the root mean squared norm of the centred training rows, so training rows have unit norm on
  average around their mean. Embeddings are unit rows whose common component (every photo looks
  a bit like every other) dominates; centring removes it, and the single scale keeps C meaning
  the same whatever the encoder's dimension or spread. One scalar rather than a per-feature
  standard deviation: with 8 training images a per-feature std is mostly noise and blows up
  near-constant features.
- ``"zscore"``: per-feature mean and standard deviation (floored at 1e-6).
- ``"none"``: the embeddings as they are.

Fit: scikit-learn's ``LogisticRegression`` with the **L2 penalty, C = 100, solver "lbfgs"**,
``tol=1e-6``, ``max_iter=1000``, intercept fitted and not penalised, solved in the row space of the training
embeddings (an exact reparametrisation when there are fewer images than dimensions, see
`_row_space`). lbfgs is a deterministic
quasi-Newton method (no random state, no shuffling), so the same rows give the same weights.
C is fixed rather than tuned per fit: at budgets of 8-64 images a cross-validated C would be
chosen on 2-13 images per fold and add more noise than it removes. The value was chosen on
training data only: on the demo (open-nsfw+ocr-minilm, centre-scale), C = 0.1, 1 and 10 left
the deployable probes *underfitting their own training sets* (training accuracy 0.53-0.71,
0.65-0.97 and 0.88-1.0), and C = 100 is the smallest decade at which every category's probe fits
its training data (this is the few-shot regime where a linear probe interpolates; larger C
changes little). Held-out pair accuracy was not used to pick it. Labels: 1 = Unsafe,
0 = Safe; both classes are required.

Threshold
---------
An image is rated Unsafe when ``P(unsafe) >= threshold``. The default is **0.5** (the training
sets of the sample-efficiency experiment are balanced). ``threshold="train"`` chooses it on the
training data instead: the midpoint between consecutive sorted training probabilities that
maximises balanced accuracy, ties broken towards 0.5. It is chosen on the same rows the probe was
fitted on, so it is optimistic; use it only where classes are imbalanced.

Files
-----
`save(path)` writes ``<stem>.safetensors`` (``safetensors.numpy``: ``coef`` (dim,),
``intercept`` (1,), ``mean`` (dim,), ``scale`` (dim,), all float64, plus one metadata entry
``spairs_probe``: format, encoder id and version, threshold as canonical JSON) and the
**model card** ``<stem>.json`` beside it (encoder, training
data version, arm, budget, seed, category or "multi", metrics, threshold, fit settings, the spairs
version that created it). No timestamp: the same training gives byte-identical files.
`LinearProbe.load(path)` reads only those two files: safetensors and JSON, never pickle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

PROBE_FORMAT = "spairs-linear-probe/1"
DEFAULT_C = 100.0
SOLVER = "lbfgs"
MAX_ITER = 1000
TOL = 1e-6
STANDARDIZE = ("center-scale", "zscore", "none")
WEIGHT_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
METADATA_KEY = "spairs_probe"


def _as_2d(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("embeddings contain NaN or infinite values")
    return X


def _labels(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"expected {n} labels, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (Safe) or 1 (Unsafe)")
    return y.astype(np.int64)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    parts = [float((pred[y == c] == c).mean()) for c in (True, False) if (y == c).any()]
    return float(np.mean(parts)) if parts else float("nan")


def choose_threshold(y: np.ndarray, proba: np.ndarray) -> float:
    """The threshold maximising balanced accuracy on (y, proba), ties towards 0.5."""
    candidates = np.unique(np.concatenate([[0.5], proba]))
    mids = np.concatenate([[0.5], (candidates[:-1] + candidates[1:]) / 2])
    best, best_score = 0.5, -1.0
    for t in sorted(mids, key=lambda t: abs(t - 0.5)):
        score = balanced_accuracy(y, proba >= t)
        if score > best_score + 1e-12:
            best, best_score = float(t), score
    return best


class LinearProbe:
    """Binary linear probe (1 = Unsafe) on frozen embeddings; see the module docstring."""

    def __init__(
        self,
        *,
        C: float = DEFAULT_C,
        standardize: Literal["center-scale", "zscore", "none"] = "center-scale",
        threshold: float | Literal["train"] = 0.5,
        max_iter: int = MAX_ITER,
        tol: float = TOL,
    ) -> None:
        if not C > 0:
            raise ValueError(f"C must be positive, got {C!r}")
        if standardize not in STANDARDIZE:
            raise ValueError(f"standardize must be one of {STANDARDIZE}, got {standardize!r}")
        if threshold != "train" and not (isinstance(threshold, int | float) and 0 < threshold < 1):
            raise ValueError(f"threshold must be in (0, 1) or 'train', got {threshold!r}")
        self.C = float(C)
        self.standardize = standardize
        self.threshold_rule = "train" if threshold == "train" else "fixed"
        self.threshold = 0.5 if threshold == "train" else float(threshold)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.coef: np.ndarray | None = None
        self.intercept: float = 0.0
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.card: dict[str, Any] = {}
        self.train_metrics: dict[str, float] = {}

    # ---- fitting ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self.coef is None:
            raise RuntimeError("the probe is not fitted")
        return int(self.coef.shape[0])

    def _fit_transform(self, X: np.ndarray) -> np.ndarray:
        dim = X.shape[1]
        if self.standardize == "none":
            self.mean, self.scale = np.zeros(dim), np.ones(dim)
        elif self.standardize == "zscore":
            self.mean = X.mean(axis=0)
            self.scale = np.maximum(X.std(axis=0), 1e-6)
        else:
            self.mean = X.mean(axis=0)
            rms = float(np.sqrt(np.mean(np.sum((X - self.mean) ** 2, axis=1))))
            self.scale = np.full(dim, rms if rms > 1e-12 else 1.0)
        return self.transform(X)

    def transform(self, X: Any) -> np.ndarray:
        if self.mean is None or self.scale is None:
            raise RuntimeError("the probe is not fitted")
        X = _as_2d(X)
        if X.shape[1] != self.mean.shape[0]:
            raise ValueError(f"expected {self.mean.shape[0]}-d embeddings, got {X.shape[1]}-d")
        return (X - self.mean) / self.scale

    def fit(self, X: Any, y: Any) -> LinearProbe:
        """Fit on embeddings X (n, dim) and labels y (n,) in {0: Safe, 1: Unsafe}.

        BLAS runs single-threaded inside (threadpoolctl): these problems are tiny, and on a
        busy 2-core machine a multi-threaded BLAS made each fit about 10x slower.
        """
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return self._fit(X, y)

    def _fit(self, X: Any, y: Any) -> LinearProbe:
        from sklearn.linear_model import LogisticRegression

        X = _as_2d(X)
        y = _labels(y, X.shape[0])
        if len(np.unique(y)) < 2:
            raise ValueError("a probe needs both Safe (0) and Unsafe (1) training examples")
        Z = self._fit_transform(X)
        # Fit in the row space of Z (exact, see `_row_space`): n x r instead of n x d features.
        F, V = _row_space(Z)
        if F.shape[1] == 0:  # every training row identical: only the intercept can be fitted
            self.coef = np.zeros(Z.shape[1])
            rate = float(y.mean())
            self.intercept = float(np.log(rate / (1 - rate)))
            n_iter = 0
        else:
            model = LogisticRegression(C=self.C, solver=SOLVER, max_iter=self.max_iter,
                                       tol=self.tol, fit_intercept=True)
            model.fit(F, y)
            self.coef = (V @ model.coef_[0]).astype(np.float64)
            self.intercept = float(model.intercept_[0])
            n_iter = int(np.max(model.n_iter_))
        proba = self.predict_proba(X)
        if self.threshold_rule == "train":
            self.threshold = choose_threshold(y, proba)
        pred = proba >= self.threshold
        self.train_metrics = {
            "train_accuracy": float((pred == y.astype(bool)).mean()),
            "train_balanced_accuracy": balanced_accuracy(y, pred),
            "coef_norm": float(np.linalg.norm(self.coef)),
            "n_iter": n_iter,
        }
        return self

    # ---- prediction ------------------------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("the probe is not fitted")
        return self.transform(X) @ self.coef + self.intercept

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n,) P(Unsafe) in [0, 1]."""
        s = self.decision_function(X)
        return np.where(s >= 0, 1.0 / (1.0 + np.exp(-np.abs(s))),
                        np.exp(-np.abs(s)) / (1.0 + np.exp(-np.abs(s))))

    def predict(self, X: Any) -> np.ndarray:
        """(n,) 1 = Unsafe (P(unsafe) >= threshold), 0 = Safe."""
        return (self.predict_proba(X) >= self.threshold).astype(np.int64)

    # ---- files -----------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {"C": self.C, "penalty": "l2", "solver": SOLVER, "max_iter": self.max_iter,
                "tol": self.tol, "standardize": self.standardize,
                "threshold_rule": self.threshold_rule}

    def to_bytes(self, card: Mapping[str, Any] | None = None) -> tuple[bytes, bytes]:
        """(safetensors bytes, model-card JSON bytes). `card` adds to/overrides the fit facts."""
        from safetensors.numpy import save

        from spairs_assets import __version__

        if self.coef is None or self.mean is None or self.scale is None:
            raise RuntimeError("the probe is not fitted")
        full = {**self.card, **(dict(card) if card else {})}
        full.update({
            "format": PROBE_FORMAT,
            "dim": self.dim,
            "threshold": self.threshold,
            "fit": self.settings(),
            "train_metrics": self.train_metrics,
            "created_with": f"spairs {__version__}",
        })
        encoder = full.get("encoder") or {}
        tensors = {
            "coef": np.ascontiguousarray(self.coef, dtype=np.float64),
            "intercept": np.array([self.intercept], dtype=np.float64),
            "mean": np.ascontiguousarray(self.mean, dtype=np.float64),
            "scale": np.ascontiguousarray(self.scale, dtype=np.float64),
        }
        # One metadata key holding canonical JSON: safetensors writes its metadata map in
        # hash order, so several keys would make the file bytes differ between runs.
        metadata = {METADATA_KEY: json.dumps(
            {"format": PROBE_FORMAT, "encoder_id": str(encoder.get("id", "")),
             "encoder_version": str(encoder.get("version", "")), "threshold": self.threshold},
            sort_keys=True)}
        card_bytes = (json.dumps(full, sort_keys=True, indent=2, default=_json_default) + "\n").encode()
        return save(tensors, metadata=metadata), card_bytes

    def save(self, path: str | os.PathLike[str], card: Mapping[str, Any] | None = None
             ) -> tuple[str, str]:
        """Write `<stem>.safetensors` and `<stem>.json` (local path or fsspec URL); return both."""
        import fsspec

        weights_path, card_path = probe_paths(path)
        weights, card_bytes = self.to_bytes(card)
        for target, data in ((weights_path, weights), (card_path, card_bytes)):
            fs, p = fsspec.core.url_to_fs(target)
            parent = os.path.dirname(p)
            if parent:
                fs.makedirs(parent, exist_ok=True)
            with fs.open(p, "wb") as fh:
                fh.write(data)
        self.card = json.loads(card_bytes)
        return weights_path, card_path

    @classmethod
    def from_bytes(cls, weights: bytes, card_bytes: bytes) -> LinearProbe:
        """Rebuild a probe from its safetensors and card bytes (no pickle anywhere)."""
        from safetensors.numpy import load

        if probe_metadata(weights).get("format") != PROBE_FORMAT:
            raise ValueError(f"not a {PROBE_FORMAT} weights file")
        tensors = load(weights)
        card = json.loads(card_bytes)
        missing = {"coef", "intercept", "mean", "scale"} - set(tensors)
        if missing:
            raise ValueError(f"probe weights lack tensors {sorted(missing)}")
        if card.get("format") != PROBE_FORMAT:
            raise ValueError(f"not a {PROBE_FORMAT} model card (format {card.get('format')!r})")
        fit = card.get("fit", {})
        probe = cls(C=float(fit.get("C", DEFAULT_C)),
                    standardize=fit.get("standardize", "center-scale"),
                    max_iter=int(fit.get("max_iter", MAX_ITER)), tol=float(fit.get("tol", TOL)))
        probe.threshold_rule = fit.get("threshold_rule", "fixed")
        probe.threshold = float(card["threshold"])
        probe.coef = tensors["coef"].astype(np.float64)
        probe.intercept = float(tensors["intercept"][0])
        probe.mean = tensors["mean"].astype(np.float64)
        probe.scale = tensors["scale"].astype(np.float64)
        if not (probe.coef.shape == probe.mean.shape == probe.scale.shape) or probe.coef.ndim != 1:
            raise ValueError("probe tensors have inconsistent shapes")
        if int(card.get("dim", probe.dim)) != probe.dim:
            raise ValueError(f"model card says dim {card.get('dim')}, weights have {probe.dim}")
        probe.card = card
        probe.train_metrics = dict(card.get("train_metrics", {}))
        return probe

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LinearProbe:
        """Load `<stem>.safetensors` + `<stem>.json` (path given with or without the suffix)."""
        import fsspec

        weights_path, card_path = probe_paths(path)
        with fsspec.open(weights_path, "rb") as fh:
            weights = fh.read()
        with fsspec.open(card_path, "rb") as fh:
            card = fh.read()
        return cls.from_bytes(weights, card)

    def __repr__(self) -> str:
        state = f"dim={self.dim}" if self.coef is not None else "unfitted"
        return f"LinearProbe({state}, C={self.C:g}, threshold={self.threshold:.3f})"


def _row_space(Z: np.ndarray, rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """(F, V) with Z = F @ V.T, V (d, r) orthonormal, r = rank(Z) <= min(n, d).

    The L2-penalised logistic loss depends on w only through the training scores Z w and
    ||w||^2. Writing w = V v + u with u orthogonal to Z's row space, u changes no score and only
    adds ||u||^2 to the penalty, so the optimum has u = 0 and ||w|| = ||v||: fitting the same
    model (same C, same solver) on the r coordinates F = Z V and mapping back with w = V v gives
    the primal solution exactly, at the cost of an (n, r) problem instead of (n, d). With 8-250
    training images and 400-1400-d embeddings that is the difference between 3 ms and 0.1 s
    a fit.
    """
    if Z.shape[0] >= Z.shape[1]:
        return Z, np.eye(Z.shape[1])
    _, sv, vt = np.linalg.svd(Z, full_matrices=False)
    keep = sv > rtol * (sv[0] if sv.size else 0.0)
    V = vt[keep].T
    return Z @ V, V


def probe_paths(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(weights path, card path) for a probe stem or either file's path."""
    p = os.fspath(path)
    for suffix in (WEIGHT_SUFFIX, CARD_SUFFIX):
        if p.endswith(suffix):
            p = p[: -len(suffix)]
            break
    return p + WEIGHT_SUFFIX, p + CARD_SUFFIX


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The string metadata of a safetensors file (its JSON header's ``__metadata__``)."""
    if len(data) < 8:
        raise ValueError("not a safetensors file (too short)")
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or 8 + n > len(data):
        raise ValueError("not a safetensors file (bad header length)")
    header = json.loads(data[8:8 + n])
    return dict(header.get("__metadata__") or {})


def probe_metadata(data: bytes) -> dict[str, Any]:
    """The probe facts stored in a probe's safetensors metadata (format, encoder, threshold)."""
    raw = safetensors_metadata(data).get(METADATA_KEY)
    try:
        return json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
