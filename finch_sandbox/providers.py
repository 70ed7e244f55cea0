"""The emulator's catalogue of payroll/HRIS providers (a realistic subset of Finch's network).

The Dashboard shows a provider's display name, and connection types follow from which
authentication methods a provider offers, so the catalogue mixes automated-only,
assisted-only and both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

AUTOMATED_AUTH_TYPES: frozenset[str] = frozenset(
    {"credential", "api_token", "api_credential", "oauth"}
)
ASSISTED = "assisted"

ORG_PRODUCTS = ("company", "directory", "individual", "employment")
PAYROLL_PRODUCTS = ("payment", "pay_statement")
ALL_PRODUCTS = (*ORG_PRODUCTS, *PAYROLL_PRODUCTS, "benefits", "ssn", "deduction", "documents")


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    display_name: str
    auth_types: tuple[str, ...]
    products: tuple[str, ...]
    primary_color: str
    beta: bool = False
    mfa_required: bool = False

    @property
    def automated_types(self) -> tuple[str, ...]:
        return tuple(t for t in self.auth_types if t in AUTOMATED_AUTH_TYPES)

    @property
    def supports_assisted(self) -> bool:
        return ASSISTED in self.auth_types

    def to_json(self) -> dict[str, Any]:
        """The `GET /providers` item (SDK `ProviderListResponse`)."""
        return {
            "id": self.id,
            "display_name": self.display_name,
            "products": list(self.products),
            "authentication_methods": [{"type": t} for t in self.auth_types],
            "manual": not self.automated_types,
            "beta": self.beta,
            "icon": f"https://assets.finch-api.com/icons/{self.id}.svg",
            "logo": f"https://assets.finch-api.com/logos/{self.id}.svg",
            "primary_color": self.primary_color,
            "mfa_required": self.mfa_required,
        }


_FULL = (*ORG_PRODUCTS, *PAYROLL_PRODUCTS, "benefits", "ssn", "deduction", "documents")
_NO_DOCS = (*ORG_PRODUCTS, *PAYROLL_PRODUCTS, "benefits", "ssn", "deduction")
_HRIS = (*ORG_PRODUCTS, "ssn", "benefits", "deduction")

PROVIDERS: tuple[Provider, ...] = (
    Provider("gusto", "Gusto", ("oauth",), _FULL, "#F45D48"),
    Provider(
        "adp_workforce_now",
        "ADP Workforce Now",
        ("api_credential", "assisted"),
        _FULL,
        "#D0271D",
        mfa_required=True,
    ),
    Provider(
        "adp_run",
        "ADP RUN",
        ("credential", "assisted"),
        _NO_DOCS,
        "#D0271D",
        mfa_required=True,
    ),
    Provider("paychex_flex", "Paychex Flex", ("credential", "assisted"), _NO_DOCS, "#004B8D"),
    Provider("bamboo_hr", "BambooHR", ("api_token", "oauth"), _HRIS, "#73C41D"),
    Provider("rippling", "Rippling", ("oauth",), _FULL, "#502D3C"),
    Provider("justworks", "Justworks", ("credential",), _NO_DOCS, "#1A73E8"),
    Provider("trinet", "TriNet", ("credential", "assisted"), _NO_DOCS, "#00A3E0"),
    Provider("paylocity", "Paylocity", ("api_credential", "assisted"), _FULL, "#E4701E"),
    Provider(
        "paycom",
        "Paycom",
        ("credential", "assisted"),
        _NO_DOCS,
        "#00A859",
        mfa_required=True,
    ),
    Provider("paycor", "Paycor", ("api_credential", "assisted"), _NO_DOCS, "#E31937"),
    Provider("workday", "Workday", ("api_credential", "assisted"), _FULL, "#0875E1"),
    Provider("ukg_pro", "UKG Pro", ("api_credential", "assisted"), _NO_DOCS, "#005151"),
    Provider("quickbooks", "QuickBooks Payroll", ("oauth",), _NO_DOCS, "#2CA01C"),
    Provider("namely", "Namely", ("api_token",), _HRIS, "#FF5A4F"),
    Provider("zenefits", "TriNet Zenefits", ("oauth",), _NO_DOCS, "#FF5F5F"),
    Provider("insperity", "Insperity", ("assisted",), _NO_DOCS, "#A6192E"),
    Provider("square_payroll", "Square Payroll", ("oauth",), _NO_DOCS, "#3E4348"),
    Provider("wave", "Wave Payroll", ("assisted",), _NO_DOCS, "#1C6EDB", beta=True),
    Provider("sage_hr", "Sage HR", ("api_token", "assisted"), _HRIS, "#00D639"),
    Provider("personio", "Personio", ("api_credential",), _HRIS, "#141E2D", beta=True),
)

PROVIDERS_BY_ID: dict[str, Provider] = {p.id: p for p in PROVIDERS}

PROVIDERS_BODY: bytes = json.dumps(
    [p.to_json() for p in PROVIDERS], separators=(",", ":"), ensure_ascii=False
).encode()
"""`GET /providers` serialised once: the list never changes, and it is the hottest
unauthenticated endpoint in a benchmark."""


def providers_supporting(*, automated: bool, assisted: bool) -> tuple[Provider, ...]:
    """Providers that offer every requested family of authentication methods."""
    return tuple(
        p
        for p in PROVIDERS
        if (not automated or p.automated_types) and (not assisted or p.supports_assisted)
    )
