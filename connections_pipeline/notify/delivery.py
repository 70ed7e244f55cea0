"""Sending: each waiting outbox row to its destination through Apprise, within a deadline.

A destination that fails or does not answer in time is recorded with the reason and tried
again by the next sender (the next run, or the notifications sensor); its other rows wait
for that too, so one dead receiver costs one timeout per pass, not one per message.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apprise

from connections_pipeline.notify.destinations import Destination

MB = 1024 * 1024


@dataclass
class Delivery:
    """What one pass over the outbox did."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)
    waiting: int = 0

    def metadata(self) -> dict[str, Any]:
        return {
            "notifications_sent": self.sent,
            "notifications_failed": len(self.failed),
            "notifications_waiting": self.waiting,
            **({"notification_errors": "; ".join(self.failed[:5])} if self.failed else {}),
        }


def attachable(locations: list[str], max_bytes: float) -> list[str] | None:
    """The files to attach: all of them when every one is a local file and together they
    fit `max_bytes`; None when they go as their locations only."""
    paths = [Path(location) for location in locations]
    if not paths or not all(path.is_file() for path in paths):
        return None
    return (
        [str(path) for path in paths] if sum(p.stat().st_size for p in paths) <= max_bytes else None
    )


def send(
    destination: Destination,
    subject: str,
    body: str,
    attachments: list[str],
    *,
    timeout_seconds: float,
    attach_max_mb: float,
) -> str | None:
    """Deliver one message; None when delivered, else why not (never the URL)."""
    service = apprise.Apprise()
    if not service.add(destination.url):
        return "the URL is not usable"
    files = attachable(attachments, attach_max_mb * MB)
    attach = None
    if files:
        attach = apprise.AppriseAttachment()
        for path in files:
            attach.add(path)
    elif attachments:
        body += (
            f"\n(The files are not attached: together above {attach_max_mb:g} MB "
            "(CONNECTIONS_NOTIFY_ATTACH_MAX_MB) or not local files; their locations are above.)"
        )
    try:
        result = service.notify(body=body, title=subject, attach=attach, timeout=timeout_seconds)
    except Exception as exc:  # a plugin's own error must not reach the caller
        return f"{type(exc).__name__} while sending"
    if result:
        return None
    if result.status == apprise.AppriseResultStatus.TIMEOUT:
        return f"no answer within {timeout_seconds:g} s"
    return "refused or unreachable"


def deliver_pending(
    store: Any,
    destinations: list[Destination],
    *,
    timeout_seconds: float,
    attach_max_mb: float,
    limit: int = 200,
) -> Delivery:
    """Send every waiting row whose destination is configured, newest first.

    `store` is the Warehouse (its outbox methods). Rows for a destination no longer in the
    settings stay waiting: adding the URL back delivers them.
    """
    delivery = Delivery()
    by_fingerprint = {destination.fingerprint: destination for destination in destinations}
    down: set[str] = set()
    for row in store.pending_notifications(limit).iter_rows(named=True):
        destination = by_fingerprint.get(row["destination"])
        if destination is None or row["destination"] in down:
            delivery.waiting += 1
            continue
        now = datetime.now(UTC)
        hold = now + timedelta(seconds=2 * timeout_seconds + 60)
        if not store.claim_notification(row["notification_id"], now, hold):
            continue  # another sender has it
        error = send(
            destination,
            row["subject"],
            row["body"],
            json.loads(row["attachments"]) if row["attachments"] else [],
            timeout_seconds=timeout_seconds,
            attach_max_mb=attach_max_mb,
        )
        store.record_notification_attempt(row["notification_id"], datetime.now(UTC), error)
        if error is None:
            delivery.sent += 1
        else:
            down.add(row["destination"])
            delivery.waiting += 1
            delivery.failed.append(f"{row['kind']} to {destination.shown}: {error}")
    return delivery
