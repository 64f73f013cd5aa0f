"""Incremental per-item work: compute what is not cached, cache each result as it completes.

Every model-calling stage (instructions, edits, judges, benchmark, embeddings) runs through
`run_cached`, which gives them the same guarantees:
- an item whose key is cached is not computed again (a rerun computes nothing);
- each result is cached as soon as it exists, so a crash loses at most the items in flight;
- an item that raises is recorded with its error and *not* cached, so the next run retries it;
- the backend is only built when the first uncached item needs it (a fully cached run loads
  no model).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from spairs_assets.storage.cache import ItemCache

T = TypeVar("T")

Progress = Callable[[int, int, "RunStats"], None]


@dataclass
class Outcome(Generic[T]):
    item: T
    key: str
    value: dict[str, Any] | None  # the computed or cached result; None when it failed
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RunStats:
    total: int = 0
    cached: int = 0
    computed: int = 0
    failed: int = 0
    compute_seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)  # error class -> count

    @property
    def items_per_second(self) -> float:
        return self.computed / self.compute_seconds if self.compute_seconds > 0 else 0.0

    def as_metadata(self) -> dict[str, Any]:
        return {
            "items": self.total,
            "computed": self.computed,
            "cached": self.cached,
            "failed": self.failed,
            "compute_seconds": round(self.compute_seconds, 3),
            "items_per_second": round(self.items_per_second, 3),
        }


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def run_cached(
    items: Sequence[T],
    *,
    key_of: Callable[[T], str],
    compute: Callable[[T], dict[str, Any]] | None = None,
    compute_batch: Callable[[list[T]], list[dict[str, Any] | BaseException]] | None = None,
    batch_size: int = 1,
    cache: ItemCache,
    progress: Progress | None = None,
    progress_every: int = 10,
) -> tuple[list[Outcome[T]], RunStats]:
    """Run `compute` (or `compute_batch`) on the items whose key is not cached.

    Outcomes come back in the order of `items`. `compute_batch` returns, per item, a result
    dict or the exception that item raised (one bad item does not fail its batch).
    """
    if compute is None and compute_batch is None:
        raise ValueError("give compute or compute_batch")
    stats = RunStats(total=len(items))
    outcomes: list[Outcome[T] | None] = [None] * len(items)
    pending: list[tuple[int, str]] = []
    for i, item in enumerate(items):
        key = key_of(item)
        hit = cache.get(key)
        if hit is not None:
            outcomes[i] = Outcome(item, key, hit, cached=True)
            stats.cached += 1
        else:
            pending.append((i, key))

    done = stats.cached

    def record(i: int, key: str, result: dict[str, Any] | BaseException) -> None:
        nonlocal done
        if isinstance(result, BaseException):
            error = describe_error(result)
            outcomes[i] = Outcome(items[i], key, None, error=error)
            stats.failed += 1
            stats.errors[type(result).__name__] += 1
        else:
            cache.put(key, result)  # persisted before moving on: a crash loses only in-flight items
            outcomes[i] = Outcome(items[i], key, result)
            stats.computed += 1
        done += 1
        if progress and (done % progress_every == 0 or done == len(items)):
            progress(done, len(items), stats)

    step = max(1, batch_size) if compute_batch else 1
    for start in range(0, len(pending), step):
        chunk = pending[start : start + step]
        began = time.perf_counter()
        if compute_batch is not None:
            try:
                results: Iterable[dict[str, Any] | BaseException] = compute_batch(
                    [items[i] for i, _ in chunk])
                results = list(results)
                if len(results) != len(chunk):
                    raise RuntimeError(f"batch returned {len(results)} results for {len(chunk)} items")
            except Exception as exc:  # the whole batch failed: every item records it
                results = [exc] * len(chunk)
        else:
            assert compute is not None
            try:
                results = [compute(items[chunk[0][0]])]
            except Exception as exc:
                results = [exc]
        stats.compute_seconds += time.perf_counter() - began
        for (i, key), result in zip(chunk, results, strict=True):
            record(i, key, result)
    return [o for o in outcomes if o is not None], stats
