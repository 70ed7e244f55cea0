"""Shared pieces of the hostile-input tests: raw Finch answers as a sync run records them,
Hypothesis strategies for hostile bodies, the production validate-and-quarantine path, and
loading what passed into a real warehouse.

The transform path is the one `connections_pipeline.sync.run` takes: raw responses ->
`build_snapshot` -> `split_valid` on connections and on entities -> the run's quarantine
(`sync.run._quarantine`, imported so the tests cannot drift from it) -> `Warehouse.load_run`.
"""

import json
import random
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from hypothesis import strategies as st

from connections_pipeline.sources.records import REJECTED_SCHEMA
from connections_pipeline.sync.raw_rows import RAW_SCHEMA
from connections_pipeline.sync.run import CONNECTIONS_COLUMNS_NAMES, _quarantine
from connections_pipeline.transform.schemas import CONNECTIONS_SCHEMA, ENTITIES_SCHEMA
from connections_pipeline.transform.snapshot import Snapshot, SnapshotInputs, build_snapshot
from connections_pipeline.transform.token_frame import TOKEN_FRAME_SCHEMA
from connections_pipeline.transform.validate import ValidationOutcome, split_valid
from connections_pipeline.warehouse import (
    CONNECT_SESSIONS,
    CONNECTIONS,
    TOKENS,
    LoadSummary,
    RunLoad,
    Warehouse,
    empty_frame,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RUN_ID = "run-hostile"
ENTITY_COLUMNS = [
    "connection_id",
    "entity_id",
    "entity_name",
    "source_id",
    "entity_status",
    "run_id",
]
# A few ids shared by many tokens, so that Hypothesis often sends one connection through
# several tokens (re-authentication) with disagreeing bodies.
CONNECTION_IDS = ["conn-a", "conn-b", "conn-\u00e9\U0001f680", "conn-\u202ertl"]
INTROSPECTION_FIELDS = [
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

# --- raw responses --------------------------------------------------------------------------


def encode(value: Any) -> str:
    """A body as the extractor stores it (`json.dumps(..., ensure_ascii=False)`); text that
    UTF-8 cannot hold (a lone surrogate) is sent escaped instead, as Finch would on the wire."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True)
    return text


def raw_row(
    endpoint: str,
    fingerprint: str | None,
    body: str | None,
    *,
    connection_id: str | None = None,
    outcome: str = "ok",
    run_id: str = RUN_ID,
    fetched_at: datetime = T0,
) -> dict[str, Any]:
    """One row of the raw-responses frame; `body` is the literal body text."""
    return {
        "run_id": run_id,
        "endpoint": endpoint,
        "token_fingerprint": fingerprint,
        "connection_id": connection_id,
        "fetched_at": fetched_at,
        "outcome": outcome,
        "status_code": 200 if outcome == "ok" else 401,
        "error_name": None if outcome == "ok" else "invalid_token_error",
        "finch_code": None,
        "request_id": "req-hostile",
        "body": body if outcome == "ok" else None,
    }


def raw_frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=RAW_SCHEMA, orient="row")


def token_source(fingerprints: Iterable[str]) -> pl.DataFrame:
    rows = [
        {
            "token_fingerprint": fp,
            "source_connection_id": None,
            "source_disconnected": False,
            "issued_at": None,
        }
        for fp in fingerprints
    ]
    return pl.DataFrame(rows, schema=TOKEN_FRAME_SCHEMA, orient="row")


def introspection(
    connection_id: Any = "conn-a",
    *,
    status: Any = "connected",
    last_sync: Any = "2026-03-01T10:00:00Z",
    entities: Any = 1,
    customer_name: Any = "Customer A",
    customer_id: Any = "cust-a",
    company_id: Any = "company-a",
    auth_types: Sequence[str] = ("credential",),
    **overrides: Any,
) -> dict[str, Any]:
    """A well-formed `/introspect` body (the official SDK's `Introspection` shape); a small
    `entities` count becomes that many entities, any other value is sent as it is."""
    connection_status = {"status": status, "last_successful_sync": last_sync, "message": None}
    if type(entities) is int and 0 <= entities <= 10:
        entities = [
            {
                "id": f"{connection_id}-ent-{n}",
                "name": f"Entity {n}",
                "source_id": f"src-{n}",
                "status": "connected",
            }
            for n in range(entities)
        ]
    body = {
        "id": "tok-id",
        "client_id": "client-123",
        "client_type": "production",
        "connection_id": connection_id,
        "connection_status": connection_status,
        "connection_type": "provider",
        "products": ["company", "directory"],
        "provider_id": "gusto",
        "account_id": "acct",
        "authentication_methods": [
            {"type": kind, "connection_status": connection_status, "products": ["company"]}
            for kind in auth_types
        ],
        "company_id": company_id,
        "customer_id": customer_id,
        "customer_name": customer_name,
        "customer_email": "payroll@example.com",
        "entities": entities,
        "manual": False,
        "username": "admin",
    }
    body.update(overrides)
    return body


def jobs(*created_at: Any, kind: Any = "data_sync_all") -> dict[str, Any]:
    """A `/jobs/automated` body listing jobs created at the given texts."""
    return {
        "data": [
            {"job_id": f"job-{n}", "type": kind, "status": "complete", "created_at": moment}
            for n, moment in enumerate(created_at)
        ],
        "meta": {"quotas": {}},
    }


def providers(*pairs: tuple[Any, Any]) -> list[dict[str, Any]]:
    return [{"id": pid, "display_name": name, "products": ["company"]} for pid, name in pairs]


# --- the production transform path ----------------------------------------------------------


@dataclass(frozen=True)
class HostileRun:
    """One run through snapshot, validation and quarantine, as `sync.run` does it."""

    run_id: str
    as_of: datetime
    snapshot: Snapshot
    connections: ValidationOutcome
    entities: ValidationOutcome
    quarantine: pl.DataFrame


def run_transform(
    raw: pl.DataFrame,
    *,
    tokens: pl.DataFrame | None = None,
    previous: pl.DataFrame | None = None,
    previous_tokens: pl.DataFrame | None = None,
    sessions: pl.DataFrame | None = None,
    run_id: str = RUN_ID,
    as_of: datetime = T0,
) -> HostileRun:
    if tokens is None:
        called = raw.filter(pl.col("endpoint") == "introspect")["token_fingerprint"]
        tokens = token_source(called.to_list())
    snapshot = build_snapshot(
        SnapshotInputs(
            run_id=run_id,
            as_of=as_of,
            raw=raw,
            token_source=tokens,
            previous=previous if previous is not None else empty_frame(CONNECTIONS),
            previous_tokens=previous_tokens if previous_tokens is not None else empty_frame(TOKENS),
            sessions=sessions if sessions is not None else empty_frame(CONNECT_SESSIONS),
        ),
        CONNECTIONS_COLUMNS_NAMES,
    )
    validation = split_valid(snapshot.connections, CONNECTIONS_SCHEMA, "connection_key")
    entity_validation = split_valid(snapshot.entities, ENTITIES_SCHEMA, "entity_id")
    no_source_rejects = pl.DataFrame(schema=REJECTED_SCHEMA)
    quarantine = _quarantine(
        run_id, as_of, snapshot, validation, entity_validation, no_source_rejects
    )
    return HostileRun(run_id, as_of, snapshot, validation, entity_validation, quarantine)


def run_against(warehouse: Warehouse, raw: pl.DataFrame, run_id: str) -> HostileRun:
    """`run_transform` with the warehouse's previous snapshot, tokens and sessions."""
    return run_transform(
        raw.with_columns(pl.lit(run_id).alias("run_id")),
        previous=warehouse.read_current(),
        previous_tokens=warehouse.read_tokens(),
        sessions=warehouse.read_sessions(),
        run_id=run_id,
    )


def load(warehouse: Warehouse, run: HostileRun) -> LoadSummary:
    """Load what passed, plus the quarantine, in one transaction (as `sync.run` does)."""
    valid = run.connections.valid
    return warehouse.load_run(
        RunLoad(
            run_id=run.run_id,
            as_of=run.as_of,
            connections=valid,
            entities=run.entities.valid.select(ENTITY_COLUMNS),
            tokens=run.snapshot.tokens,
            quarantine=run.quarantine,
            sync_run={
                "run_id": run.run_id,
                "as_of": run.as_of,
                "tokens": run.snapshot.tokens.height,
                "live": valid.filter(pl.col("state") == "live").height,
                "quarantined": run.quarantine.height,
                "status": "success",
            },
        )
    )


@contextmanager
def fresh_warehouse(kind: str, folder: Path, postgres_url: str) -> Iterator[Warehouse]:
    """An empty warehouse with tables: a DuckDB file in `folder`, or a PostgreSQL schema of
    its own (dropped afterwards)."""
    schema = f"hostile_{secrets.token_hex(4)}"
    url = f"duckdb:///{folder / f'hostile-{schema}.duckdb'}" if kind == "duckdb" else postgres_url
    try:
        with Warehouse(url, schema=schema) as warehouse:
            warehouse.ensure_tables()
            yield warehouse
    finally:
        if kind != "duckdb":
            engine = sa.create_engine(postgres_url)
            with engine.begin() as connection:
                connection.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
            engine.dispose()


# --- what a JSON body claims, read independently of Polars ----------------------------------


class _Pairs(list):
    """A JSON object as its list of (key, value) pairs, duplicates kept."""


def parse_pairs(text: str | None) -> Any:
    """The body as Python's json module reads it, objects as `_Pairs`; None if unreadable."""
    if text is None:
        return None
    try:
        return json.loads(text, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None


def field_values(value: Any, key: str) -> list[Any]:
    """Every value under `key` of a parsed object (several when the key is repeated)."""
    if not isinstance(value, _Pairs):
        return []
    return [item for name, item in value if name == key]


def first_field(value: Any, key: str) -> Any:
    values = field_values(value, key)
    return values[0] if values else None


def as_polars_text(value: Any) -> str | None:
    """The text Polars' JSON decoder makes of a scalar read into a String field."""
    if value is None or isinstance(value, _Pairs | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return "-0" if str(value).startswith("-0") else str(int(value))
        return format(Decimal(repr(value)), "f")
    return value


def text_matches(text: str | None, claimed: Any) -> bool:
    """Whether `text` is how the pipeline may legitimately show the JSON scalar `claimed`."""
    if text is None or claimed is None or isinstance(claimed, _Pairs | list):
        return False
    if isinstance(claimed, float) and not isinstance(claimed, bool):
        try:
            return float(text) == claimed
        except ValueError:
            return False
    return text == as_polars_text(claimed)


def as_decoded(text: str) -> str:
    """`text` as Polars' JSON decoder returns it: an unpaired UTF-16 surrogate becomes NUL."""
    return "".join("\x00" if 0xD800 <= ord(char) <= 0xDFFF else char for char in text)


# --- Hypothesis strategies -------------------------------------------------------------------

_NOISE = random.Random(20260302)
# 100k characters that do not compress: a B-tree key this long does not fit a page.
INCOMPRESSIBLE_100K = "".join(
    _NOISE.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(100_000)
)
HUGE_TEXTS = [
    "x" * 100_000,
    INCOMPRESSIBLE_100K,
    "\u00e9" * 100_000,
    "\U0001f680" * 50_000,
    "\u202e" * 100_000,
]
TRICKY_TEXTS = [
    "",
    " ",
    "\u0000",
    "a\u0000b",
    "\ud800",
    "x\udfffy",
    "\ud83d",
    "\u202e\u200fmirror",
    "\ufeffbom",
    "\u200b",
    "\U0001f680\U0001f469\u200d\U0001f4bb",
    "e\u0301\u0301\u0301",
    "\u4e2d\u6587",
    "line\nbreak\r\n",
    'quote " and , comma',
    "=1+1",
    "\\",
    "null",
    "NaN",
    "2026-03-01T10:00:00Z",
]

_any_text = st.text(max_size=24)
# Every code point, surrogates and unassigned ones included.
_any_code_point = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
_tricky = st.sampled_from(TRICKY_TEXTS)
texts = st.one_of(
    _any_text,
    _any_text,
    _any_code_point,
    _any_code_point,
    _tricky,
    _tricky,
    st.sampled_from(HUGE_TEXTS),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    keys = st.one_of(
        st.sampled_from([*INTROSPECTION_FIELDS, "id", "name", "type", "status", "data"]),
        st.text(max_size=6),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


JSON_VALUES = json_values(6)
SMALL_JSON = json_values(3)


TIMESTAMP_TEXTS = [
    "2026-03-01T10:00:00Z",
    "2026-03-01T10:00:00.123456+02:00",
    "2026-03-01",
    "2026-03-01 10:00:00",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "-0001-06-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "1900-01-01",
    "9999-12-31T23:59:59Z",
    "+10000-01-01T00:00:00Z",
    "262142-01-01",
    "2999-01-01T00:00:00Z",
    "2026-03-03T11:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-13-01",
    "2026-03-01T25:00:00Z",
    "2026-03-01T10:00:00+99:00",
    "yesterday",
    "",
    " ",
    "\u0000",
]
timestamps = st.one_of(
    st.sampled_from(TIMESTAMP_TEXTS),
    st.none(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ).map(lambda moment: moment.isoformat()),
    st.text(max_size=30),
)
entity_members = st.one_of(
    st.none(),
    scalars,
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.sampled_from(["ent-1", "ent-2", "ent-1"]), scalars),
            "name": texts,
            "source_id": scalars,
            "status": st.sampled_from(["connected", "reauth", "disconnected", "bogus", ""]),
            "extra": SMALL_JSON,
        },
    ),
)


# Values a field's type can still take in (the decoder turns numbers and booleans into text),
# and values it cannot (which make the whole body undecodable).
_FITTING: dict[str, st.SearchStrategy[Any]] = {
    "connection_status": st.fixed_dictionaries(
        {}, optional={"status": scalars, "last_successful_sync": timestamps, "message": texts}
    ),
    "products": st.lists(st.one_of(texts, st.none()), max_size=4),
    "manual": st.one_of(st.none(), st.booleans()),
    "authentication_methods": st.lists(
        st.one_of(st.none(), st.fixed_dictionaries({}, optional={"type": scalars})), max_size=3
    ),
    "entities": st.lists(entity_members.filter(lambda m: m is None or isinstance(m, dict))),
}
STATUSES = ["connected", "reauth", "pending", "processing", "error_permissions", "x"]
_ids = st.one_of(*([st.sampled_from(CONNECTION_IDS)] * 4), scalars)
_statuses = st.one_of(st.sampled_from(STATUSES), st.sampled_from(STATUSES), scalars)
_entity_lists = st.one_of(st.integers(0, 3), st.lists(entity_members, max_size=4), SMALL_JSON)
_auth_types = st.lists(st.sampled_from(["assisted", "oauth", "credential", "?"]), max_size=3)
_mangled_fields = st.lists(st.sampled_from(INTROSPECTION_FIELDS), max_size=3, unique=True)
_mangling = st.sampled_from(["drop", "null", "fitting", "fitting", "anything"])
_unknown_fields = st.dictionaries(st.text(max_size=8), SMALL_JSON, max_size=2)
_now_and_then = st.sampled_from([False] * 7 + [True])


@st.composite
def introspection_bodies(draw: st.DrawFn) -> Any:
    """An `/introspect` body: well-formed, then mangled field by field."""
    body = introspection(
        draw(_ids),
        status=draw(_statuses),
        last_sync=draw(timestamps),
        entities=draw(_entity_lists),
        customer_name=draw(texts),
        customer_id=draw(scalars),
        company_id=draw(scalars),
        auth_types=draw(_auth_types),
    )
    for name in draw(_mangled_fields):
        action = draw(_mangling)
        if action == "drop":
            body.pop(name, None)
        elif action == "null":
            body[name] = None
        elif action == "fitting":
            body[name] = draw(_FITTING.get(name, scalars))
        else:
            body[name] = draw(JSON_VALUES)
    # Unknown fields, anywhere in size and shape.
    body.update(draw(_unknown_fields))
    # Now and then not an object at all.
    return draw(JSON_VALUES) if draw(_now_and_then) else body


def with_deep_field(text: str, depth: int) -> str:
    """`text` (an encoded JSON object) with an unknown field nested `depth` arrays deep."""
    if not text.startswith("{") or depth == 0:
        return text
    deep = f'"deep": {"[" * depth}{"]" * depth}'
    return "{" + deep + ("" if text == "{}" else ", ") + text[1:]


def _literal_bodies() -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            "",
            "null",
            "[]",
            "{",
            "NaN",
            "not json at all",
            '"just a string"',
            "12",
            '{"connection_id": "conn-a"}  trailing',
            '{"connection_id": "conn-a", "connection_id": "conn-b"}',
            '{"connection_id": "conn-a", "entities": [null, {"id": null}, 7]}',
            '{"connection_id": "conn-b", "entities": [null, {"id": null}, {"name": "no id"}]}',
            '{"connection_id": "conn-a", "connection_status": "connected"}',
            '{"connection_id": "conn-a\\ud800"}',
            '{"connection_id": "conn-a", "customer_name": "lone \\udc00 low"}',
            '{"connection_id": "conn-b\\u0000"}',
        ]
    )


_extracted = st.builds(
    lambda body, depth: with_deep_field(encode(body), depth),
    introspection_bodies(),
    st.sampled_from([0, 0, 0, 0, 0, 0, 50, 600, 5000]),
)
# Mostly bodies as the extractor stores them; some ASCII-escaped, literal oddities or junk.
introspection_texts = st.one_of(
    _extracted,
    _extracted,
    _extracted,
    introspection_bodies().map(lambda body: json.dumps(body)),
    _literal_bodies(),
    st.text(max_size=40),
)
jobs_texts = st.one_of(
    st.lists(timestamps, max_size=3).map(lambda moments: encode(jobs(*moments))),
    st.builds(lambda kind, moment: encode(jobs(moment, kind=kind)), scalars, timestamps),
    JSON_VALUES.map(encode),
    st.text(max_size=20),
)
company_texts = st.one_of(
    st.builds(lambda name, cid: encode({"id": cid, "legal_name": name}), texts, scalars),
    JSON_VALUES.map(encode),
    st.text(max_size=20),
)
providers_texts = st.one_of(
    st.lists(st.tuples(st.sampled_from(["gusto", "adp", None]), texts), max_size=3).map(
        lambda pairs: encode(providers(*pairs))
    ),
    JSON_VALUES.map(encode),
)


@st.composite
def hostile_raw_runs(draw: st.DrawFn, max_tokens: int = 6) -> list[dict[str, Any]]:
    """The raw responses of one run: providers, then per token an `/introspect` answer and
    maybe a `/jobs/automated` and an `/employer/company` answer for some connection id."""
    rows = [raw_row("providers", None, draw(providers_texts))]
    for n in range(draw(st.integers(1, max_tokens))):
        fingerprint = f"fp-{n}"
        rows.append(raw_row("introspect", fingerprint, draw(introspection_texts)))
        for endpoint, bodies in (("jobs", jobs_texts), ("company", company_texts)):
            if draw(st.booleans()):
                rows.append(
                    raw_row(
                        endpoint,
                        fingerprint,
                        draw(bodies),
                        connection_id=draw(st.sampled_from(CONNECTION_IDS)),
                    )
                )
    return rows


# --- checks shared by the property tests ----------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FINCH_TIME_COLUMNS = ("last_synced_at", "connected_at")
_KEY_LIMIT = 255


def loadable_text(value: str) -> bool:
    """Text PostgreSQL can store: no NUL character (and nothing Python cannot encode)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def assert_rows_are_clean(frame: pl.DataFrame, keys: Sequence[str]) -> None:
    """Valid rows hold only loadable text, bounded keys and believable Finch timestamps."""
    for name, dtype in frame.schema.items():
        if dtype == pl.String:
            bad = [v for v in frame[name].drop_nulls().to_list() if not loadable_text(v)]
            assert not bad, f"{name} passed validation holding unloadable text {bad[:1]!r}"
    for key in keys:
        too_long = frame.filter(pl.col(key).str.len_chars() > _KEY_LIMIT)
        assert too_long.is_empty(), f"{key} of {too_long.height} valid rows exceeds {_KEY_LIMIT}"
    for name in FINCH_TIME_COLUMNS:
        if name not in frame.columns:
            continue
        odd = frame.filter(
            (pl.col(name) < EPOCH) | (pl.col(name) > pl.col("last_seen_at") + pl.duration(days=1))
        )
        assert odd.is_empty(), f"{name} passed validation outside 1970..as_of+1 day"


def quarantine_is_well_formed(quarantine: pl.DataFrame) -> None:
    assert quarantine["reason"].null_count() == 0
    assert (quarantine["reason"].str.strip_chars().str.len_chars() > 0).all()
    assert set(quarantine["record_kind"].to_list()) <= {"introspection", "connection", "entity"}
    for column in ("record_key", "reason", "payload"):
        for value in quarantine[column].drop_nulls().to_list():
            assert loadable_text(value), f"quarantine {column} cannot be loaded: {value[:80]!r}"
