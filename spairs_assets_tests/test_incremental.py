"""run_cached: the per-item cache behind every model-calling stage."""

import pytest

from spairs_assets.incremental import run_cached
from spairs_assets.storage import ItemCache, Storage


@pytest.fixture
def cache(tmp_path):
    return ItemCache(Storage(tmp_path), "stage")


def test_second_run_computes_nothing(cache):
    calls = []

    def compute(x):
        calls.append(x)
        return {"square": x * x}

    first, s1 = run_cached([1, 2, 3], key_of=lambda x: f"k{x}", compute=compute, cache=cache)
    second, s2 = run_cached([1, 2, 3], key_of=lambda x: f"k{x}", compute=compute, cache=cache)
    assert calls == [1, 2, 3]
    assert [o.value for o in first] == [o.value for o in second] == [{"square": v} for v in (1, 4, 9)]
    assert (s1.computed, s1.cached, s2.computed, s2.cached) == (3, 0, 0, 3)
    assert all(o.cached for o in second)


def test_new_items_only_are_computed(cache):
    calls = []
    run_cached([1, 2], key_of=str, compute=lambda x: calls.append(x) or {"v": x}, cache=cache)
    outcomes, stats = run_cached([1, 2, 3], key_of=str,
                                 compute=lambda x: calls.append(x) or {"v": x}, cache=cache)
    assert calls == [1, 2, 3] and stats.computed == 1 and stats.cached == 2
    assert [o.item for o in outcomes] == [1, 2, 3]


def test_failures_are_recorded_not_cached_and_retried(cache):
    attempts = {}

    def flaky(x):
        attempts[x] = attempts.get(x, 0) + 1
        if x == 2 and attempts[x] == 1:
            raise RuntimeError("model timed out")
        return {"v": x}

    outcomes, stats = run_cached([1, 2, 3], key_of=str, compute=flaky, cache=cache)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].error == "RuntimeError: model timed out"
    assert stats.failed == 1 and stats.errors == {"RuntimeError": 1}
    outcomes, stats = run_cached([1, 2, 3], key_of=str, compute=flaky, cache=cache)
    assert all(o.ok for o in outcomes) and stats.computed == 1 and stats.cached == 2


def test_crash_loses_only_the_item_in_flight(cache):
    done = []

    def crashing(x):
        if x == 3:
            raise KeyboardInterrupt  # the process is killed mid-partition
        done.append(x)
        return {"v": x}

    with pytest.raises(KeyboardInterrupt):
        run_cached([1, 2, 3, 4], key_of=str, compute=crashing, cache=cache)
    calls = []
    _, stats = run_cached([1, 2, 3, 4], key_of=str,
                          compute=lambda x: calls.append(x) or {"v": x}, cache=cache)
    assert done == [1, 2] and calls == [3, 4] and stats.cached == 2


def test_batches_keep_order_and_isolate_bad_items(cache):
    def batch(items):
        return [ValueError(f"bad {x}") if x % 3 == 0 else {"v": x} for x in items]

    outcomes, stats = run_cached(list(range(1, 8)), key_of=str, compute_batch=batch,
                                 batch_size=3, cache=cache)
    assert [o.item for o in outcomes] == list(range(1, 8))
    assert [o.ok for o in outcomes] == [True, True, False, True, True, False, True]
    assert stats.computed == 5 and stats.failed == 2


def test_progress_is_reported(cache):
    seen = []
    run_cached(list(range(5)), key_of=str, compute=lambda x: {"v": x}, cache=cache,
               progress=lambda done, total, s: seen.append((done, total)), progress_every=2)
    assert seen == [(2, 5), (4, 5), (5, 5)]
