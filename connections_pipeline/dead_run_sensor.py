"""Under the daemon: fail, within a minute, a run whose process died with nobody to say so.

Dagster's default run launcher cannot tell run monitoring whether a local run worker is
alive, so a run whose worker died together with the daemon and its code server (a crashed
machine) would stay `STARTED`, holding the `finch_api` slot, until `max_runtime_seconds`
(12 hours). This sensor runs in the code server, on the machine where the default launcher
starts run workers, and checks their pids (`local_instance.fail_dead_runs`).
"""

import dagster as dg

from connections_pipeline.local_instance import fail_dead_runs

DEAD_RUN_SENSOR = "fail_dead_runs"
DEAD_RUN_CHECK_SECONDS = 30


def dead_run_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name=DEAD_RUN_SENSOR,
        minimum_interval_seconds=DEAD_RUN_CHECK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks failed every started run whose process on this machine is gone, "
        "freeing its pool slot (a killed run would otherwise hold finch_api for hours).",
    )
    def fail_dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        dead = fail_dead_runs(context.instance, trust_launcher=True)
        for run in dead:
            context.log.warning(
                f"run {run.run_id} ({run.job_name}): process {run.pids} gone, marked failed"
            )
        return dg.SkipReason(f"{len(dead)} dead run(s) marked failed")

    return fail_dead_runs_sensor
