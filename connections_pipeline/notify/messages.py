"""What each message says: run alerts, the needs-action digest, export deliveries.

Plain text, readable in an email, a Slack post or a JSON webhook alike. A message is about
one thing (`kind` + `key`: a run, a snapshot, a digest): it is queued once per destination
under an ID made of the three, so a retried step or a second sender queues nothing new.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from connections_pipeline.notify.destinations import EXPORTS, NEEDS_ACTION, RUNS, Destination

HELD, FAILED, PARTIAL, STALE = "held", "failed", "partial", "stale"
DIGEST, EXPORT, REPORT, TEST = "digest", "export", "report", "test"
TIME = "%Y-%m-%d %H:%M UTC"
# How a held sync is accepted once a person has checked the change is real.
ACCEPT_COMMAND = "connections-pipeline run --accept-mass-change"
ACCEPT_RUN_CONFIG = "ops: {sync_finch_connections: {config: {accept_mass_change: true}}}"


@dataclass(frozen=True)
class Message:
    channel: str
    kind: str
    key: str
    subject: str
    body: str
    run_id: str | None = None
    attachments: tuple[str, ...] = ()

    def rows(self, destinations: Iterable[Destination], now: datetime) -> list[dict[str, Any]]:
        """One outbox row per destination."""
        return [
            {
                "notification_id": f"{self.kind}:{self.key}:{destination.fingerprint}",
                "channel": self.channel,
                "kind": self.kind,
                "destination": destination.fingerprint,
                "run_id": self.run_id,
                "subject": self.subject,
                "body": self.body,
                "attachments": json.dumps(list(self.attachments)) if self.attachments else None,
                "created_at": now,
                "attempts": 0,
            }
            for destination in destinations
        ]


def _figures(figures: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in figures.items() if value is not None)


def _with_link(lines: list[str], link: str | None) -> str:
    return "\n".join([*lines, *([f"Run: {link}"] if link else [])])


def held_alert(run_id: str, reason: str, figures: Mapping[str, Any], link: str | None) -> Message:
    body = [
        f"Sync run {run_id} was held: {reason}.",
        "Nothing was loaded: the warehouse keeps the previous snapshot and nothing "
        "downstream (CSV exports, report, SQL models) was published from this run.",
        f"Figures: {_figures(figures)}.",
        "What to do: check the change in Finch's Dashboard. If it is real, accept it once:",
        f"  {ACCEPT_COMMAND}",
        f"or launch the sync_connections job with run config  {ACCEPT_RUN_CONFIG}",
    ]
    return Message(
        RUNS, HELD, run_id, f"Connections sync held: {reason}", _with_link(body, link), run_id
    )


def failed_alert(run_id: str, error: str, link: str | None) -> Message:
    body = [
        f"Sync run {run_id} failed: {error}",
        "Nothing was loaded: the warehouse keeps the previous snapshot.",
        "What to do: read the run's log; a setting named in the error must be fixed before "
        "the next run, anything else is retried by the next scheduled sync.",
    ]
    return Message(RUNS, FAILED, run_id, "Connections sync failed", _with_link(body, link), run_id)


def partial_alert(
    run_id: str, reason: str, figures: Mapping[str, Any], link: str | None
) -> Message:
    body = [
        f"Sync run {run_id} loaded a partial snapshot: {reason}.",
        "The connections Finch did not answer for keep their last values, marked stale "
        "(stale = true, last_error says why).",
        f"Figures: {_figures(figures)}.",
        "What to do: nothing if it passes; the next sync asks Finch again.",
    ]
    return Message(
        RUNS, PARTIAL, run_id, "Connections sync partial", _with_link(body, link), run_id
    )


def stale_alert(run_id: str, finished_at: datetime, now: datetime, limit_hours: float) -> Message:
    age = (now - finished_at).total_seconds() / 3600
    body = [
        f"The Connections snapshot is {age:.1f} hours old: the last sync that loaded one "
        f"(run {run_id}) finished at {finished_at.astimezone(UTC).strftime(TIME)}; the "
        f"freshness policy allows {limit_hours:g} hours (CONNECTIONS_FRESHNESS_HOURS).",
        "What to do: check that the schedule and the Dagster daemon run, and the latest "
        "sync runs' outcomes.",
    ]
    return Message(RUNS, STALE, run_id, "Connections snapshot is stale", "\n".join(body), run_id)


def _connection_line(row: Mapping[str, Any], as_of: datetime) -> str:
    # Since the first sync that saw it so: Finch does not say when a status changed.
    since = row.get("needs_action_since")
    waited = (
        f", since at least {since.astimezone(UTC).strftime(TIME)} ({_duration(as_of - since)})"
        if since is not None
        else ""
    )
    customer = row.get("customer_name") or "-"
    if row.get("customer_id"):
        customer += f" ({row['customer_id']})"
    line = (
        f"- {row.get('company_name') or '-'} | customer {customer} | connection "
        f"{row['connection_id']} | {row.get('connection_status_label') or '-'} | "
        f"{row.get('provider_name') or row.get('provider_id') or '-'}{waited}"
    )
    if row.get("connect_url"):
        line += f"\n  re-auth link: {row['connect_url']}"
    return line


def _duration(delta: Any) -> str:
    hours = max(delta.total_seconds(), 0) / 3600
    return f"{hours / 24:.0f} days" if hours >= 48 else f"{hours:.0f} hours"


def needs_action_digest(
    newly: pl.DataFrame, recovered: pl.DataFrame, as_of: datetime, key: str
) -> Message:
    """The Dashboard's banner, pushed: who newly needs action, who recovered."""
    lines = [f"Connections as of {as_of.astimezone(UTC).strftime(TIME)}."]
    if newly.height:
        lines += [f"{newly.height} connection(s) newly need action:"]
        lines += [_connection_line(row, as_of) for row in newly.iter_rows(named=True)]
    if recovered.height:
        lines += [f"{recovered.height} connection(s) no longer need action:"]
        lines += [f"- connection {row['connection_id']}" for row in recovered.iter_rows(named=True)]
    subject = f"Finch connections: {newly.height} need action"
    if recovered.height:
        subject += f", {recovered.height} recovered"
    return Message(NEEDS_ACTION, DIGEST, key, subject, "\n".join(lines))


def export_delivery(
    kind: str, run_id: str, files: Sequence[tuple[str, str]], as_of: datetime | None
) -> Message:
    """The files one export run wrote: (what, location) each."""
    when = f" as of {as_of.astimezone(UTC).strftime(TIME)}" if as_of else ""
    what = "CSV exports" if kind == EXPORT else "report"
    lines = [f"The Finch connections {what}{when}:"]
    lines += [f"- {label}: {location}" for label, location in files]
    return Message(
        EXPORTS,
        kind,
        run_id,
        f"Finch connections {what}{when}",
        "\n".join(lines),
        run_id,
        tuple(location for _, location in files),
    )


def test_message(now: datetime) -> Message:
    return Message(
        RUNS,
        TEST,
        now.strftime("%Y%m%dT%H%M%S"),
        "connections_pipeline test message",
        "If you read this, connections_pipeline can reach this destination.",
    )
