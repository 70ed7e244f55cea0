"""What an export contains: the Dashboard's columns, the sorts it offers, file names."""

from datetime import date

# (header, finch_connections column), in the order of Finch's Dashboard export, then ours.
DASHBOARD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Company Name", "company_name"),
    ("Company ID", "company_id"),
    ("Connection ID", "connection_id"),
    ("Customer Name", "customer_name"),
    ("Customer ID", "customer_id"),
    ("# Entities", "entity_count"),
    ("Connection Status", "connection_status_label"),
    ("Last Synced", "last_synced_at"),
    ("Connection Type", "connection_type"),
    ("Connected", "connected_at"),
    ("Provider", "provider_name"),
    # Ours, not Finch's: a connection whose tokens the application dropped is still shown
    # (nothing proves it disconnected), with when this pipeline stopped being able to see it.
    ("Left Token Source", "left_source_at"),
)

# The Dashboard sorts by company name or by connection ID.
SORT_KEYS: tuple[str, ...] = ("company_name", "connection_id")

# Ties (and rows whose sort value is blank) are ordered by the table's key, so an export
# of the same snapshot is the same file byte for byte.
TIE_BREAKER = "connection_key"

ISO_8601_UTC = "%Y-%m-%dT%H:%M:%SZ"


def dated_file_name(state: str, day: date) -> str:
    """`connections_live_2026-11-29.csv`: `state` as the snapshot of `day` (UTC) shows it."""
    return f"connections_{state}_{day.isoformat()}.csv"


def latest_file_name(state: str) -> str:
    """`connections_live_latest.csv`: a stable name that always holds the export of the
    newest loaded snapshot."""
    return f"connections_{state}_latest.csv"


def dated_report_name(day: date) -> str:
    """`connections_report_2026-11-29.html`: the HTML report of the snapshot of `day`."""
    return f"connections_report_{day.isoformat()}.html"


def latest_report_name() -> str:
    """`connections_report_latest.html`: a stable name for the newest report."""
    return "connections_report_latest.html"
