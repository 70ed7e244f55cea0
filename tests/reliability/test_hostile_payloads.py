"""Hostile Finch answers through normalize, validate and load: nothing crashes, nothing is lost,
nothing is invented, and what validation lets through loads into DuckDB and PostgreSQL.

Bodies are arbitrary and adversarial: not objects, deeply nested, 100k-character strings,
lone surrogates, NUL characters, RTL marks, emoji, numbers where text is expected, nulls
everywhere, unknown fields, entity lists with bad members, timestamps malformed or absurd,
and one connection_id shared by several tokens that disagree. They go down the production
path (raw responses -> `build_snapshot` -> `split_valid` on connections and entities ->
quarantine -> `Warehouse.load_run`).
"""

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hostile_helpers import (
    EPOCH,
    INCOMPRESSIBLE_100K,
    T0,
    HostileRun,
    as_decoded,
    as_polars_text,
    assert_rows_are_clean,
    encode,
    field_values,
    first_field,
    fresh_warehouse,
    hostile_raw_runs,
    introspection,
    jobs,
    load,
    parse_pairs,
    providers,
    quarantine_is_well_formed,
    raw_frame,
    raw_row,
    run_against,
    run_transform,
    text_matches,
    timestamps,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connections_pipeline.decoding_limits import MAX_ENTITIES_PER_CONNECTION as MAX_ENTITIES
from connections_pipeline.decoding_limits import MAX_ID_CHARS, MAX_TEXT_CHARS
from connections_pipeline.transform.parse import parse_timestamp
from connections_pipeline.transform.validate import bounded
from connections_pipeline.warehouse import (
    CONNECTION_ENTITIES,
    CONNECTIONS,
    QUARANTINE,
    Warehouse,
    conform,
)

# How many examples each property tries (quoted by the README).
TRANSFORM_EXAMPLES = 80
TIMESTAMP_EXAMPLES = 60
DUCKDB_LOAD_EXAMPLES = 15
POSTGRES_LOAD_EXAMPLES = 15

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


# --- bookkeeping ---------------------------------------------------------------------------


def _payload(quarantined: pl.DataFrame) -> list[dict[str, Any]]:
    return [json.loads(text) for text in quarantined["payload"].to_list()]


def _live_rows(run: HostileRun) -> list[dict[str, Any]]:
    """Every live connection row of the snapshot, valid or quarantined, as dicts."""
    valid = run.connections.valid.filter(pl.col("state") == "live").to_dicts()
    quarantined = [row for row in _payload(run.connections.quarantined) if row["state"] == "live"]
    return valid + quarantined


def _expected_entities(members: Any) -> tuple[list[Any], int]:
    """(entity ids, members without an id) of a body's `entities` list."""
    if not isinstance(members, list):
        return [], 0
    ids = [first_field(member, "id") for member in members]
    return [value for value in ids if value is not None], ids.count(None)


def assert_accounted(rows: list[dict[str, Any]], run: HostileRun) -> Counter[str]:
    """Every token, connection and entity of the raw answers is in exactly one place; no row
    exists that no payload contained. For runs without history (no previous snapshot, tokens
    or sessions). Returns how many tokens landed where."""
    snapshot = run.snapshot
    bodies = {
        row["token_fingerprint"]: row["body"] for row in rows if row["endpoint"] == "introspect"
    }
    # Validation keeps or quarantines every row it is given, with a reason.
    assert run.connections.valid.height + run.connections.quarantined.height == (
        snapshot.connections.height
    )
    assert run.entities.valid.height + run.entities.quarantined.height == snapshot.entities.height
    quarantine_is_well_formed(run.quarantine)
    assert sorted(snapshot.tokens["token_fingerprint"].to_list()) == sorted(bodies)

    # Each token: rejected with a reason, or its connection is a valid or quarantined row.
    rejected = dict(snapshot.rejected.select("token_fingerprint", "reason").iter_rows())
    connection_of = dict(snapshot.tokens.select("token_fingerprint", "connection_id").iter_rows())
    valid_keys = set(run.connections.valid["connection_key"].to_list())
    quarantined_keys = set(
        run.quarantine.filter(pl.col("record_kind") == "connection")["record_key"].to_list()
    )
    places: Counter[str] = Counter()
    for fingerprint in bodies:
        found = []
        if fingerprint in rejected:
            assert rejected[fingerprint].strip(), fingerprint
            found.append("rejected")
        key = connection_of[fingerprint]
        if key is not None and key in valid_keys:
            found.append("valid")
        if key is not None and key in quarantined_keys:
            found.append("quarantined")
        assert len(found) == 1, (fingerprint, found, key)
        places[found[0]] += 1

    # Nothing invented: with no history and no sessions every row is live, and each live row
    # is the connection its working token's body names, with that body's text (no silent
    # rewriting of ids or names); entities belong to those connections only.
    assert set(snapshot.connections["state"].to_list()) <= {"live"}
    live = _live_rows(run)
    assert len(live) == snapshot.connections.height
    assert set(snapshot.entities["connection_id"].to_list()) <= {r["connection_id"] for r in live}
    for row in live:
        body = parse_pairs(bodies[row["working_token_fingerprint"]])
        claimed = field_values(body, "connection_id")
        assert claimed, f"row {row['connection_id']!r} from a body Python cannot read"
        assert text_matches(row["connection_id"], claimed[0]), (row["connection_id"], claimed)
        assert row["connection_key"] == row["connection_id"]
        for name in ("customer_name", "customer_id", "company_id"):
            claim = first_field(body, name)
            if claim is None:
                assert row[name] is None, (name, row[name])
            elif row["connection_key"] in valid_keys or not isinstance(claim, str):
                assert text_matches(row[name], claim), (name, row[name], claim)
            else:
                # A quarantined row shows what the decoder made of the text (a value past
                # the payload cap as its excerpt).
                assert row[name] == bounded(as_decoded(claim)), (name, row[name], claim)

        # Entities: every member of the working body is one row, valid or quarantined;
        # repeated ids are one entity.
        claimed_ids, anonymous = _expected_entities(first_field(body, "entities"))
        entity_rows = snapshot.entities.filter(pl.col("connection_id") == row["connection_id"])
        keyed = entity_rows["entity_id"].drop_nulls().to_list()
        assert len(keyed) == len(set(keyed))
        assert len(keyed) == len({as_polars_text(value) for value in claimed_ids})
        for claim in claimed_ids:
            assert any(text_matches(value, claim) for value in keyed), (claim, keyed)
        assert entity_rows["entity_id"].null_count() == anonymous

    # What passed is loadable and believable.
    assert_rows_are_clean(run.connections.valid, ("connection_key", "connection_id"))
    assert_rows_are_clean(run.entities.valid, ("connection_id", "entity_id"))
    return places


# --- properties ------------------------------------------------------------------------------


@settings(
    max_examples=TRANSFORM_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=_SLOW
)
@given(rows=hostile_raw_runs())
def test_hostile_runs_never_crash_and_every_record_is_accounted_for(
    rows: list[dict[str, Any]],
) -> None:
    run = run_transform(raw_frame(rows))
    assert_accounted(rows, run)


@settings(
    max_examples=TIMESTAMP_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=_SLOW
)
@given(last_sync=timestamps, created=st.lists(timestamps, max_size=3))
def test_absurd_or_malformed_timestamps_are_parsed_nulled_or_quarantined(
    last_sync: Any, created: list[Any]
) -> None:
    rows = [
        raw_row("introspect", "fp-0", encode(introspection("conn-a", last_sync=last_sync))),
        raw_row("jobs", "fp-0", encode(jobs(*created)), connection_id="conn-a"),
    ]
    run = run_transform(raw_frame(rows))
    assert_accounted(rows, run)
    last = _instant(last_sync)
    known = [moment for moment in map(_instant, created) if moment is not None]
    connected = min(known) if known else None
    absurd = [
        name
        for name, moment in (("last_synced_at", last), ("connected_at", connected))
        if moment is not None and not (EPOCH <= moment <= T0 + timedelta(days=1))
    ]
    if absurd:
        # Quarantined, and the reason names each absurd time.
        assert run.connections.valid.is_empty()
        [reason] = run.connections.quarantined["reason"].to_list()
        for name in absurd:
            assert f"{name} failed" in reason, (name, reason)
        return
    [row] = run.connections.valid.to_dicts()
    assert (row["last_synced_at"], row["connected_at"]) == (last, connected)


def _instant(text: Any) -> datetime | None:
    """The instant Finch's text names (null when it names none), as the parser reads it."""
    if not isinstance(text, str):
        return None
    return pl.select(parse_timestamp(pl.lit(text, dtype=pl.String))).item()


# --- the warehouse takes what passed ---------------------------------------------------------

_RUNS = itertools.count()


def _round_trip(warehouse: Warehouse, rows: list[dict[str, Any]]) -> None:
    run = run_against(warehouse, raw_frame(rows), f"run-{next(_RUNS)}")
    load(warehouse, run)

    def comparable(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.drop("run_id").sort("connection_key")

    stored = warehouse.read_current()
    expected = conform(run.connections.valid, CONNECTIONS)
    assert comparable(stored).equals(comparable(expected))

    entities = run.entities.valid.drop("run_id").sort("connection_id", "entity_id")
    stored_entities = (
        warehouse.read_table(CONNECTION_ENTITIES)
        .filter(pl.col("connection_id").is_in(entities["connection_id"].implode()))
        .drop("run_id")
        .sort("connection_id", "entity_id")
    )
    assert stored_entities.equals(entities.select(stored_entities.columns))

    columns = ["record_kind", "record_key", "reason", "payload"]
    stored_quarantine = (
        warehouse.read_table(QUARANTINE).filter(pl.col("run_id") == run.run_id).select(columns)
    )
    assert Counter(stored_quarantine.rows()) == Counter(run.quarantine.select(columns).rows())


@pytest.fixture(scope="module")
def duckdb_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    with fresh_warehouse("duckdb", tmp_path_factory.mktemp("hostile"), "") as warehouse:
        yield warehouse


@pytest.fixture(scope="module")
def postgres_warehouse(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[Warehouse]:
    with fresh_warehouse("postgres", tmp_path_factory.mktemp("hostile"), postgres_url) as warehouse:
        yield warehouse


@settings(
    max_examples=DUCKDB_LOAD_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=_SLOW,
)
@given(rows=hostile_raw_runs(max_tokens=4))
def test_what_passes_validation_loads_into_duckdb(
    duckdb_warehouse: Warehouse, rows: list[dict[str, Any]]
) -> None:
    _round_trip(duckdb_warehouse, rows)


@settings(
    max_examples=POSTGRES_LOAD_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=_SLOW,
)
@given(rows=hostile_raw_runs(max_tokens=4))
def test_what_passes_validation_loads_into_postgres(
    postgres_warehouse: Warehouse, rows: list[dict[str, Any]]
) -> None:
    _round_trip(postgres_warehouse, rows)


# --- regressions: one run holding each hostile case that once broke the pipeline ------------

# token -> (body, where it must land, a fragment of the reason)
KNOWN_CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "fp-nul-name": (
        introspection("conn-nul", customer_name="a\x00b"),
        "connection",
        "customer_name failed no NUL character",
    ),
    "fp-surrogate-name": (
        introspection("conn-surrogate", customer_name="lone \ud800 half"),
        "connection",
        "customer_name failed no NUL character (U+0000) or unpaired surrogate",
    ),
    "fp-surrogate-id": (
        introspection("conn-\ud800x"),
        "introspection",
        "connection_id holds a NUL character (U+0000) or an unpaired UTF-16 surrogate",
    ),
    "fp-huge-id": (
        introspection(INCOMPRESSIBLE_100K),
        "introspection",
        "connection_id is 100000 characters long",
    ),
    "fp-blank-id": (introspection(" \t"), "introspection", "blank connection_id"),
    "fp-year-0": (
        introspection("conn-year-0", last_sync="0000-01-01T00:00:00Z"),
        "connection",
        "last_synced_at failed a time between 1970-01-01 and a day after the run",
    ),
    "fp-year-10000": (
        introspection("conn-year-10000", last_sync="+10000-01-01T00:00:00Z"),
        "connection",
        "last_synced_at failed a time between",
    ),
    "fp-year-9999": (
        introspection("conn-year-9999", last_sync="9999-12-31T23:59:59Z"),
        "connection",
        "last_synced_at failed a time between",
    ),
    "fp-negative-epoch": (
        introspection("conn-1969", last_sync="1969-12-31T23:59:59Z"),
        "connection",
        "last_synced_at failed a time between",
    ),
}
# Entities of valid connections: (connection, entities, entity_ids kept, quarantined reasons)
ENTITY_CASES: dict[str, tuple[str, list[Any], list[str], list[str]]] = {
    "fp-huge-entity": (
        "conn-huge-entity",
        [{"id": INCOMPRESSIBLE_100K}, {"id": "ent-ok"}],
        ["ent-ok"],
        ["entity_id failed str_length(None, 255)"],
    ),
    "fp-anonymous-entities": (
        "conn-anonymous",
        [None, {"id": None, "name": "x"}, {"name": "y"}, {"id": "ent-1"}, {"id": "ent-1"}],
        ["ent-1"],
        ["entity_id failed not_nullable"] * 3,
    ),
    "fp-nul-entity": (
        "conn-nul-entity",
        [{"id": "ent-\x00", "name": "n"}, {"id": "ent-2", "name": "nul \x00 name"}],
        [],
        ["entity_id failed no NUL character", "entity_name failed no NUL character"],
    ),
}


def _known_rows() -> list[dict[str, Any]]:
    rows = [raw_row("providers", None, encode(providers(("gusto", "Gusto"))))]
    rows += [raw_row("introspect", fp, encode(body)) for fp, (body, _, _) in KNOWN_CASES.items()]
    rows += [
        raw_row("introspect", fp, encode(introspection(cid, entities=members)))
        for fp, (cid, members, _, _) in ENTITY_CASES.items()
    ]
    return rows


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_each_known_hostile_case_is_quarantined_with_its_reason_and_the_run_loads(
    backend: str, tmp_path: Path, postgres_url: str
) -> None:
    """Regressions: NUL text and unpaired surrogates (which the decoder turns into NUL)
    failed PostgreSQL's COPY; a 100k-character id overflowed its B-tree index; year-0,
    negative and year-10000 times crashed validation (and the load) and year-9999 or 1969
    ones passed as valid; members of `entities` without an id vanished silently; a blank
    connection_id became a connection."""
    with fresh_warehouse(backend, tmp_path, postgres_url) as warehouse:
        _check_known_cases(warehouse)


def _check_known_cases(warehouse: Warehouse) -> None:
    rows = _known_rows()
    run = run_against(warehouse, raw_frame(rows), f"run-known-{next(_RUNS)}")
    assert_accounted([{**row, "run_id": run.run_id} for row in rows], run)

    quarantine = run.quarantine
    for fingerprint, (body, kind, fragment) in KNOWN_CASES.items():
        key = fingerprint if kind == "introspection" else body["connection_id"]
        [reason] = quarantine.filter(
            (pl.col("record_kind") == kind) & (pl.col("record_key") == key)
        )["reason"].to_list()
        assert fragment in reason, (fingerprint, reason)
    valid_ids = set(run.connections.valid["connection_id"].to_list())
    assert valid_ids == {cid for cid, *_ in ENTITY_CASES.values()}
    for connection_id, _, kept, reasons in ENTITY_CASES.values():
        entities = run.entities.valid.filter(pl.col("connection_id") == connection_id)
        assert entities["entity_id"].to_list() == kept
        quarantined = [
            json.loads(payload)["connection_id"] == connection_id
            for payload in run.entities.quarantined["payload"].to_list()
        ]
        got = run.entities.quarantined.filter(pl.Series(quarantined, dtype=pl.Boolean))
        got_reasons = got["reason"].to_list()
        assert len(got_reasons) == len(reasons), got_reasons
        for fragment in set(reasons):
            matching = [reason for reason in got_reasons if fragment in reason]
            assert len(matching) == reasons.count(fragment), (fragment, got_reasons)
    # A NUL in a quarantined key is stored escaped; the payload keeps it (JSON-escaped).
    assert "ent-\\u0000" in run.quarantine["record_key"].to_list()

    load(warehouse, run)
    stored = warehouse.read_table(QUARANTINE).filter(pl.col("run_id") == run.run_id)
    assert stored.height == quarantine.height
    assert set(warehouse.read_current()["connection_id"].to_list()) == valid_ids


# --- values past the decoding limits ----------------------------------------------------------

LONG_NAME = "N" * (MAX_TEXT_CHARS + 1)


def _entities(connection_id: str, count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"{connection_id}-{n}", "name": f"E{n}", "source_id": "s", "status": "connected"}
        for n in range(count)
    ]


# token -> (body, where it must land, a fragment of the reason); None: valid.
LIMIT_CASES: dict[str, tuple[dict[str, Any], str | None, str]] = {
    "fp-long-customer": (
        introspection("conn-long-customer", customer_name=LONG_NAME),
        "connection",
        f"customer_name failed str_length(None, {MAX_TEXT_CHARS})",
    ),
    "fp-customer-at-limit": (
        introspection("conn-customer-at-limit", customer_name="N" * MAX_TEXT_CHARS),
        None,
        "",
    ),
    "fp-long-customer-id": (
        introspection("conn-long-customer-id", customer_id="c" * (MAX_ID_CHARS + 1)),
        "connection",
        f"customer_id failed str_length(None, {MAX_ID_CHARS})",
    ),
    "fp-long-company": (
        introspection("conn-long-company"),
        "connection",
        f"company_name failed str_length(None, {MAX_TEXT_CHARS})",
    ),
    "fp-many-entities": (
        introspection("conn-many", entities=_entities("conn-many", MAX_ENTITIES + 1)),
        "introspection",
        f"introspection lists {MAX_ENTITIES + 1} entities (at most {MAX_ENTITIES} per connection)",
    ),
    "fp-entities-at-limit": (
        introspection("conn-at-limit", entities=_entities("conn-at-limit", MAX_ENTITIES)),
        None,
        "",
    ),
}


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_values_past_the_decoding_limits_are_quarantined_not_cut_and_the_rest_loads(
    backend: str, tmp_path: Path, postgres_url: str
) -> None:
    """Regression: a 10 MB company or customer name was stored and published verbatim, and
    200,000 entities of one connection loaded 200,000 rows."""
    rows = [raw_row("providers", None, encode(providers(("gusto", "Gusto"))))]
    rows += [raw_row("introspect", fp, encode(body)) for fp, (body, _, _) in LIMIT_CASES.items()]
    # The company name comes from /employer/company: 2 MB of it.
    huge_company = {"id": "company-a", "legal_name": "C" * 2_000_000}
    rows.append(
        raw_row(
            "company", "fp-long-company", encode(huge_company), connection_id="conn-long-company"
        )
    )
    # Two entities: the company column says "Multi-entity connection", not the long name.
    members = [{"id": "e-1", "name": LONG_NAME}, {"id": "e-2", "name": "Short"}]
    long_entity = introspection("conn-long-entity", entities=members)
    rows.append(raw_row("introspect", "fp-long-entity", encode(long_entity)))
    with fresh_warehouse(backend, tmp_path, postgres_url) as warehouse:
        run = run_against(warehouse, raw_frame(rows), f"run-limits-{next(_RUNS)}")
        quarantine = run.quarantine
        for fingerprint, (body, kind, fragment) in LIMIT_CASES.items():
            key = fingerprint if kind == "introspection" else body["connection_id"]
            found = quarantine.filter(pl.col("record_key") == key)
            if kind is None:
                assert found.is_empty(), found.to_dicts()
                continue
            [(stored_kind, reason)] = found.select("record_kind", "reason").rows()
            assert (stored_kind, fragment in reason) == (kind, True), (fingerprint, reason)
        [entity_reason] = run.entities.quarantined["reason"].to_list()
        assert f"entity_name failed str_length(None, {MAX_TEXT_CHARS})" in entity_reason

        load(warehouse, run)
        current = warehouse.read_current()
        assert set(current["connection_id"]) == {
            "conn-customer-at-limit",
            "conn-at-limit",
            "conn-long-entity",
        }
        for name, dtype in current.schema.items():
            if dtype == pl.String:
                assert (current[name].str.len_chars().fill_null(0) <= MAX_TEXT_CHARS).all(), name
        entities = warehouse.read_table(CONNECTION_ENTITIES)
        counts = dict(entities.group_by("connection_id").len().rows())
        assert "conn-many" not in counts
        assert (counts["conn-at-limit"], counts["conn-long-entity"]) == (MAX_ENTITIES, 1)
        stored = warehouse.read_table(QUARANTINE).filter(pl.col("run_id") == run.run_id)
        assert stored.height == quarantine.height
