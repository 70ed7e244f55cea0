"""Company and customer names, including the hostile ones a CSV export must survive.

Payroll systems hold whatever an administrator typed: Unicode, commas, quotes, line breaks,
markup, and strings a spreadsheet would execute. The dataset plants every such case so the
pipeline's escaping and formula neutralisation are tested against realistic input.
"""

from __future__ import annotations

from functools import lru_cache
from random import Random

from .draws import pick

HOSTILE_COMPANY_NAMES: tuple[str, ...] = (
    "Café Müller & Söhne GmbH",
    "日本テクノロジー株式会社",
    "🚀 Rocket Payroll Labs LLC",
    "Smith, Jones, and Partners LLP",
    # markup: a page that shows it must show it as text, and nothing in it may run
    'The "Best" <img src=x onerror="alert(1)"> Widgets, Inc.',
    "North Line Holdings\nSecond Line Ltd",
    '=HYPERLINK("http://example.com/x","Click me")',
    "+1 Staffing Solutions",
    "-2 Degrees Cooling Inc.",
    "@SUM(A1:A10) Accounting",
    "\tTabbed Services Co.",
    "\rCarriage Return Logistics",
    "Ærø Fiskeri ApS",
    'Ünïcödé Ñame, "Quoted", and\nNewline Corp',
)
"""Every hostile case appears at least once in a dataset of >= 170 connections."""

HOSTILE_CUSTOMER_NAMES: tuple[str, ...] = (
    "Zoë's Café, Inc.",
    'Acme "Prime" <script>alert(document.domain)</script> Customer',
    "=cmd|' /C calc'!A0",
    "顧客 株式会社",
    "Line One\nLine Two Customer",
)

_PREFIXES = (
    "Acme",
    "Blue Ridge",
    "Summit",
    "Evergreen",
    "Northwind",
    "Harbor",
    "Granite",
    "Lumen",
    "Cedar",
    "Pioneer",
    "Silverline",
    "Redwood",
    "Atlas",
    "Beacon",
    "Keystone",
    "Meridian",
    "Orchard",
    "Riverside",
    "Sterling",
    "Willow",
    "Zürich",
    "Bergström",
    "Élan",
    "Crescent",
)
_NOUNS = (
    "Logistics",
    "Dental",
    "Analytics",
    "Bakery",
    "Construction",
    "Health",
    "Robotics",
    "Software",
    "Landscaping",
    "Consulting",
    "Manufacturing",
    "Hospitality",
    "Foods",
    "Media",
    "Pharmacy",
    "Motors",
    "Energy",
    "Design",
    "Legal",
    "Veterinary",
)
_SUFFIXES = ("LLC", "Inc.", "Co.", "Corp.", "Group", "Ltd", "PLLC", "Partners", "Holdings")
_REGIONS = ("East", "West", "North", "South", "Central", "Pacific", "Midwest", "Texas", "Canada")


def company_name(rng: Random) -> str:
    return f"{pick(rng, _PREFIXES)} {pick(rng, _NOUNS)} {pick(rng, _SUFFIXES)}"


def entity_name(rng: Random, legal_name: str, index: int) -> str:
    """A sub-entity of a multi-entity employer (a division, an EIN, a company code)."""
    return f"{legal_name} - {pick(rng, _REGIONS)} {index + 1}"


@lru_cache(maxsize=8192)
def slug(name: str) -> str:
    kept = "".join(c.lower() if c.isascii() and c.isalnum() else "-" for c in name)
    return "-".join(part for part in kept.split("-") if part)[:40] or "employer"
