"""parse.py over raw rows carrying Finch-shaped bodies (checked against the official SDK)."""

import datetime as dt

import polars as pl
import pytest
from transform_helpers import (
    T0,
    at,
    company,
    failed,
    introspection,
    jobs,
    ok,
    providers,
    raw_frame,
    raw_row,
    revoked,
    sdk_checked,
)

from connections_pipeline.transform.parse import (
    UTC_DATETIME,
    parse_companies,
    parse_connected_at,
    parse_introspections,
    parse_providers,
    parse_timestamp,
)


def _introspect(fingerprint: str, body: dict) -> dict:
    return ok(fingerprint, sdk_checked("introspect", body))


def test_introspection_becomes_one_typed_row() -> None:
    body = introspection(
        "conn-1",
        status="reauth",
        auth_types=("assisted", "credential"),
        products=("directory", "company", "payment", "company"),
        entities=1,
        last_sync=at(-5),
        customer_id="cust-9",
        provider_id="adp_run",
    )
    parsed, rejected = parse_introspections(raw_frame(_introspect("fp-1", body)))

    assert rejected.is_empty()
    row = parsed.row(0, named=True)
    assert row["token_fingerprint"] == "fp-1"
    assert row["connection_id"] == "conn-1"
    assert row["connection_status"] == "reauth"
    assert row["last_synced_at"] == at(-5)
    assert row["provider_id"] == "adp_run"
    assert row["company_id"] == "company-conn-1"
    assert row["customer_id"] == "cust-9"
    assert row["customer_name"] == "Customer cust-9"
    assert row["customer_email"] == "cust-9@example.com"
    assert row["products"] == "company,directory,payment"
    assert row["connection_type"] == "Automated, Assisted"
    assert [entity["id"] for entity in row["entities"]] == ["conn-1-ent-0"]
    assert parsed.schema["last_synced_at"] == UTC_DATETIME


def test_optional_introspection_fields_may_be_absent() -> None:
    # The SDK marks authentication_methods, entities, customer_* and company_id optional.
    body = introspection("conn-legacy", customer_id=None, last_sync=None)
    for optional in ("authentication_methods", "entities", "company_id", "customer_id"):
        del body[optional]
    parsed, rejected = parse_introspections(raw_frame(_introspect("fp-l", body)))
    assert rejected.is_empty()
    row = parsed.row(0, named=True)
    assert row["connection_id"] == "conn-legacy"
    assert row["connection_type"] is None
    assert row["entities"] is None
    assert row["last_synced_at"] is None
    assert row["customer_id"] is None


def test_last_successful_sync_offsets_are_converted_to_utc() -> None:
    body = introspection("conn-1")
    body["connection_status"]["last_successful_sync"] = "2026-03-01T09:30:00.250+02:00"
    parsed, _ = parse_introspections(raw_frame(_introspect("fp-1", body)))
    assert parsed["last_synced_at"].item() == dt.datetime(
        2026, 3, 1, 7, 30, 0, 250_000, tzinfo=dt.UTC
    )


def test_only_successful_introspections_are_parsed() -> None:
    raw = raw_frame(
        _introspect("fp-ok", introspection("conn-1")),
        revoked("fp-revoked"),
        failed("fp-failed"),
        raw_row("company", "fp-ok", company("Acme"), connection_id="conn-1"),
    )
    parsed, rejected = parse_introspections(raw)
    assert parsed["token_fingerprint"].to_list() == ["fp-ok"]
    assert rejected.is_empty()


def test_undecodable_and_id_less_introspections_are_rejected_with_reasons() -> None:
    no_id = introspection("conn-x")
    del no_id["connection_id"]
    raw = raw_frame(
        _introspect("fp-good", introspection("conn-1")),
        raw_row("introspect", "fp-garbage", encoded="<html>502 Bad Gateway</html>"),
        ok("fp-noid", no_id),
        raw_row("introspect", "fp-null", encoded="null"),
        ok("fp-wrong-shape", introspection("conn-2", connection_status="connected")),
    )
    parsed, rejected = parse_introspections(raw)

    assert parsed["token_fingerprint"].to_list() == ["fp-good"]
    reasons = dict(rejected.select("token_fingerprint", "reason").iter_rows())
    assert set(reasons) == {"fp-garbage", "fp-noid", "fp-null", "fp-wrong-shape"}
    assert reasons["fp-garbage"].startswith("malformed body")
    assert reasons["fp-wrong-shape"].startswith("malformed body")
    assert reasons["fp-noid"] == "introspection has no connection_id"
    assert reasons["fp-null"] == "introspection has no connection_id"
    assert rejected.columns == ["token_fingerprint", "reason"]


def test_companies_keep_the_last_named_answer_per_connection() -> None:
    raw = raw_frame(
        raw_row("company", "fp-1", sdk_checked("company", company("Old Name")), connection_id="c1"),
        raw_row("company", "fp-2", company("New Name"), connection_id="c1", fetched_at=at(1)),
        raw_row("company", "fp-3", company(None), connection_id="c2"),
        raw_row("company", "fp-4", outcome="failed", connection_id="c3"),
        raw_row("company", "fp-5", encoded="{", connection_id="c4"),
    )
    companies = parse_companies(raw)
    assert companies.rows() == [("c1", "New Name", at(1))]
    assert companies.columns == ["connection_id", "legal_name", "company_fetched_at"]


def test_connected_at_is_the_earliest_scheduled_sync_creation() -> None:
    body = sdk_checked("jobs", jobs(at(-1), at(-200), at(-50)))
    raw = raw_frame(
        raw_row("jobs", "fp-1", body, connection_id="c1"),
        raw_row("jobs", "fp-2", jobs(at(-999), kind="w4_form_employee_sync"), connection_id="c2"),
        raw_row("jobs", "fp-3", jobs(), connection_id="c3"),
        raw_row("jobs", "fp-4", outcome="failed", connection_id="c4"),
    )
    connected = parse_connected_at(raw)
    assert connected.rows() == [("c1", at(-200))]
    assert connected.schema["connected_at"] == UTC_DATETIME


def test_connected_at_ignores_ad_hoc_jobs_of_another_type() -> None:
    scheduled = jobs(at(-100))
    ad_hoc = jobs(at(-300), kind="w4_form_employee_sync")
    scheduled["data"] = ad_hoc["data"] + scheduled["data"]
    connected = parse_connected_at(raw_frame(raw_row("jobs", "fp", scheduled, connection_id="c")))
    assert connected["connected_at"].to_list() == [at(-100)]


def test_providers_map_ids_to_display_names() -> None:
    body = sdk_checked("providers", providers(("gusto", "Gusto"), ("adp_run", "ADP Running")))
    body.append({"id": None, "display_name": "No id"})
    result = parse_providers(raw_frame(raw_row("providers", None, body)))
    assert dict(result.iter_rows()) == {"gusto": "Gusto", "adp_run": "ADP Running"}


def test_providers_without_an_answer_give_a_typed_empty_frame() -> None:
    result = parse_providers(raw_frame(raw_row("providers", None, outcome="failed")))
    assert result.is_empty()
    assert result.schema == pl.Schema({"provider_id": pl.String, "provider_name": pl.String})


def _parse(values: list[str | None]) -> list[dt.datetime | None]:
    frame = pl.DataFrame({"text": values}, schema={"text": pl.String})
    return frame.select(parse_timestamp(pl.col("text")))["text"].to_list()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T10:00:00Z", dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)),
        ("2026-03-01T10:00:00.123Z", dt.datetime(2026, 3, 1, 10, 0, 0, 123_000, tzinfo=dt.UTC)),
        ("2026-03-01T10:00:00+00:00", dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)),
        ("2026-03-01T12:00:00+02:00", dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)),
        ("2026-03-01T10:00:00", dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)),
        ("2026-03-01", dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
    ],
)
def test_parse_timestamp_reads_iso_8601_variants(text: str, expected: dt.datetime) -> None:
    assert _parse([text]) == [expected]


@pytest.mark.parametrize("text", ["", "not a date", "2026-13-45T99:00:00Z", "\u00e9t\u00e9"])
def test_parse_timestamp_turns_garbage_into_null(text: str) -> None:
    assert _parse([text, None]) == [None, None]


def test_parse_timestamp_does_not_depend_on_the_other_rows() -> None:
    """Each value parses as it would alone: one row's format must not null out another's.

    Finch's SDK types `last_successful_sync` as `datetime | str`, and providers differ, so a
    batch can mix `...Z`, offset, naive and date-only texts.
    """
    texts = [
        "2026-03-01T10:00:00",
        "2026-03-01T10:00:00Z",
        "2026-03-01",
        "2026-03-01T12:00:00.5+02:00",
    ]
    alone = [_parse([text])[0] for text in texts]
    assert None not in alone
    assert _parse(texts) == alone
    assert _parse(list(reversed(texts))) == list(reversed(alone))


def test_introspections_in_one_batch_do_not_null_each_others_sync_times() -> None:
    naive = introspection("conn-1")
    naive["connection_status"]["last_successful_sync"] = "2026-03-01T08:00:00"
    zulu = introspection("conn-2", last_sync=T0 - dt.timedelta(hours=1))
    parsed, _ = parse_introspections(raw_frame(ok("fp-1", naive), ok("fp-2", zulu)))
    synced = dict(parsed.select("connection_id", "last_synced_at").iter_rows())
    assert synced == {
        "conn-1": dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC),
        "conn-2": T0 - dt.timedelta(hours=1),
    }
