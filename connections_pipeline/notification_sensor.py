"""The sensor that retries waiting notifications and says when the snapshot is stale.

Runs send their own messages as they end; this sensor sends again what could not be sent
then (a receiver down, slow or failing), and alerts once per snapshot when the last loaded
sync is older than the freshness policy (a schedule or daemon that stopped sends nothing
itself). Its tick's text in Dagster's UI is the last outcome.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from connections_pipeline.assets.failures import error_line
from connections_pipeline.assets.notifications import WAREHOUSE_ERRORS, notify
from connections_pipeline.notify.messages import stale_alert
from connections_pipeline.resources import NotifierResource, WarehouseResource

NOTIFICATIONS_SENSOR_NAME = "finch_notifications"
INTERVAL_SECONDS = 60


class _TickLog:
    """Collects what `notify` would log, for the tick's text."""

    def __init__(self, log: dg.DagsterLogManager) -> None:
        self.log = log
        self.warnings: list[str] = []

    def info(self, text: str) -> None:
        self.log.info(text)

    def warning(self, text: str) -> None:
        self.log.warning(text)
        self.warnings.append(text)


def notifications_sensor(
    freshness_hours: float, default_status: dg.DefaultSensorStatus
) -> dg.SensorDefinition:
    """The sensor; running by default only where a notification setting is set."""

    @dg.sensor(
        name=NOTIFICATIONS_SENSOR_NAME,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=default_status,
        description="Sends the notifications that could not be sent when their run ended, "
        "and alerts CONNECTIONS_NOTIFY_RUNS once when the snapshot is older than "
        "CONNECTIONS_FRESHNESS_HOURS.",
    )
    def finch_notifications(
        context: dg.SensorEvaluationContext,
        notifier: NotifierResource,
        warehouse: WarehouseResource,
    ) -> dg.SkipReason:
        if not notifier.all_destinations():
            return dg.SkipReason("no notification URL is set")
        log = _TickLog(context.log)
        try:
            store = warehouse.open(hold_connections=False)
        except WAREHOUSE_ERRORS as exc:
            return dg.SkipReason(f"warehouse unusable: {error_line(exc, warehouse)}")
        try:
            try:
                loaded = store.latest_loaded_run()
            except WAREHOUSE_ERRORS as exc:
                return dg.SkipReason(f"warehouse not readable: {error_line(exc, warehouse)}")
            now = datetime.now(UTC)
            messages = []
            finished = loaded and loaded["finished_at"]
            if finished and now - finished > timedelta(hours=freshness_hours):
                messages.append(stale_alert(loaded["run_id"], finished, now, freshness_hours))
            figures = notify(log, notifier, store, messages)
        finally:
            store.dispose()
        return dg.SkipReason(_outcome(figures, log.warnings))

    return finch_notifications


def _outcome(figures: dict, warnings: list[str]) -> str:
    if "notifications_error" in figures:
        return f"warehouse unusable for the outbox: {figures['notifications_error']}"
    text = (
        f"{figures.get('notifications_sent', 0)} sent, "
        f"{figures.get('notifications_waiting', 0)} waiting"
    )
    return f"{text}; {warnings[0]}" if warnings else text
