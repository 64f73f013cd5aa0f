"""Run judges over images with the per-(judge, image) cache; shared by verification and the
benchmark, so an image a judge has already rated (same model, version, prompt) is never rated
again by either stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PIL import Image

from spairs_assets.incremental import Progress, RunStats, run_cached
from spairs_assets.judges.base import PARSE_ERROR, Verdict
from spairs_assets.storage import ItemCache, cache_key


# Bump when the cached value's layout changes, so old entries are not misread.
CACHE_FORMAT = 2


def judge_key(judge: Any, image_id: str) -> str:
    return cache_key(stage="judge", judge=judge.judge_id, version=judge.version, image=image_id,
                     format=CACHE_FORMAT)


def judge_images(
    image_ids: Sequence[str],
    judges: Mapping[str, Any],
    load: Callable[[str], Image.Image],
    cache: ItemCache,
    progress: Progress | None = None,
) -> tuple[dict[str, dict[str, tuple[Verdict, float | None]]], dict[str, RunStats]]:
    """results[image_id][judge name] = (verdict, latency in seconds when it was computed).

    A judge that raises on an image gives a verdict with parse status "error" and the error in
    its details; it is not cached, so the next run asks again.
    """
    results: dict[str, dict[str, tuple[Verdict, float | None]]] = {iid: {} for iid in image_ids}
    stats: dict[str, RunStats] = {}
    for name, judge in judges.items():
        def compute(iid: str, judge=judge) -> dict[str, Any]:
            image = load(iid)
            began = time.perf_counter()
            verdict = judge.judge(image, image_id=iid)
            return {"verdict": verdict.as_dict(), "latency_s": time.perf_counter() - began}

        outcomes, stats[name] = run_cached(list(image_ids), key_of=lambda iid, j=judge: judge_key(j, iid),
                                           compute=compute, cache=cache, progress=progress)
        for o in outcomes:
            if o.ok:
                results[o.item][name] = (Verdict.from_dict(o.value["verdict"]), o.value["latency_s"])
            else:
                results[o.item][name] = (Verdict(None, None, "", parse_status=PARSE_ERROR,
                                                 details={"error": o.error}), None)
    return results, stats
