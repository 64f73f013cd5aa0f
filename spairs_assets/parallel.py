"""Thread budgets for worker processes.

NumPy's BLAS, OpenMP, OpenCV and onnxruntime each start a thread per core by default. With
several worker processes on one machine (`spairs demo --workers N`, the bare benchmark) that is
N threads per core, and their spin-waiting made verification 2-3x slower on 2 cores than the
same work in one process. Each worker gets cores // N threads instead.
"""

from __future__ import annotations

import os

ONNX_THREADS_ENV = "SPAIRS_ONNX_THREADS"


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def limit_threads(threads: int) -> None:
    """Cap this process's compute thread pools at `threads` (a process-pool initializer)."""
    from threadpoolctl import threadpool_limits

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # for libraries loaded after this point
    os.environ[ONNX_THREADS_ENV] = str(threads)  # onnxruntime sessions made by spairs
    threadpool_limits(limits=threads)  # BLAS and OpenMP already loaded
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - a pinned dependency
        pass


def onnx_threads() -> int | None:
    """The intra-op thread count for a new onnxruntime session: the worker's budget, if set."""
    raw = os.environ.get(ONNX_THREADS_ENV)
    return max(1, int(raw)) if raw and raw.isdigit() else None
