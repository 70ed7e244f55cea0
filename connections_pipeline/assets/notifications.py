"""Messages from the assets: queued in the warehouse, then sent; never at the data's expense.

Every entry point here returns metadata and logs warnings; none raises. A message is queued
after the data it is about is committed, and sending is bounded by the notifier's timeout, so
a receiver that is down, slow or failing changes no table a sync or an export writes and
fails no step. What could not be sent waits in `finch_notifications` with its reason, for
the next run or the notifications sensor.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import polars as pl
import sqlalchemy as sa

from connections_pipeline.assets.failures import error_line
from connections_pipeline.assets.table_schemas import COLUMN_SCHEMA, column_schema
from connections_pipeline.notify.delivery import deliver_pending, send
from connections_pipeline.notify.destinations import NEEDS_ACTION
from connections_pipeline.notify.digest import digest_changes
from connections_pipeline.notify.messages import Message, needs_action_digest
from connections_pipeline.resources import NotifierResource, WarehouseResource
from connections_pipeline.warehouse import (
    NEEDS_ACTION_NOTIFIED,
    Warehouse,
    WarehouseConnectionError,
)
from connections_pipeline.warehouse.columns import (
    NEEDS_ACTION_NOTIFIED_COLUMNS,
    NOTIFICATIONS,
    NOTIFICATIONS_COLUMNS,
)

WAREHOUSE_ERRORS = (WarehouseConnectionError, sa.exc.SQLAlchemyError, ValueError)
NOTIFICATIONS_GROUP = "finch_notifications"
# Written by several steps and by the notifications sensor, so no one asset materializes
# them: shown in the catalog with their columns, for whoever queries them.
NOTIFICATION_TABLES = [
    dg.AssetSpec(
        NOTIFICATIONS,
        description="The notification outbox: every run alert, needs-action digest and export "
        "delivery, one row per destination (a fingerprint, never the URL), with its attempts, "
        "the last error and when it was sent. Written by the sync, the exports, the report and "
        "the finch_notifications sensor, which sends again what waits.",
        group_name=NOTIFICATIONS_GROUP,
        kinds={"python"},
        metadata={COLUMN_SCHEMA: column_schema(NOTIFICATIONS_COLUMNS)},
    ),
    dg.AssetSpec(
        NEEDS_ACTION_NOTIFIED,
        description="The connections the last needs-action digest announced: the next digest "
        "names what changed since. Empty until CONNECTIONS_NOTIFY_NEEDS_ACTION is set, so the "
        "first digest names every connection that needs action.",
        group_name=NOTIFICATIONS_GROUP,
        kinds={"python"},
        metadata={COLUMN_SCHEMA: column_schema(NEEDS_ACTION_NOTIFIED_COLUMNS)},
    ),
]


def notify(
    log: Any,
    notifier: NotifierResource,
    store: Warehouse,
    messages: Sequence[Message] = (),
    announced: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Queue `messages` for their channels' destinations (and, with `announced`, record what
    the digest announced, in the same transaction), then send everything waiting.

    Returns:
        Metadata for the step: queued, sent, failed and waiting counts, the first errors.
    """
    destinations = notifier.all_destinations()
    if not destinations:
        return {}
    now = datetime.now(UTC)
    rows = [
        row
        for message in messages
        for row in message.rows([d for d in destinations if d.channel == message.channel], now)
    ]
    try:
        queued = store.queue_notifications(rows, announced) if rows or announced is not None else 0
        delivery = deliver_pending(
            store,
            destinations,
            timeout_seconds=notifier.timeout_seconds,
            attach_max_mb=notifier.attach_max_mb,
        )
    except WAREHOUSE_ERRORS as exc:
        reason = error_line(exc, notifier)
        log.warning(f"Notifications could not use the warehouse ({reason}); sending directly")
        return {"notifications_error": reason, **_send_directly(log, notifier, messages)}
    for failure in delivery.failed:
        log.warning(f"Notification not sent, kept for a later try: {failure}")
    return {"notifications_queued": queued, **delivery.metadata()}


def notify_with_warehouse(
    log: Any, notifier: NotifierResource, warehouse: WarehouseResource, messages: Sequence[Message]
) -> dict[str, Any]:
    """`notify`, opening the warehouse itself (a failing step's store may be gone)."""
    if not notifier.all_destinations():
        return {}
    try:
        store = warehouse.open()
    except WAREHOUSE_ERRORS as exc:
        log.warning(f"Notifications: warehouse unusable ({error_line(exc, notifier, warehouse)})")
        return _send_directly(log, notifier, messages)
    try:
        return notify(log, notifier, store, messages)
    finally:
        store.dispose()


def _send_directly(
    log: Any, notifier: NotifierResource, messages: Sequence[Message]
) -> dict[str, Any]:
    """Without an outbox (the warehouse is what failed): one try, nothing kept for later."""
    sent, failed = 0, 0
    for message in messages:
        for destination in notifier.destinations(message.channel):
            error = send(
                destination,
                message.subject,
                message.body,
                list(message.attachments),
                timeout_seconds=notifier.timeout_seconds,
                attach_max_mb=notifier.attach_max_mb,
            )
            if error is None:
                sent += 1
                continue
            failed += 1
            log.warning(f"Notification not sent: {message.kind} to {destination.shown}: {error}")
    return {"notifications_sent": sent, "notifications_failed": failed}


def digest_after_load(
    log: Any,
    notifier: NotifierResource,
    store: Warehouse,
    as_of: datetime,
    run_id: str,
    messages: Sequence[Message] = (),
) -> dict[str, Any]:
    """After a loaded sync: queue `messages` and the needs-action digest if anything changed
    since the last one, and send what waits."""
    digest: list[Message] = []
    announced = None
    if notifier.destinations(NEEDS_ACTION):
        try:
            changes = digest_changes(
                store.read_current(),
                store.read_current_versions(),
                store.read_sessions(),
                store.read_table(NEEDS_ACTION_NOTIFIED),
                as_of,
                datetime.now(UTC),
            )
        except WAREHOUSE_ERRORS as exc:
            log.warning(f"Needs-action digest not computed: {error_line(exc, notifier)}")
        else:
            if changes.changed:
                log.info(
                    f"Needs-action digest: {changes.newly.height} newly need action, "
                    f"{changes.recovered.height} recovered"
                )
                digest = [needs_action_digest(changes.newly, changes.recovered, as_of, run_id)]
                announced = changes.announced
    return notify(log, notifier, store, [*messages, *digest], announced)
