"""spairs: a Dagster platform that builds SafetyPairs (counterfactual safe/unsafe image pairs).

The Dagster code location is `spairs_assets.definitions`; the domain modules beside `defs/`
(policy, storage, sources, ...) do not import dagster and can be used on their own.
"""

__version__ = "0.1.0"
