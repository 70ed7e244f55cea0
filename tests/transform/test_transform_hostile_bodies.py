"""Property: hostile `/introspect` bodies never crash the transform, and no token is lost.

Every token called this run ends up in exactly one place: a valid row, a quarantined row, or
the rejected list (with a reason).
"""

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transform_helpers import (
    at,
    introspection,
    previous,
    previous_row,
    raw_row,
    session,
    sessions,
    snapshot,
    token_source,
)

from connections_pipeline.transform.schemas import CONNECTIONS_SCHEMA, ENTITIES_SCHEMA
from connections_pipeline.transform.validate import split_valid

CONNECTION_IDS = ["conn-a", "conn-b", "conn-c", "", " ", "conn-\u00e9\U0001f680"]
FIELDS = [
    "connection_id",
    "connection_status",
    "connection_type",
    "products",
    "provider_id",
    "company_id",
    "customer_id",
    "customer_name",
    "customer_email",
    "manual",
    "authentication_methods",
    "entities",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.text(alphabet='\u00e9\u4e2d\U0001f680\u202e\u0000"\\', max_size=10),
    st.sampled_from(["connected", "reauth", "pending", "disconnected", "assisted", "oauth"]),
    st.integers(min_value=100_000, max_value=100_000).map(lambda n: "x" * n),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from([*FIELDS, "type", "status", "name", "id", "extra"]),
            children,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = introspection(
        draw(st.sampled_from(CONNECTION_IDS)),
        status=draw(st.sampled_from(["connected", "reauth", "bogus", "processing", ""])),
        auth_types=tuple(draw(st.lists(st.sampled_from(["assisted", "oauth", "x"]), max_size=3))),
        entities=draw(st.integers(min_value=0, max_value=3)),
        last_sync=draw(st.sampled_from([None, at(-1), at(-500)])),
        customer_id=draw(st.sampled_from([None, "cust-a", "cust-new"])),
    )
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            body.pop(field, None)
        else:
            body[field] = draw(json_values)
    if draw(st.booleans()):
        status = body.get("connection_status")
        if isinstance(status, dict):
            status["last_successful_sync"] = draw(
                st.one_of(
                    st.none(),
                    st.text(max_size=30),
                    st.sampled_from(
                        ["2026-03-01T10:00:00Z", "2026-03-01", "2026-03-01T10:00:00", "yesterday"]
                    ),
                )
            )
    body.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return body


encoded_bodies = st.one_of(
    mutated_bodies().map(lambda body: json.dumps(body, ensure_ascii=False)),
    mutated_bodies().map(json.dumps),
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False)),
    st.text(max_size=50),
    st.sampled_from(
        [
            "",
            "null",
            "NaN",
            "{",
            "[]",
            '{"connection_id": "a", "connection_id": "b"}',
            '{"connection_id": "conn-a"}  trailing',
            '{"connection_id": "conn-a", "entities": [null, {"id": null}]}',
            '{"connection_id": "conn-a", "products": [null, "company", "company"]}',
            '{"connection_id": "conn-a", "connection_status": {"status": null}}',
        ]
    ),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    bodies=st.lists(encoded_bodies, min_size=1, max_size=6),
    issued=st.lists(st.sampled_from([None, at(-1), at(-100)]), min_size=6, max_size=6),
    with_history=st.booleans(),
)
def test_hostile_introspections_never_crash_and_every_token_is_accounted_for(
    bodies: list[str], issued: list, with_history: bool
) -> None:
    counts = _account_for_tokens(bodies, issued, with_history)
    assert sum(counts.values()) == len(bodies)


def test_accounting_on_a_known_mix() -> None:
    """The property's bookkeeping, on bodies whose fate is known in advance."""
    bad_status = introspection("conn-q", status="sleeping")
    no_id = introspection("conn-x")
    del no_id["connection_id"]
    bodies = [
        json.dumps(introspection("conn-a")),
        json.dumps(introspection("conn-a")),
        json.dumps(introspection("conn-b", entities=3)),
        json.dumps(bad_status),
        json.dumps(no_id),
        "{not json",
    ]
    counts = _account_for_tokens(bodies, [None] * 6, with_history=True)
    assert counts == {"valid": 3, "quarantined": 1, "rejected": 2}


def _account_for_tokens(bodies: list[str], issued: list, with_history: bool) -> dict[str, int]:
    """Run parse + snapshot + validation; place every token exactly once; count the places."""
    fingerprints = [f"fp-{n}" for n in range(len(bodies))]
    raw_rows = [
        raw_row("introspect", fp, encoded=text)
        for fp, text in zip(fingerprints, bodies, strict=True)
    ]
    source = token_source(
        *({"token_fingerprint": fp, "issued_at": issued[n]} for n, fp in enumerate(fingerprints))
    )
    extra: dict[str, Any] = {}
    if with_history:
        extra = {
            "prior": previous(previous_row("conn-a"), previous_row("conn-zzz")),
            "ledger": sessions(session("sess-1", customer_id="cust-new")),
        }

    result = snapshot(*raw_rows, source=source, **extra)
    outcome = split_valid(result.connections, CONNECTIONS_SCHEMA, "connection_key")
    entity_outcome = split_valid(result.entities, ENTITIES_SCHEMA, "entity_id")

    # No row of the snapshot is dropped by validation.
    assert outcome.valid.height + outcome.quarantined.height == result.connections.height
    assert entity_outcome.valid.height + entity_outcome.quarantined.height == (
        result.entities.height
    )
    assert outcome.quarantined["reason"].null_count() == 0
    assert result.rejected["reason"].null_count() == 0
    # Every token was called and is in the token outcomes.
    assert sorted(result.tokens["token_fingerprint"].to_list()) == sorted(fingerprints)

    # No token has a connection from an earlier run or the source, so a token's connection
    # is the one its own introspection named.
    connection_of = {
        fp: cid
        for fp, cid in result.tokens.select("token_fingerprint", "connection_id").rows()
        if cid is not None
    }
    rejected = set(result.rejected["token_fingerprint"].to_list())
    valid_keys = set(outcome.valid["connection_key"].to_list())
    quarantined_keys = set(outcome.quarantined["record_key"].to_list())

    counts = {"valid": 0, "quarantined": 0, "rejected": 0}
    for fp in fingerprints:
        places = []
        if fp in rejected:
            places.append("rejected")
        if fp in connection_of:
            key = connection_of[fp]
            if key in valid_keys:
                places.append("valid")
            if key in quarantined_keys:
                places.append("quarantined")
        assert len(places) == 1, (fp, places)
        counts[places[0]] += 1
    return counts
