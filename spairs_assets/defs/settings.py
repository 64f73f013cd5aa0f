"""The configuration as read when the code location loads.

Partitions (from the policy) and pools (GPU or not, from the chosen backends) are fixed at
definition time, so they come from here; steps read the same file through `SpairsResource`.
"""

from spairs_assets.config import load_config

CONFIG = load_config()
POLICY = CONFIG.safety_policy

GPU_POOL = "gpu"

# Op tags of every asset in the `gpu` pool, for executors that place steps on machines
# (deploy/k8s/gpu_op_tags.yaml documents them; executors ignore keys they do not know):
# `spairs/gpu` for `tag_concurrency_limits`, a GPU limit and the GPU-node toleration for
# `k8s_job_executor`, a GPU resource requirement for `dask_executor`.
GPU_OP_TAGS = {
    "spairs/gpu": "true",
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}}},
        "pod_spec_config": {"tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    },
    "dagster-dask/resource_requirements": {"GPU": 1},
}


def gpu_placement(uses_gpu: bool) -> dict:
    """`pool` and `op_tags` for an asset whose configured backend may need a GPU."""
    if not uses_gpu:
        return {"pool": None, "op_tags": None}
    return {"pool": GPU_POOL, "op_tags": GPU_OP_TAGS}
