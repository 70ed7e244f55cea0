"""Reprs of resources that never show a secret, whatever Dagster resolved into them."""

from typing import Any

SECRET_MARKERS = ("secret", "token", "password")
MASK = "**********"


def redacted_repr(resource: Any) -> str:
    fields = []
    for name, value in resource.__dict__.items():
        if name.startswith("_"):
            continue
        shown = MASK if value and any(m in name for m in SECRET_MARKERS) else repr(value)
        fields.append(f"{name}={shown}")
    return f"{type(resource).__name__}({', '.join(fields)})"
