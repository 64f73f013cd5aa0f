"""Category partitions: one per policy category, keys taken from the policy file."""


import dagster as dg

from spairs_assets.config import load_config

POLICY = load_config().safety_policy

category_partitions = dg.StaticPartitionsDefinition(POLICY.partition_keys)
