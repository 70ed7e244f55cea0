"""Every field of a Connect-link request is checked with Finch's limits before any request."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from link_helpers import link_request

from connections_pipeline.connect_links import (
    ConnectLinkError,
    check_request,
    parse_products,
    request_body,
    validation_problems,
)
from connections_pipeline.connect_links.request import (
    UNKNOWN_KEY_PREFIX,
    check_no_active_session,
    check_provider,
    customer_key,
    ledger_row,
    normalized,
    server_time,
    unknown_attempt_key,
    unknown_ledger_row,
)

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def test_a_complete_request_is_accepted_and_becomes_finchs_body() -> None:
    request = link_request(
        minutes_to_expire=60, provider="gusto", auth_method="oauth", manual=False, sandbox="finch"
    )
    assert validation_problems(request) == []
    assert request_body(request) == {
        "customer_id": "cust-acme-1",
        "customer_name": "Acme Widgets",
        "products": ["company", "directory"],
        "redirect_uri": "https://app.example.com/finch/callback",
        "customer_email": "payroll@acme.example",
        "minutes_to_expire": 60,
        "integration": {"provider": "gusto", "auth_method": "oauth"},
        "manual": False,
        "sandbox": "finch",
    }


@pytest.mark.parametrize("field", ["customer_id", "customer_name"])
@pytest.mark.parametrize("value", ["", "   ", "x" * 256])
def test_customer_id_and_name_are_1_to_255_characters(field: str, value: str) -> None:
    with pytest.raises(ConnectLinkError, match=field):
        check_request(link_request(**{field: value}))


@pytest.mark.parametrize("field", ["customer_id", "customer_name"])
def test_255_characters_is_the_limit_not_over_it(field: str) -> None:
    assert validation_problems(link_request(**{field: "x" * 255})) == []


@pytest.mark.parametrize("products", [(), ("company", "payroll"), ("Company",)])
def test_products_must_be_from_finchs_set(products: tuple[str, ...]) -> None:
    with pytest.raises(ConnectLinkError, match="product"):
        check_request(link_request(products=products))


def test_every_finch_product_is_accepted_and_parsed_from_commas() -> None:
    text = "company, directory,individual,employment,payment,pay_statement,benefits,ssn,"
    products = parse_products(text + "deduction,documents")
    assert len(products) == 10
    assert validation_problems(link_request(products=products)) == []


@pytest.mark.parametrize("minutes", [0, -5, 129_601, 1.5, True])
def test_minutes_to_expire_is_a_whole_number_up_to_90_days(minutes: object) -> None:
    with pytest.raises(ConnectLinkError, match="minutes_to_expire"):
        check_request(link_request(minutes_to_expire=minutes))


@pytest.mark.parametrize("minutes", [1, 129_600])
def test_minutes_to_expire_bounds_are_accepted(minutes: int) -> None:
    assert validation_problems(link_request(minutes_to_expire=minutes)) == []


@pytest.mark.parametrize(
    "uri",
    ["http://app.example.com/cb", "", "ftp://app.example.com/cb", "https://", "not a url"],
)
def test_redirect_uri_must_be_https(uri: str) -> None:
    with pytest.raises(ConnectLinkError, match="redirect_uri"):
        check_request(link_request(redirect_uri=uri))


@pytest.mark.parametrize("uri", ["http://localhost:8000/cb", "http://127.0.0.1/cb"])
def test_http_redirect_is_allowed_for_localhost(uri: str) -> None:
    assert validation_problems(link_request(redirect_uri=uri)) == []


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "x" * 250 + "@a.com"])
def test_customer_email_must_be_an_address(email: str) -> None:
    with pytest.raises(ConnectLinkError, match="customer_email"):
        check_request(link_request(customer_email=email))


def test_auth_method_must_be_finchs_and_needs_a_provider() -> None:
    with pytest.raises(ConnectLinkError, match="auth_method must be one of"):
        check_request(link_request(provider="gusto", auth_method="password"))
    with pytest.raises(ConnectLinkError, match="auth_method needs a provider"):
        check_request(link_request(auth_method="oauth"))
    for method in ("assisted", "credential", "api_token", "api_credential", "oauth"):
        assert validation_problems(link_request(provider="gusto", auth_method=method)) == []


def test_sandbox_is_finch_or_provider() -> None:
    with pytest.raises(ConnectLinkError, match="sandbox"):
        check_request(link_request(sandbox="yes"))
    assert validation_problems(link_request(sandbox="provider")) == []


def test_all_problems_are_reported_at_once() -> None:
    problems = validation_problems(
        link_request(customer_id="", products=("nope",), redirect_uri="http://x.com")
    )
    assert len(problems) == 3


def test_unknown_provider_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(ConnectLinkError, match="known providers: adp_run, gusto"):
        check_provider("gusto_typo", ["gusto", "adp_run"])
    check_provider("gusto", ["gusto", "adp_run"])
    check_provider(None, [])


def _ledger(**values: object) -> pl.DataFrame:
    row = ledger_row(link_request(), {"session_id": "s-1", "connect_url": "https://c/1"}, NOW)
    return row.with_columns(**{name: pl.lit(value) for name, value in values.items()})


def test_a_second_active_session_for_the_customer_is_refused_unless_forced() -> None:
    ledger = _ledger()
    with pytest.raises(ConnectLinkError, match="already has an active Connect session s-1"):
        check_no_active_session(ledger, link_request(), NOW + timedelta(days=1))
    check_no_active_session(ledger, link_request(force=True), NOW + timedelta(days=1))
    check_no_active_session(ledger, link_request(customer_id="other"), NOW)


def test_expired_or_completed_sessions_do_not_block_a_new_link() -> None:
    check_no_active_session(_ledger(), link_request(), NOW + timedelta(days=91))
    check_no_active_session(_ledger(status="completed"), link_request(), NOW)


def test_ledger_row_holds_every_input_and_finchs_times() -> None:
    request = link_request(minutes_to_expire=90, provider="gusto", auth_method="oauth")
    created = server_time("Sun, 29 Nov 2026 10:00:00 GMT", NOW)
    row = ledger_row(request, {"session_id": "s", "connect_url": "u"}, created).row(0, named=True)
    assert row["created_at"] == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert row["expires_at"] == datetime(2026, 11, 29, 11, 30, tzinfo=UTC)
    assert (row["status"], row["kind"], row["created_by"]) == ("pending", "connect", "test")
    assert (row["provider_id"], row["auth_method"], row["minutes_to_expire"]) == (
        "gusto",
        "oauth",
        90,
    )
    assert row["customer_email"] == "payroll@acme.example"
    assert server_time(None, NOW) == NOW
    assert server_time("garbage", NOW) == NOW


@pytest.mark.parametrize(
    "uri",
    [
        "https://user:pw@app.example.com/cb",
        "https://user@app.example.com/cb",
        "https://:pw@app.example.com/cb",
        "https://app.example.com@evil.example/cb",
        "http://user:pw@localhost:8000/cb",
    ],
)
def test_redirect_uri_with_user_info_is_refused_without_echoing_it(uri: str) -> None:
    with pytest.raises(ConnectLinkError, match="must not carry user info") as refused:
        check_request(link_request(redirect_uri=uri))
    assert "pw" not in str(refused.value) and "user@" not in str(refused.value)


CONTROL_CHARACTERS = ["\r", "\n", "\r\n", "\t", "\x00", "\x01", "\x1b", "\x1f", "\x7f"]
C1_CHARACTERS = ["\x80", "\x85", "\x9b", "\x9f"]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS + C1_CHARACTERS)
@pytest.mark.parametrize("where", ["start", "host", "path", "end"])
def test_redirect_uri_with_a_control_character_is_refused(char: str, where: str) -> None:
    uri = {
        "start": f"{char}https://app.example.com/cb",
        "host": f"https://app.exa{char}mple.com/cb",
        "path": f"https://app.example.com/c{char}b",
        "end": f"https://app.example.com/cb{char}",
    }[where]
    with pytest.raises(ConnectLinkError, match="must not contain control characters") as refused:
        check_request(link_request(redirect_uri=uri))
    message = str(refused.value)
    assert message.isprintable(), "the message shows the character escaped, on one line"


@pytest.mark.parametrize(
    "uri",
    [
        " https://app.example.com/cb",
        "https://app.example.com/cb ",
        "https://app.example.com/c b",
        "https://app.example.com/cb\u00a0",
        "https://app.example.com/\u2028cb",
        "https://app.example.com/cb\u3000",
    ],
)
def test_redirect_uri_with_whitespace_is_refused(uri: str) -> None:
    with pytest.raises(ConnectLinkError, match="must not contain whitespace") as refused:
        check_request(link_request(redirect_uri=uri))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/finch/callback?state=a%20b&x=%0D%0A",
        "https://app.example.com:8443/cb#done",
        "http://localhost:8000/cb",
    ],
)
def test_redirect_uri_rules_leave_ordinary_uris_alone(uri: str) -> None:
    assert validation_problems(link_request(redirect_uri=uri)) == []


@pytest.mark.parametrize("field", ["customer_id", "customer_name"])
@pytest.mark.parametrize("char", ["\x00", "\n", "\t", "\x85"])
def test_customer_id_and_name_refuse_control_characters(field: str, char: str) -> None:
    with pytest.raises(ConnectLinkError, match=f"{field} must not contain control characters"):
        check_request(link_request(**{field: f"acme{char}1"}))


def test_customer_ids_are_stored_trimmed_and_compared_case_folded() -> None:
    assert customer_key("REDTEAM-1") == customer_key(" redteam-1") == customer_key("Redteam-1\t")
    assert customer_key("STRASSE-1") == customer_key("straße-1")
    assert customer_key("redteam-1") != customer_key("redteam-2")
    request = normalized(link_request(customer_id="  REDTEAM-1 "))
    row = ledger_row(request, {"session_id": "s", "connect_url": "u"}, NOW).row(0, named=True)
    assert row["customer_id"] == "REDTEAM-1"
    assert request_body(request)["customer_id"] == "REDTEAM-1"


def test_255_characters_count_after_trimming() -> None:
    assert validation_problems(link_request(customer_id=" " + "x" * 255 + " ")) == []


@pytest.mark.parametrize("other", ["redteam-1", " REDTEAM-1", "Redteam-1  ", "\tredteam-1"])
def test_the_duplicate_guard_matches_trimmed_and_case_folded_ids(other: str) -> None:
    ledger = _ledger(customer_id="REDTEAM-1")
    with pytest.raises(ConnectLinkError, match="already has an active Connect session s-1"):
        check_no_active_session(ledger, link_request(customer_id=other), NOW)


def _unknown_ledger(minutes: int = 60) -> tuple[pl.DataFrame, str]:
    request = normalized(link_request(customer_id=" REDTEAM-1", minutes_to_expire=minutes))
    key = unknown_attempt_key("connect", request_body(request), NOW)
    return unknown_ledger_row(request, key, NOW), key


def test_an_unknown_attempt_is_recorded_with_every_input_and_no_link() -> None:
    ledger, key = _unknown_ledger(minutes=90)
    row = ledger.row(0, named=True)
    assert row["session_id"] == key and key.startswith(UNKNOWN_KEY_PREFIX)
    assert len(key) == len(UNKNOWN_KEY_PREFIX) + 32
    assert (row["status"], row["connect_url"], row["kind"]) == ("unknown", None, "connect")
    assert row["customer_id"] == "REDTEAM-1"
    assert (row["customer_name"], row["customer_email"]) == ("Acme Widgets", "payroll@acme.example")
    assert (row["products"], row["redirect_uri"]) == (
        "company,directory",
        "https://app.example.com/finch/callback",
    )
    assert row["created_at"] == row["status_updated_at"] == NOW
    assert row["expires_at"] == NOW + timedelta(minutes=90)


def test_the_unknown_key_is_fixed_for_one_attempt_and_differs_between_attempts() -> None:
    body = request_body(link_request())
    assert unknown_attempt_key("connect", body, NOW) == unknown_attempt_key("connect", body, NOW)
    later = NOW + timedelta(microseconds=1)
    assert unknown_attempt_key("connect", body, NOW) != unknown_attempt_key("connect", body, later)
    other = request_body(link_request(customer_id="cust-2"))
    assert unknown_attempt_key("connect", body, NOW) != unknown_attempt_key("connect", other, NOW)


def test_an_unknown_attempt_blocks_the_customer_until_its_would_be_expiry() -> None:
    ledger, key = _unknown_ledger(minutes=60)
    for customer_id in ("REDTEAM-1", " redteam-1"):
        with pytest.raises(ConnectLinkError, match=f"unknown outcome, {key}") as refused:
            check_no_active_session(ledger, link_request(customer_id=customer_id), NOW)
        assert "Finch may have created that link" in str(refused.value)
        assert "2026-11-29T01:00:00Z" in str(refused.value)
    check_no_active_session(ledger, link_request(customer_id="redteam-1", force=True), NOW)
    after_expiry = NOW + timedelta(minutes=60)
    check_no_active_session(ledger, link_request(customer_id="redteam-1"), after_expiry)
    check_no_active_session(ledger, link_request(customer_id="redteam-2"), NOW)


def test_an_unknown_attempt_is_named_before_a_pending_session() -> None:
    unknown, key = _unknown_ledger()
    pending = ledger_row(
        normalized(link_request(customer_id="redteam-1")),
        {"session_id": "s-1", "connect_url": "https://c/1"},
        NOW + timedelta(minutes=1),
    )
    ledger = pl.concat([pending, unknown])
    with pytest.raises(ConnectLinkError, match=key):
        check_no_active_session(ledger, link_request(customer_id="RedTeam-1"), NOW)
