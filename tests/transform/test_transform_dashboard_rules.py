"""The Dashboard's column rules, each one over a small frame."""

import datetime as dt

import polars as pl
import pytest

from connections_pipeline import concepts
from connections_pipeline.transform import dashboard_rules as rules

UTC_DATETIME = pl.Datetime("us", "UTC")
AS_OF = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def _connection_types(auth_types: list[list[str] | None]) -> list[str | None]:
    frame = pl.DataFrame({"auth": auth_types}, schema={"auth": pl.List(pl.String)})
    return frame.select(rules.connection_type(pl.col("auth")).alias("kind"))["kind"].to_list()


@pytest.mark.parametrize(
    ("auth_types", "expected"),
    [
        (["assisted"], "Assisted"),
        (["credential"], "Automated"),
        (["api_token"], "Automated"),
        (["api_credential"], "Automated"),
        (["oauth"], "Automated"),
        (["credential", "oauth"], "Automated"),
        (["assisted", "credential"], "Automated, Assisted"),
        (["oauth", "assisted"], "Automated, Assisted"),
        (["api_token", "assisted", "api_credential"], "Automated, Assisted"),
        (["assisted", "assisted"], "Assisted"),
        ([], None),
        (None, None),
        (["unknown_method"], None),
        (["unknown_method", "assisted"], "Assisted"),
        ([None, "credential"], "Automated"),
    ],
)
def test_connection_type_from_authentication_methods(
    auth_types: list[str] | None, expected: str | None
) -> None:
    assert _connection_types([auth_types]) == [expected]


def test_connection_type_is_evaluated_row_by_row() -> None:
    assert _connection_types([["assisted"], ["oauth"], None, ["assisted", "oauth"]]) == [
        "Assisted",
        "Automated",
        None,
        "Automated, Assisted",
    ]


@pytest.mark.parametrize(
    ("kind", "hours"),
    [
        ("Automated", 24),
        ("Assisted", 168),
        ("Automated, Assisted", 24),
        (None, None),
    ],
)
def test_expected_refresh_hours(kind: str | None, hours: int | None) -> None:
    frame = pl.DataFrame({"kind": [kind]}, schema={"kind": pl.String})
    result = frame.select(rules.expected_refresh_hours(pl.col("kind")).alias("hours"))
    assert result["hours"].to_list() == [hours]
    assert result.schema["hours"] == pl.Int32


@pytest.mark.parametrize("status", concepts.NEEDS_ACTION_STATUSES)
def test_live_connections_in_reauth_or_error_need_action(status: str) -> None:
    assert _needs_action("live", status) is True


@pytest.mark.parametrize("status", ["connected", "pending", "processing", None])
def test_healthy_or_unknown_live_connections_need_no_action(status: str | None) -> None:
    assert _needs_action("live", status) is False


@pytest.mark.parametrize("state", ["staged", "disconnected", None])
@pytest.mark.parametrize("status", ["reauth", "error_permissions", "disconnected"])
def test_only_live_connections_need_action(state: str | None, status: str) -> None:
    assert _needs_action(state, status) is False


def _needs_action(state: str | None, status: str | None) -> bool:
    frame = pl.DataFrame(
        {"state": [state], "status": [status]}, schema={"state": pl.String, "status": pl.String}
    )
    return frame.select(rules.needs_action(pl.col("state"), pl.col("status")))["state"].item()


def _overdue(
    state: str | None,
    last_synced_at: dt.datetime | None,
    connected_at: dt.datetime | None,
    hours: int | None,
) -> bool:
    frame = pl.DataFrame(
        {
            "state": [state],
            "last_synced_at": [last_synced_at],
            "connected_at": [connected_at],
            "hours": [hours],
        },
        schema={
            "state": pl.String,
            "last_synced_at": UTC_DATETIME,
            "connected_at": UTC_DATETIME,
            "hours": pl.Int32,
        },
    )
    expression = rules.sync_overdue(
        pl.col("state"),
        pl.col("last_synced_at"),
        pl.col("connected_at"),
        pl.col("hours"),
        pl.lit(AS_OF).cast(UTC_DATETIME),
    )
    return frame.select(expression.alias("overdue"))["overdue"].item()


@pytest.mark.parametrize("hours", [24, 168])
def test_sync_overdue_boundary_is_strictly_after_the_refresh_interval(hours: int) -> None:
    interval = dt.timedelta(hours=hours)
    tick = dt.timedelta(microseconds=1)
    assert _overdue("live", AS_OF - interval, None, hours) is False
    assert _overdue("live", AS_OF - interval + tick, None, hours) is False
    assert _overdue("live", AS_OF - interval - tick, None, hours) is True


def test_assisted_interval_is_seven_days_not_one() -> None:
    two_days_ago = AS_OF - dt.timedelta(days=2)
    assert _overdue("live", two_days_ago, None, rules.ASSISTED_REFRESH_HOURS) is False
    assert _overdue("live", two_days_ago, None, rules.AUTOMATED_REFRESH_HOURS) is True


def test_overdue_falls_back_to_connection_time_when_never_synced() -> None:
    old = AS_OF - dt.timedelta(hours=25)
    recent = AS_OF - dt.timedelta(hours=2)
    assert _overdue("live", None, old, 24) is True
    assert _overdue("live", None, recent, 24) is False
    # The last sync wins over the connection time when both are known.
    assert _overdue("live", recent, old, 24) is False


@pytest.mark.parametrize("state", ["staged", "disconnected"])
def test_only_live_connections_are_overdue(state: str) -> None:
    long_ago = AS_OF - dt.timedelta(days=30)
    assert _overdue(state, long_ago, long_ago, 24) is False


def test_overdue_is_false_not_null_when_nothing_is_known() -> None:
    assert _overdue("live", None, None, 24) is False
    assert _overdue("live", AS_OF - dt.timedelta(days=30), None, None) is False


@pytest.mark.parametrize(
    ("entity_count", "legal_name", "expected"),
    [
        (1, "Acme LLC", "Acme LLC"),
        (2, "Acme LLC", "Multi-entity connection"),
        (7, None, "Multi-entity connection"),
        (1, None, None),
        (None, "Acme LLC", "Acme LLC"),
    ],
)
def test_company_name(
    entity_count: int | None, legal_name: str | None, expected: str | None
) -> None:
    frame = pl.DataFrame(
        {"entity_count": [entity_count], "legal_name": [legal_name]},
        schema={"entity_count": pl.Int32, "legal_name": pl.String},
    )
    result = frame.select(rules.company_name(pl.col("entity_count"), pl.col("legal_name")))
    assert result.to_series().to_list() == [expected]
