"""Automation: a scheduled refresh of every category, and a sensor on the incoming folder.

- `category_refresh` runs `category_pipeline` once per category partition on
  `automation.refresh_cron` (weekly by default). A refresh computes only what is new: every
  model call is cached per item.
- `incoming_seeds` looks at `sources.incoming` every `automation.sensor_interval_s` seconds and
  requests a `category_pipeline` run only for the categories whose incoming files or manifest
  rows are new, changed or removed (`spairs_assets.sources.incoming`).

Both start switched off unless `automation.refresh_enabled` / `automation.sensor_enabled` say
otherwise; the UI (Automation tab) turns them on and off.
"""

import dagster as dg

from spairs_assets.config import ConfigError
from spairs_assets.defs.jobs import category_pipeline
from spairs_assets.defs.partitions import category_partitions
from spairs_assets.defs.resources import SpairsResource
from spairs_assets.defs.settings import CONFIG

AUTOMATION = CONFIG.automation
TRIGGER_TAG = "spairs/trigger"
# A category whose newest incoming file is younger than this is looked at again next tick: a
# copy into the folder may still be in progress.
SETTLE_SECONDS = 2.0


def _status(enabled: bool, kind):
    return kind.RUNNING if enabled else kind.STOPPED


def _refresh_requests(context: dg.ScheduleEvaluationContext):
    """One run per category partition (what `build_schedule_from_partitioned_job` does for
    static partitions; written out so the job needs no `partitions_def` of its own)."""
    return [dg.RunRequest(partition_key=key, run_key=key, tags={TRIGGER_TAG: "schedule"})
            for key in category_partitions.get_partition_keys()]


try:
    category_refresh = dg.schedule(
        cron_schedule=AUTOMATION.refresh_cron,
        job=category_pipeline,
        name="category_refresh",
        default_status=_status(AUTOMATION.refresh_enabled, dg.DefaultScheduleStatus),
        description="Refresh every category: one `category_pipeline` run per category partition "
        f"(`automation.refresh_cron`: {AUTOMATION.refresh_cron!r}, UTC). Only new work is computed.",
    )(_refresh_requests)
except dg.DagsterInvalidDefinitionError as exc:
    raise ConfigError(f"setting `automation.refresh_cron`: {exc}") from None


@dg.sensor(
    job=category_pipeline,
    name="incoming_seeds",
    minimum_interval_seconds=AUTOMATION.sensor_interval_s,
    default_status=_status(AUTOMATION.sensor_enabled, dg.DefaultSensorStatus),
    description="Watches `sources.incoming` (<category>/<rating>/<images> and top-level "
    "manifests) and requests a `category_pipeline` run for each category whose incoming seeds "
    "are new, changed or removed.",
)
def incoming_seeds(context: dg.SensorEvaluationContext, spairs: SpairsResource) -> dg.SensorResult:
    from spairs_assets.sources.incoming import changes_since, incoming_root

    config = spairs.config
    root = incoming_root(config)
    if root is None:
        return dg.SensorResult(skip_reason="`sources.incoming` is not set in spairs.yaml")
    if not root.is_dir():
        return dg.SensorResult(skip_reason=f"incoming folder {root} does not exist")

    changes = changes_since(root, config.safety_policy, context.cursor, settle_s=SETTLE_SECONDS)
    scan = changes.scan
    for name, error in scan.manifest_errors.items():
        context.log.warning(f"incoming manifest {name} cannot be read: {error}")
    if scan.unknown:
        context.log.info(f"ignored (not in the policy, quarantined on ingestion): {scan.unknown}")
    if changes.held_back:
        context.log.info(f"still being copied, looked at next tick: {changes.held_back}")

    known = set(category_partitions.get_partition_keys())
    requests = []
    for key in changes.affected:
        if key not in known:  # the policy changed since the code location loaded
            context.log.warning(f"{key} is not a partition of {category_pipeline.name}; reload")
            continue
        context.log.info(f"requesting a run: {changes.describe(key)}")
        requests.append(dg.RunRequest(
            partition_key=key, run_key=changes.run_key(key),
            tags={TRIGGER_TAG: "incoming", "spairs/incoming_items": str(
                scan.categories[key].items if key in scan.categories else 0)}))
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=changes.cursor)
    reason = (f"no new or changed seeds in {root} ({scan.items} items in "
              f"{len(scan.categories)} categories)")
    if changes.held_back:
        reason += f"; still being copied: {', '.join(changes.held_back)}"
    return dg.SensorResult(skip_reason=reason, cursor=changes.cursor)


schedules = [category_refresh]
sensors = [incoming_seeds]
