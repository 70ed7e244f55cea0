"""Notifications as a Dagster resource: the three destination settings and how to send."""

from collections.abc import Mapping

import dagster as dg

from connections_pipeline.notify.destinations import (
    CHANNEL_SETTINGS,
    EXPORTS,
    NEEDS_ACTION,
    RUNS,
    Destination,
    destinations,
    split_urls,
)
from connections_pipeline.redaction import scrub
from connections_pipeline.resources.redacted_fields import RedactedFields

DEFAULT_ATTACH_MAX_MB = 10.0
DEFAULT_NOTIFY_TIMEOUT_SECONDS = 20.0


class NotifierResource(RedactedFields, dg.ConfigurableResource):
    """Apprise URLs per channel (CONNECTIONS_NOTIFY_RUNS, _NEEDS_ACTION, _EXPORTS); unset,
    nothing is queued or sent. The URLs hold secrets: every text form shows how many there
    are and their services, never the URLs."""

    runs: str | None = None
    needs_action: str | None = None
    exports: str | None = None
    # Files above this total go as their locations instead of attachments.
    attach_max_mb: float = DEFAULT_ATTACH_MAX_MB
    # How long one delivery may take before it is recorded as failed and left for later.
    timeout_seconds: float = DEFAULT_NOTIFY_TIMEOUT_SECONDS
    # DAGSTER_WEBSERVER_URL: messages about a run link to it there.
    webserver_url: str | None = None

    def _shown(self) -> Mapping[str, str]:
        return {channel: repr(_services(getattr(self, channel))) for channel in CHANNEL_SETTINGS}

    def destinations(self, channel: str) -> list[Destination]:
        """The channel's destinations; NotifySettingError naming the setting if unusable."""
        return destinations(CHANNEL_SETTINGS[channel], getattr(self, channel), channel)

    def all_destinations(self) -> list[Destination]:
        return [found for channel in CHANNEL_SETTINGS for found in self.destinations(channel)]

    def run_link(self, run_id: str) -> str | None:
        if not self.webserver_url:
            return None
        return f"{self.webserver_url.rstrip('/')}/runs/{run_id}"

    def secret_values(self) -> list[str]:
        return [url for channel in (RUNS, NEEDS_ACTION, EXPORTS) for url in _urls(self, channel)]

    def scrub(self, text: str) -> str:
        return scrub(text, self.secret_values())


def _urls(resource: NotifierResource, channel: str) -> list[str]:
    value = getattr(resource, channel)
    return split_urls(value) if isinstance(value, str) else []


def _services(value: object) -> str | None:
    """`2 URLs (mailto, json)` for a setting's text, never the URLs."""
    if not isinstance(value, str) or not value:
        return None
    urls = split_urls(value)
    schemes = sorted({url.partition("://")[0] for url in urls if "://" in url})
    return f"{len(urls)} URL{'s' if len(urls) != 1 else ''} ({', '.join(schemes)})"
