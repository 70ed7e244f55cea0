"""The receiver's signature check and the official SDK's agree, on generated deliveries."""

import base64
import time

import pytest
from finch import Finch
from hypothesis import given, settings
from hypothesis import strategies as st
from webhook_helpers import signature

from connections_pipeline.webhooks import DeliveryRejected, decode_secret, verify_delivery

secrets_ = st.binary(min_size=1, max_size=64).map(lambda key: base64.b64encode(key).decode())
event_ids = st.text(
    st.characters(codec="ascii", exclude_categories=("Cc",)), min_size=1, max_size=60
).filter(lambda text: text.strip() == text and text.strip())
bodies = st.binary(max_size=400).map(lambda raw: base64.b64encode(raw))


def sdk_accepts(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Finch(access_token="unused", webhook_secret=secret).webhooks.verify_signature(body, headers)
    except ValueError:
        return False
    return True


def ours_accepts(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        verify_delivery(decode_secret(secret), headers, body)
    except DeliveryRejected:
        return False
    return True


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    secret=secrets_,
    other=secrets_,
    event_id=event_ids,
    body=bodies,
    age=st.integers(-400, 400),
    tamper=st.sampled_from(["none", "body", "secret", "event id", "timestamp"]),
)
def test_the_sdk_and_the_receiver_agree(
    secret: str, other: str, event_id: str, body: bytes, age: int, tamper: str
) -> None:
    timestamp = int(time.time()) - age
    signed = signature(other if tamper == "secret" else secret, event_id, timestamp, body)
    headers = {
        "finch-event-id": event_id + ("x" if tamper == "event id" else ""),
        "finch-timestamp": str(timestamp + (1 if tamper == "timestamp" else 0)),
        "finch-signature": signed,
    }
    if tamper == "body":
        body = body + b"."
    # Ages within a second of the 5-minute edge could fall either side between the two calls.
    if abs(abs(age) - 300) <= 1:
        return
    assert ours_accepts(secret, body, headers) == sdk_accepts(secret, body, headers)
    if tamper == "none" and abs(age) < 300:
        assert ours_accepts(secret, body, headers)
    if tamper == "secret" and other != secret:
        assert not ours_accepts(secret, body, headers)


@pytest.mark.parametrize("value", ["v1", "v1,a,b", "v2,AAAA", ""])
def test_malformed_signatures_match_nothing(value: str) -> None:
    body, now = b"{}", int(time.time())
    secret = base64.b64encode(b"k").decode()
    headers = {"finch-event-id": "e", "finch-timestamp": str(now), "finch-signature": value}
    assert not ours_accepts(secret, body, headers)
