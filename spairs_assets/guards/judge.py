"""`GuardJudge`: trained linear probes as a judge (``kind: guard``), for the benchmark.

A judge only sees the image, so it cannot pick a per-category probe by the partition being
benchmarked. Instead one judge is built from a **path** and serves every partition:

- a **probe file** (``.../deploy.safetensors``, or its stem): that probe rates every image. A
  per-category probe names its own category when it says Unsafe (and ``covers`` is that
  category); the multi-category probe cannot name one (category None).
- a **folder of probes**, normally the data root's ``guards/`` folder that the ``guard_models``
  and ``guard_sample_efficiency`` assets write: every ``<folder>/<name>/deploy.safetensors``
  (else every ``*.safetensors`` directly inside). Then:
  * the **rating** comes from the multi-category probe (card category ``"multi"``) when there is
    one: a single binary probe trained on every category's pairs and safe seeds. Without it,
    the per-category probes vote one-vs-rest: Unsafe when any probe's P(unsafe) reaches its
    threshold (more false positives: each probe never saw other categories' images);
  * the **category** of an Unsafe verdict is the per-category probe with the highest
    P(unsafe) (None when there are no per-category probes);
  * ``probability_unsafe`` is the rating probe's probability (the highest one when voting).

The encoder each probe was trained on is named in its model card (registry name, options, id,
version) and rebuilt on the first ``judge()`` call; a different encoder id or version than the
card's is refused (the probe's weights would be meaningless). Embeddings are memoised per image
id in the judge (LRU), OCR through the shared ``VISION`` memo, and verdicts are cached per
(judge id, version, image) by the benchmark as for any judge; ``version`` hashes every probe's
weights and card, so retraining the guards re-rates the images.

``threshold`` (the judge config's ``threshold``) replaces every probe's own threshold.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spairs_assets.judges.base import Verdict
from spairs_assets.policy import SAFE, UNSAFE, SafetyPolicy

if TYPE_CHECKING:
    from PIL import Image

    from spairs_assets.guards.probe import LinearProbe

GUARD_JUDGE_VERSION = "guard-judge-1"
DEPLOY_NAME = "deploy"
MULTI = "multi"


@dataclass
class _Loaded:
    name: str
    probe: LinearProbe
    category: str  # partition key or "multi"
    encoder_key: str
    digest: str


def _encoder_key(card: dict[str, Any]) -> str:
    enc = card.get("encoder") or {}
    return json.dumps({"name": enc.get("name"), "options": enc.get("options") or {},
                       "id": enc.get("id"), "version": enc.get("version")}, sort_keys=True)


def probe_files(path: str | Path) -> list[str]:
    """The probe weight files a judge built from `path` uses (see the module docstring)."""
    import fsspec

    from spairs_assets.guards.probe import WEIGHT_SUFFIX, probe_paths

    target = str(path)
    fs, root = fsspec.core.url_to_fs(target)
    if fs.isfile(probe_paths(root)[0]) and not fs.isdir(root):
        return [probe_paths(target)[0]]
    if not fs.isdir(root):
        raise FileNotFoundError(f"no guard probe at {target}: neither a probe file nor a folder")
    found = sorted(fs.glob(f"{root.rstrip('/')}/*/{DEPLOY_NAME}{WEIGHT_SUFFIX}"))
    if not found:
        found = sorted(fs.glob(f"{root.rstrip('/')}/*{WEIGHT_SUFFIX}"))
    if not found:
        raise FileNotFoundError(
            f"no guard probes in {target} (expected <name>/{DEPLOY_NAME}{WEIGHT_SUFFIX} files: "
            "materialise guard_models / guard_sample_efficiency first)")
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return [f if proto in ("file", "local") else f"{proto}://{f}" for f in found]


def _label(target: str) -> str:
    """A short name for the judge id: the folder, or the probe (its folder for deploy.*)."""
    from spairs_assets.guards.probe import probe_paths

    path = Path(target.rstrip("/"))
    if target.endswith((".safetensors", ".json")) or not Path(target).is_dir():
        stem = Path(probe_paths(str(path))[0]).stem
        return path.parent.name if stem == DEPLOY_NAME else stem
    return path.name


class GuardJudge:
    """Linear guard probes on a frozen encoder, behind the `Judge` protocol."""

    def __init__(
        self,
        path: str | Path,
        policy: SafetyPolicy,
        *,
        threshold: float | None = None,
        base_dir: str | Path | None = None,
        name: str | None = None,
        cache_size: int = 512,
    ) -> None:
        import fsspec

        from spairs_assets.guards.probe import LinearProbe, probe_paths

        target = str(path)
        if "://" not in target and not Path(target).is_absolute() and base_dir is not None:
            target = str((Path(base_dir) / target).resolve())
        if threshold is not None and not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.path = target
        self.policy = policy
        self.threshold = threshold
        self.probes: list[_Loaded] = []
        for weights_path in probe_files(target):
            w_path, c_path = probe_paths(weights_path)
            with fsspec.open(w_path, "rb") as fh:
                weights = fh.read()
            with fsspec.open(c_path, "rb") as fh:
                card_bytes = fh.read()
            probe = LinearProbe.from_bytes(weights, card_bytes)
            category = str(probe.card.get("category") or MULTI)
            if category != MULTI and policy.find_category(category) is None:
                raise ValueError(f"probe {w_path}: category {category!r} is not in policy "
                                 f"{policy.name}")
            digest = hashlib.sha256(weights + b"\0" + card_bytes).hexdigest()
            self.probes.append(_Loaded(Path(w_path).parent.name if Path(w_path).stem == DEPLOY_NAME
                                       else Path(w_path).stem, probe, category,
                                       _encoder_key(probe.card), digest))
        multi = [p for p in self.probes if p.category == MULTI]
        if len(multi) > 1:
            raise ValueError(f"{target}: more than one multi-category probe ({[p.name for p in multi]})")
        self.rating_probe = multi[0] if multi else None
        self.category_probes = [p for p in self.probes if p.category != MULTI]
        encoders = sorted({json.loads(p.encoder_key)["id"] or "?" for p in self.probes})
        label = name or _label(target)
        self.judge_id = f"guard:{label}:{'+'.join(encoders)}"
        h = hashlib.sha256()
        for p in sorted(self.probes, key=lambda p: p.name):
            h.update(f"{p.name}={p.digest};".encode())
        self.version = (f"{GUARD_JUDGE_VERSION};probes={h.hexdigest()[:16]};"
                        f"threshold={threshold};policy={policy.fingerprint}")
        if self.rating_probe is not None:
            self.covers: frozenset[str] | None = None
        else:
            self.covers = frozenset(policy.category(p.category).id for p in self.category_probes)
        self._encoders: dict[str, Any] = {}
        self._memo: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self.cache_size = cache_size

    # ---- embedding -------------------------------------------------------------------------
    def _encoder(self, key: str):
        if key not in self._encoders:
            from spairs_assets.encoders import build_encoder

            spec = json.loads(key)
            if not spec.get("name"):
                raise ValueError(f"guard probe card names no encoder to rebuild ({self.path})")
            encoder = build_encoder(spec["name"], **spec["options"])
            if (encoder.encoder_id, encoder.version) != (spec["id"], spec["version"]):
                raise ValueError(
                    f"guard probes in {self.path} were trained on encoder {spec['id']} "
                    f"version {spec['version']!r}, but {spec['name']!r} now builds "
                    f"{encoder.encoder_id} version {encoder.version!r}: retrain the guards")
            self._encoders[key] = encoder
        return self._encoders[key]

    def _embed(self, key: str, image: Image.Image, image_id: str | None) -> np.ndarray:
        from spairs_assets.ids import image_id as content_id

        rgb = image if image.mode == "RGB" else image.convert("RGB")
        iid = image_id or content_id(np.ascontiguousarray(np.asarray(rgb), dtype=np.uint8))
        memo_key = (key, iid)
        if memo_key in self._memo:
            self._memo.move_to_end(memo_key)
            return self._memo[memo_key]
        vector = self._encoder(key).embed([rgb])[0]
        self._memo[memo_key] = vector
        while len(self._memo) > self.cache_size:
            self._memo.popitem(last=False)
        return vector

    def probabilities(self, image: Image.Image, *, image_id: str | None = None) -> dict[str, float]:
        """P(unsafe) of every probe, by probe name."""
        out: dict[str, float] = {}
        for p in self.probes:
            x = self._embed(p.encoder_key, image, image_id)[None, :]
            out[p.name] = float(p.probe.predict_proba(x)[0])
        return out

    def _threshold(self, p: _Loaded) -> float:
        return self.threshold if self.threshold is not None else p.probe.threshold

    # ---- the judge -------------------------------------------------------------------------
    def judge(self, image: Image.Image, *, image_id: str | None = None) -> Verdict:
        probs = self.probabilities(image, image_id=image_id)
        firing = [p for p in self.category_probes if probs[p.name] >= self._threshold(p)]
        if self.rating_probe is not None:
            rp = self.rating_probe
            probability = probs[rp.name]
            unsafe = probability >= self._threshold(rp)
            basis = f"multi-category probe P(unsafe)={probability:.3f} (threshold {self._threshold(rp):.2f})"
        else:
            best = max(self.category_probes, key=lambda p: probs[p.name])
            probability = probs[best.name]
            unsafe = bool(firing)
            basis = (f"{len(firing)} of {len(self.category_probes)} category probes fired; highest "
                     f"P(unsafe)={probability:.3f} ({best.name})")
        category: str | None = self.policy.none_category
        if unsafe:
            if self.category_probes:
                top = max(self.category_probes, key=lambda p: probs[p.name])
                category = self.policy.category(top.category).label
                basis += f"; most likely category {top.category} (P={probs[top.name]:.3f})"
            else:
                category = None
                basis += "; no per-category probe to name the category"
        rating = UNSAFE if unsafe else SAFE
        rationale = f"Linear guard on {self.judge_id.split(':', 2)[2]}: {basis}."
        raw = json.dumps({"rating": rating, "category": category, "rationale": rationale})
        return Verdict(rating, category, rationale, float(probability), raw_output=raw,
                       details={"probabilities": probs,
                                "thresholds": {p.name: self._threshold(p) for p in self.probes}})

    def __repr__(self) -> str:
        return f"GuardJudge({self.path!r}, probes={[p.name for p in self.probes]})"


def guard_judge(config: Any, policy: SafetyPolicy, *, base_dir: str | Path | None = None,
                setting: str | None = None) -> GuardJudge:
    """Registry factory for ``kind: guard``: ``path`` (file or folder), optional ``threshold``."""
    setting = setting or f"judges.{getattr(config, 'name', 'guard')}"
    path = getattr(config, "path", None)
    if not path:
        raise ValueError(f"setting `{setting}.path`: a guard judge needs `path`, a probe "
                         "(.safetensors) or a folder of probes such as data/guards")
    try:
        return GuardJudge(path, policy, threshold=getattr(config, "threshold", None),
                          base_dir=base_dir)
    except FileNotFoundError as exc:
        raise ValueError(f"setting `{setting}.path`: {exc}") from exc
