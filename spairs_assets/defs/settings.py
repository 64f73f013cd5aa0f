"""The configuration as read when the code location loads.

Partitions (from the policy) and pools (GPU or not, from the chosen backends) are fixed at
definition time, so they come from here; steps read the same file through `SpairsResource`.
"""

from spairs_assets.config import load_config

CONFIG = load_config()
POLICY = CONFIG.safety_policy

GPU_POOL = "gpu"


def pool_for(uses_gpu: bool) -> str | None:
    return GPU_POOL if uses_gpu else None
