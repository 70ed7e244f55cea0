"""What follows a sync, however the sync was started.

The CSV exports and the SQL models declare `AFTER_UPSTREAM` as their automation condition,
and `automation_sensor` evaluates it. Declarative automation reacts to materializations in
the instance's event log, so a sync started by the schedule, the UI, a backfill, a retry or
`dagster job execute` (which no run-status sensor sees) is followed the same way.
"""

import dagster as dg

AUTOMATION_SENSOR_NAME = "connections_after_sync"
# Dagster's default is 30 s. An evaluation here is a handful of assets, cheap enough that the
# exports can follow a sync within seconds rather than half a minute.
AUTOMATION_INTERVAL_SECONDS = 10

# Only assets this code location materializes count as missing: an external asset (the
# token and session sources) that no run materializes would otherwise hold back for ever
# whatever reads it next to a table the sync loads.
_ANY_DEP_MISSING = dg.AutomationCondition.any_deps_missing().allow(dg.AssetSelection.all())

# Run when an upstream asset was materialized (a sync that raised dg.Failure materializes
# nothing, so nothing follows it), once no upstream is missing or still running, and only
# when every blocking check of the upstream assets passed: a sync held by a blocking check
# publishes nothing downstream until a person accepts it.
AFTER_UPSTREAM = (
    dg.AutomationCondition.eager().replace("any_deps_missing", _ANY_DEP_MISSING)
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("after_upstream")


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates every asset's automation condition, on by default.

    With backfills allowed, the three state partitions of the CSV export become one
    single-run backfill (the asset's `BackfillPolicy.single_run()`): one export run per
    sync, reading the warehouse once, instead of three runs meeting on a DuckDB file's lock.
    The backfills and runs it asks for need the Dagster daemon (`dagster dev` starts one).
    """
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR_NAME,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        emit_backfills=True,
        minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
        description="After each sync that materialized its assets and passed its blocking "
        "checks: one run exporting every state's CSV, and a rebuild of the SQL models.",
    )
