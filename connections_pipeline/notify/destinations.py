"""Where messages go: the three settings' Apprise URLs, checked, fingerprinted and masked.

A notification URL holds its service's secret (an SMTP password, a Slack webhook's tokens),
so only two forms of it ever leave the settings: a fingerprint (stored in the outbox, to
know which destination a row is for) and Apprise's own privacy form (printed).
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import apprise
from apprise.utils.parse import parse_urls

# channel -> the setting listing its destinations
RUNS, NEEDS_ACTION, EXPORTS = "runs", "needs_action", "exports"
CHANNEL_SETTINGS: Mapping[str, str] = {
    RUNS: "CONNECTIONS_NOTIFY_RUNS",
    NEEDS_ACTION: "CONNECTIONS_NOTIFY_NEEDS_ACTION",
    EXPORTS: "CONNECTIONS_NOTIFY_EXPORTS",
}


class NotifySettingError(ValueError):
    """A notification setting holds something that is not a usable Apprise URL."""


@dataclass(frozen=True)
class Destination:
    channel: str
    url: str

    @property
    def fingerprint(self) -> str:
        """What the outbox stores instead of the URL."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]

    @property
    def shown(self) -> str:
        """The URL with its secrets masked, as Apprise prints it."""
        service = apprise.Apprise.instantiate(self.url)
        return service.url(privacy=True) if service is not None else "<unusable URL>"


def split_urls(text: str | None) -> list[str]:
    """The URLs of a setting: separated by commas or whitespace (Apprise's own parsing, so
    a comma inside one URL's recipient list stays in that URL)."""
    return [url for url in parse_urls(text or "") if url]


def destinations(setting: str, text: str | None, channel: str) -> list[Destination]:
    """The destinations one setting lists; NotifySettingError naming the setting and the
    entry's position (never its text: it may hold a password) when one is unusable."""
    found = []
    for position, url in enumerate(split_urls(text), start=1):
        if apprise.Apprise.instantiate(url) is None:
            scheme = url.partition("://")[0] if "://" in url else None
            what = f"a {scheme}:// URL Apprise cannot use" if scheme else "not a URL"
            raise NotifySettingError(
                f"{setting}: entry {position} is {what} (each service's URL form: "
                "https://github.com/caronc/apprise/wiki)"
            )
        found.append(Destination(channel, url))
    return found
