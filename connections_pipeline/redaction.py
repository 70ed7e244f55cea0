"""Secrets out of text: one list of what a secret is called, one way to hide each kind.

Access tokens, client secrets, database passwords (in a URL's user part or in a query
parameter such as `?password=`, which libpq reads too) and storage credentials must never
reach a log, an error message, Dagster metadata, a table or a file. Everything that shows a
URL or passes on a message that may quote one goes through here.
"""

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

# A field, column or query parameter whose name holds one of these holds a secret.
SECRET_MARKERS = ("password", "passwd", "secret", "token", "key", "credential")
HIDDEN = "***"
# A value this short is no secret (a real one is longer), and hiding it would mangle text.
MIN_SECRET_CHARS = 4


def is_secret_name(name: str) -> bool:
    return any(marker in name.lower() for marker in SECRET_MARKERS)


def scrub(text: str, secrets: Iterable[str | None] | Mapping[str, str]) -> str:
    """`text` with each secret replaced, longest first: by `***`, or by what `secrets` maps
    it to (a token by its fingerprint, say)."""
    replacements = (
        dict(secrets)
        if isinstance(secrets, Mapping)
        else {secret: HIDDEN for secret in secrets if secret}
    )
    for secret in sorted(replacements, key=len, reverse=True):
        if len(secret) >= MIN_SECRET_CHARS:
            text = text.replace(secret, replacements[secret])
    return text


def _database_url(url: str | sa.URL) -> sa.URL | None:
    if isinstance(url, sa.URL):
        return url
    try:
        return sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        return None


def url_secrets(url: str | sa.URL | None) -> list[str]:
    """The secret parts of a database URL: its password and secret query parameters."""
    parsed = _database_url(url) if url else None
    if parsed is None:
        return []
    found = [str(parsed.password)] if parsed.password else []
    for name, value in parsed.query.items():
        if is_secret_name(name):
            found += [value] if isinstance(value, str) else list(value)
    return [secret for secret in found if secret]


def safe_database_url(url: str | sa.URL) -> str:
    """A SQLAlchemy URL as text, the user shown, its password and secret query parameters
    hidden."""
    parsed = _database_url(url)
    if parsed is None:
        return "<unparsable URL>"
    hidden = {name: HIDDEN for name in parsed.query if is_secret_name(name)}
    return parsed.update_query_dict(hidden).render_as_string(hide_password=True)


def redact_url(url: str) -> str:
    """Any URL (`s3://key:secret@bucket/prefix`) without the user name or password it may
    carry."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=f"{HIDDEN}@" + parts.netloc.rpartition("@")[2]))


def nested_strings(value: Any) -> Iterable[str]:
    """Every text value inside `value` (dicts and lists included): in storage options any of
    them could be a credential."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from nested_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from nested_strings(item)
