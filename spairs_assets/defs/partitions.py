"""Category partitions: one per policy category, keys taken from the policy file."""

import dagster as dg

from spairs_assets.defs.settings import POLICY

category_partitions = dg.StaticPartitionsDefinition(POLICY.partition_keys)
