"""Text forms of resources that never show a secret, whatever Dagster resolved into them.

Pydantic gives a model several text forms: `repr()`, `str()` (and so f-strings and
`format()`), and the pretty-printers of rich and devtools. The last three are built from
`__repr_args__`, not from `__repr__`, so a resource must redact there too: `RedactedFields`
does both.
"""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from connections_pipeline.redaction import is_secret_name, redact_url, scrub

MASK = "**********"


class _Shown:
    """A field value that shows as the given text in reprs."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _field_text(name: str, value: Any) -> str:
    if isinstance(value, dg.EnvVar):
        # Unresolved: the variable's name is all there is to show.
        return f"EnvVar({value.env_var_name!r})"
    if value and is_secret_name(name):
        return MASK
    if isinstance(value, str) and "://" in value:
        return repr(redact_url(value))
    return repr(value)


def redacted_fields(
    resource: Any, shown: Mapping[str, str] | None = None
) -> list[tuple[str, _Shown]]:
    """(field, shown value) of every public field: secrets masked, credentials removed from
    URLs, EnvVars by name; `shown` gives the text of particular fields."""
    fields = []
    for name, value in resource.__dict__.items():
        if name.startswith("_"):
            continue
        if shown is not None and name in shown and not isinstance(value, dg.EnvVar):
            text = shown[name]
        else:
            text = _field_text(name, value)
        fields.append((name, _Shown(text)))
    return fields


def redacted_repr(resource: Any, shown: Mapping[str, str] | None = None) -> str:
    fields = ", ".join(f"{name}={text!r}" for name, text in redacted_fields(resource, shown))
    return f"{type(resource).__name__}({fields})"


class RedactedFields:
    """Mixin for a ConfigurableResource: every text form of it goes through
    `redacted_fields`. Subclasses override `_shown` to show particular fields their way."""

    def _shown(self) -> Mapping[str, str] | None:
        return None

    def __repr__(self) -> str:
        return redacted_repr(self, self._shown())

    def __str__(self) -> str:
        return repr(self)

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        # What pydantic's str(), rich and devtools print.
        yield from redacted_fields(self, self._shown())


def secret_values_of(*resources: Any) -> list[str]:
    """Every secret the given resources hold (their `secret_values()`), resolved values only."""
    found: list[str] = []
    for resource in resources:
        values = getattr(resource, "secret_values", None)
        if values is not None:
            found += [v for v in values() if isinstance(v, str) and not isinstance(v, dg.EnvVar)]
    return found


def scrub_resources(text: str, *resources: Any) -> str:
    """`text` (an error message, say) without any secret the given resources hold."""
    return scrub(text, secret_values_of(*resources))
