"""Which tokens a run polls when it cannot poll them all: priorities, whole connections,
and the company-name allowance."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from connections_pipeline.transform.polling import (
    COMPANY_BURST,
    company_allowance,
    plan_polling,
    polling_order,
)
from connections_pipeline.transform.token_frame import TOKEN_FRAME_SCHEMA

NOW = datetime(2026, 11, 30, tzinfo=UTC)
TOKENS_SCHEMA = {
    "token_fingerprint": pl.String,
    "connection_id": pl.String,
    "last_seen_at": pl.Datetime("us", "UTC"),
}
PREVIOUS_SCHEMA = {"connection_id": pl.String, "connection_status": pl.String}


def _source(*rows: tuple[str, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"token_fingerprint": fp, "source_connection_id": cid} for fp, cid in rows],
        schema=TOKEN_FRAME_SCHEMA,
    )


def _seen(*rows: tuple[str, str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "token_fingerprint": fp,
                "connection_id": cid,
                "last_seen_at": NOW - timedelta(hours=h),
            }
            for fp, cid, h in rows
        ],
        schema=TOKENS_SCHEMA,
    )


def _statuses(**statuses: str) -> pl.DataFrame:
    return pl.DataFrame(
        [{"connection_id": cid, "connection_status": s} for cid, s in statuses.items()],
        schema=PREVIOUS_SCHEMA,
    )


@pytest.fixture
def fleet() -> pl.DataFrame:
    source = _source(
        ("t-fresh", "c-fresh"),
        ("t-old-1", "c-old"),
        ("t-new", None),
        ("t-reauth", "c-reauth"),
        ("t-old-2", "c-old"),
        ("t-mid", "c-mid"),
    )
    seen = _seen(
        ("t-fresh", "c-fresh", 1),
        ("t-old-1", "c-old", 30),
        ("t-old-2", "c-old", 20),
        ("t-reauth", "c-reauth", 2),
        ("t-mid", "c-mid", 10),
    )
    previous = _statuses(**{"c-fresh": "connected", "c-old": "connected", "c-reauth": "reauth"})
    return polling_order(source, previous, seen)


def test_never_seen_then_needing_attention_then_oldest_observation_first(
    fleet: pl.DataFrame,
) -> None:
    groups = fleet.unique("group", keep="first", maintain_order=True)["group"].to_list()
    assert groups == ["t-new", "c-reauth", "c-old", "c-mid", "c-fresh"]
    # A connection's tokens stay together, so a connection is polled whole or not at all.
    assert fleet["token_fingerprint"].to_list()[2:4] == ["t-old-1", "t-old-2"]


def test_a_new_token_costs_its_job_listing_too(fleet: pl.DataFrame) -> None:
    costs = dict(fleet.unique("group").select("group", "cost").iter_rows())
    assert costs == {"t-new": 2, "c-reauth": 1, "c-old": 2, "c-mid": 1, "c-fresh": 1}


def test_the_allowance_buys_whole_connections_in_order_and_the_rest_waits(
    fleet: pl.DataFrame,
) -> None:
    plan = plan_polling(fleet, request_allowance=5)
    assert plan.polled == ["t-new", "t-reauth", "t-old-1", "t-old-2"]
    assert plan.deferred == ["t-mid", "t-fresh"]


def test_a_connection_too_big_for_what_is_left_does_not_stop_smaller_ones(
    fleet: pl.DataFrame,
) -> None:
    plan = plan_polling(fleet, request_allowance=4)
    assert plan.polled == ["t-new", "t-reauth", "t-mid"]
    assert plan.deferred == ["t-old-1", "t-old-2", "t-fresh"]


def test_no_allowance_polls_everything(fleet: pl.DataFrame) -> None:
    plan = plan_polling(fleet, request_allowance=None)
    assert sorted(plan.polled) == sorted(fleet["token_fingerprint"].to_list())
    assert plan.deferred == []


def test_a_targeted_run_polls_only_its_connections(fleet: pl.DataFrame) -> None:
    plan = plan_polling(fleet, None, only_connection_ids=frozenset({"c-old", "c-unknown"}))
    assert plan.polled == ["t-old-1", "t-old-2"]
    assert set(plan.deferred) == {"t-new", "t-reauth", "t-mid", "t-fresh"}


def test_company_allowance_keeps_the_company_time_within_the_share() -> None:
    assert company_allowance(1000, 0.0) == COMPANY_BURST
    # 1,000 other requests take at least 300 s at the IP limit; at share 0.5 the company
    # calls may take as long: 95 calls paced at 19 a minute.
    assert company_allowance(1000, 0.5) == 95
    for requests in (10, 1000, 30_000):
        for share in (0.2, 0.5, 0.8):
            calls = company_allowance(requests, share)
            company_time = calls * 60 / 19
            ip_time = requests * 0.3
            assert calls == COMPANY_BURST or company_time <= share * (company_time + ip_time)
    assert company_allowance(1000, 0.8) > company_allowance(1000, 0.5)
    assert company_allowance(10, 0.5) == COMPANY_BURST  # small fleets fill names at once
    with pytest.raises(ValueError, match="share"):
        company_allowance(10, 1.0)


def test_deadline_slices_never_split_a_connection() -> None:
    from connections_pipeline.sources.records import SourceToken
    from connections_pipeline.sync.extract import SLICE_TOKENS, _slices

    tokens = [SourceToken(f"secret-{n}", f"fp-{n}") for n in range(SLICE_TOKENS + 3)]
    groups = {token.fingerprint: token.fingerprint for token in tokens}
    # The slice boundary falls between two tokens of one connection.
    groups["fp-499"] = groups["fp-500"] = "shared"
    slices = _slices(tokens, groups)
    assert [len(batch) for _, batch in slices] == [SLICE_TOKENS + 1, 2]
    assert [start for start, _ in slices] == [0, SLICE_TOKENS + 1]
