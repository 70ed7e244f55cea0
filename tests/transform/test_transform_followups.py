"""plan_followups: which connections need `/jobs/automated` and `/employer/company`."""

import datetime as dt

import polars as pl
import pytest
from transform_helpers import (
    T0,
    at,
    introspection,
    ok,
    previous,
    previous_row,
    raw_frame,
    token_source,
)

from connections_pipeline.transform.followups import plan_followups
from connections_pipeline.transform.parse import parse_introspections

TTL = dt.timedelta(days=7)


def _plan(
    *introspected: tuple[str, dict],
    prior: pl.DataFrame | None = None,
    source: pl.DataFrame | None = None,
    as_of: dt.datetime = T0,
) -> dict[str, dict]:
    parsed, _ = parse_introspections(raw_frame(*(ok(fp, body) for fp, body in introspected)))
    if source is None:
        source = token_source(*({"token_fingerprint": fp} for fp, _ in introspected))
    plan = plan_followups(parsed, source, prior if prior is not None else previous(), as_of, TTL)
    assert plan.columns == [
        "connection_id",
        "token_fingerprint",
        "need_jobs",
        "need_company",
        "company_fetched_at",
    ]
    return {row["connection_id"]: row for row in plan.iter_rows(named=True)}


def test_steady_state_known_connection_with_fresh_cache_needs_nothing() -> None:
    prior = previous(previous_row("conn-a", company_fetched_at=at(-24)))
    plan = _plan(("fp-a", introspection("conn-a")), prior=prior)
    assert plan["conn-a"]["need_jobs"] is False
    assert plan["conn-a"]["need_company"] is False


def test_new_automated_connection_needs_jobs_and_company() -> None:
    plan = _plan(("fp-a", introspection("conn-a", auth_types=("oauth",))))
    assert plan["conn-a"]["need_jobs"] is True
    assert plan["conn-a"]["need_company"] is True


def test_company_cache_expires_after_the_ttl() -> None:
    tick = dt.timedelta(seconds=1)
    cases = {
        "conn-expired": T0 - TTL - tick,
        "conn-at-ttl": T0 - TTL,
        "conn-fresh": T0 - TTL + tick,
    }
    prior = previous(
        *(previous_row(cid, company_fetched_at=fetched) for cid, fetched in cases.items())
    )
    plan = _plan(*((f"fp-{cid}", introspection(cid)) for cid in cases), prior=prior)
    assert plan["conn-expired"]["need_company"] is True
    assert plan["conn-at-ttl"]["need_company"] is False
    assert plan["conn-fresh"]["need_company"] is False
    assert not any(row["need_jobs"] for row in plan.values())


@pytest.mark.parametrize(
    "overrides",
    [{"company_name": None}, {"company_fetched_at": None}],
    ids=["no cached name", "no fetch time"],
)
def test_missing_cache_triggers_company(overrides: dict) -> None:
    prior = previous(previous_row("conn-a", **overrides))
    assert _plan(("fp-a", introspection("conn-a")), prior=prior)["conn-a"]["need_company"]


def test_connected_at_unknown_triggers_jobs_even_for_a_known_connection() -> None:
    prior = previous(previous_row("conn-a", connected_at=None))
    assert _plan(("fp-a", introspection("conn-a")), prior=prior)["conn-a"]["need_jobs"] is True


@pytest.mark.parametrize(
    ("auth_types", "need_jobs"),
    [
        (("assisted",), False),
        (("assisted", "credential"), True),
        (("api_token",), True),
        ((), True),
    ],
)
def test_assisted_only_never_needs_jobs(auth_types: tuple[str, ...], need_jobs: bool) -> None:
    plan = _plan(("fp-a", introspection("conn-a", auth_types=auth_types)))
    assert plan["conn-a"]["need_jobs"] is need_jobs


def test_assisted_needs_no_jobs_even_when_connected_at_is_unknown() -> None:
    prior = previous(previous_row("conn-a", connected_at=None, connection_type="Assisted"))
    plan = _plan(("fp-a", introspection("conn-a", auth_types=("assisted",))), prior=prior)
    assert plan["conn-a"]["need_jobs"] is False


@pytest.mark.parametrize("entities", [2, 5])
def test_multi_entity_never_needs_company(entities: int) -> None:
    prior = previous(previous_row("conn-a", company_fetched_at=at(-24 * 365)))
    plan = _plan(("fp-a", introspection("conn-a", entities=entities)), prior=prior)
    assert plan["conn-a"]["need_company"] is False


@pytest.mark.parametrize("entities", [0, 1])
def test_zero_or_one_entity_counts_as_single(entities: int) -> None:
    assert _plan(("fp-a", introspection("conn-a", entities=entities)))["conn-a"]["need_company"]


def test_no_company_product_means_no_company_call() -> None:
    plan = _plan(("fp-a", introspection("conn-a", products=("directory", "payment"))))
    assert plan["conn-a"]["need_company"] is False


@pytest.mark.parametrize(
    ("status", "need_company"),
    [
        ("connected", True),
        ("processing", True),
        ("pending", False),
        ("reauth", False),
        ("error_no_account_setup", False),
        ("error_permissions", False),
    ],
)
def test_company_only_when_the_connection_can_answer(status: str, need_company: bool) -> None:
    plan = _plan(("fp-a", introspection("conn-a", status=status)))
    assert plan["conn-a"]["need_company"] is need_company


def test_one_plan_row_per_connection_using_the_freshest_token() -> None:
    source = token_source(
        {"token_fingerprint": "fp-old", "issued_at": at(-500)},
        {"token_fingerprint": "fp-new", "issued_at": at(-5)},
        {"token_fingerprint": "fp-unknown-age"},
        {"token_fingerprint": "fp-other", "issued_at": at(-1)},
    )
    plan = _plan(
        ("fp-old", introspection("conn-a")),
        ("fp-unknown-age", introspection("conn-a")),
        ("fp-new", introspection("conn-a")),
        ("fp-other", introspection("conn-b")),
        source=source,
    )
    assert set(plan) == {"conn-a", "conn-b"}
    assert plan["conn-a"]["token_fingerprint"] == "fp-new"
    assert plan["conn-b"]["token_fingerprint"] == "fp-other"


def test_staged_rows_of_the_previous_snapshot_do_not_count_as_known() -> None:
    staged = previous_row(
        "sess-1", state="staged", connection_id=None, session_id="sess-1", connected_at=None
    )
    prior = previous(staged, previous_row("conn-a"))
    plan = _plan(("fp-a", introspection("conn-a")), ("fp-b", introspection("conn-b")), prior=prior)
    assert plan["conn-a"]["need_jobs"] is False
    assert plan["conn-b"]["need_jobs"] is True


def test_a_reported_job_completion_asks_for_jobs_again_but_never_for_assisted() -> None:
    prior = previous(
        previous_row("conn-a", company_fetched_at=at(-24)),
        previous_row("conn-b", company_fetched_at=at(-24)),
        previous_row("conn-c", company_fetched_at=at(-24)),
    )
    parsed, _ = parse_introspections(
        raw_frame(
            ok("fp-a", introspection("conn-a", auth_types=("oauth",))),
            ok("fp-b", introspection("conn-b", auth_types=("oauth",))),
            ok("fp-c", introspection("conn-c", auth_types=("assisted",))),
        )
    )
    source = token_source(*({"token_fingerprint": fp} for fp in ("fp-a", "fp-b", "fp-c")))
    plan = plan_followups(parsed, source, prior, T0, TTL, frozenset({"conn-a", "conn-c"}))
    need_jobs = dict(zip(plan["connection_id"], plan["need_jobs"], strict=True))
    assert need_jobs == {"conn-a": True, "conn-b": False, "conn-c": False}
