"""Settings that end up in SQL accept plain identifiers only, and say which setting is wrong
before any connection is opened or any file is created.

The settings: the warehouse schema (CONNECTIONS_WAREHOUSE_SCHEMA, interpolated into DDL,
COPY and the SQL models), the export's column names (`sort_by`, `extra_columns[i]`,
`filters[i].column`) and the SQL models' names (the `.sql` file names of
CONNECTIONS_SQL_MODELS_DIR, which become relation names). Table names are constants.
"""

import re
import secrets
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from hostile_helpers import encode, introspection, load, raw_frame, raw_row, run_transform
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connections_pipeline.export import ColumnFilter, ExportOptions, ExportSettingError
from connections_pipeline.export.columns import SORT_KEYS
from connections_pipeline.export.options import check_options
from connections_pipeline.resources import WarehouseResource
from connections_pipeline.settings import SettingError, build_resources
from connections_pipeline.sql_models.project import MODELS_DIR_SETTING, SqlModelError, load_models
from connections_pipeline.warehouse import (
    CONNECTIONS_COLUMNS,
    SCHEMA_SETTING,
    Warehouse,
    build_metadata,
    validate_schema_name,
)

# How many examples each property tries (quoted by the README).
REJECTED_SCHEMA_EXAMPLES = 300
ACCEPTED_SCHEMA_EXAMPLES = 200
SCHEMA_ROUND_TRIP_EXAMPLES = 6
EXPORT_COLUMN_EXAMPLES = 300
MODEL_NAME_EXAMPLES = 60

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Plain identifiers that PostgreSQL or DuckDB keep for themselves.
RESERVED_SCHEMAS = (
    "pg_catalog",
    "pg_toast",
    "pg_temp",
    "pg_x",
    "PG_Data",
    "information_schema",
    "Information_Schema",
    "temp",
    "system",
)
# A closed port: were anything to connect, it would fail with a connection error instead.
UNREACHABLE_POSTGRES = "postgresql+psycopg://nobody@127.0.0.1:1/nowhere"
SCHEMA = {column.name: column.dtype for column in CONNECTIONS_COLUMNS}


def _is_reserved(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("pg_") or lowered in ("information_schema", "temp", "system")


near_misses = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "1abc",
            "finch-data",
            "finch data",
            "finch.data",
            'x"; DROP TABLE y; --',
            "finch;",
            "finch\n",
            "\nfinch",
            "finch\x00",
            "fin\u00e7h",
            "\uff46inch",
            "finch\u200b",
            "a" * 64,
            '"finch"',
            "[finch]",
            "`finch`",
            "finch$1",
            "$1",
            "f*",
            "public.finch",
        ]
    ),
    st.builds(
        lambda name, junk, at_end: name + junk if at_end else junk + name,
        st.from_regex(IDENTIFIER, fullmatch=True),
        st.text(min_size=1, max_size=3).filter(lambda junk: not IDENTIFIER.fullmatch(junk)),
        st.booleans(),
    ),
)
not_identifiers = st.one_of(near_misses, st.text(max_size=70)).filter(
    lambda text: not IDENTIFIER.fullmatch(text)
)
identifiers = st.one_of(
    st.from_regex(IDENTIFIER, fullmatch=True),
    st.sampled_from(["select", "user", "order", "table", "default", "Finch", "_", "a" * 63]),
).filter(lambda name: not _is_reserved(name))


def _nothing_touched(tmp: Path) -> None:
    assert not (tmp / "never").exists(), "a DuckDB folder was created for a refused setting"


# --- the warehouse schema --------------------------------------------------------------------


@settings(max_examples=REJECTED_SCHEMA_EXAMPLES, deadline=None, derandomize=True)
@given(schema=st.one_of(not_identifiers, st.sampled_from(RESERVED_SCHEMAS)))
def test_a_schema_that_is_not_a_usable_identifier_is_refused_before_connecting(
    schema: str,
) -> None:
    with pytest.raises(ValueError, match=SCHEMA_SETTING):
        validate_schema_name(schema)
    with pytest.raises(ValueError, match=SCHEMA_SETTING):
        build_metadata(schema)
    with tempfile.TemporaryDirectory() as folder:
        for url in (f"duckdb:///{Path(folder) / 'never' / 'w.duckdb'}", UNREACHABLE_POSTGRES):
            with pytest.raises(ValueError, match=SCHEMA_SETTING):
                Warehouse(url, schema=schema)
            with pytest.raises(ValueError, match=SCHEMA_SETTING):
                WarehouseResource(url=url, schema_name=schema).open()
        _nothing_touched(Path(folder))
    if schema and "\x00" not in schema:  # an environment variable cannot hold NUL
        with pytest.raises(SettingError, match=SCHEMA_SETTING):
            build_resources({SCHEMA_SETTING: schema})


@settings(max_examples=ACCEPTED_SCHEMA_EXAMPLES, deadline=None, derandomize=True)
@given(schema=identifiers)
def test_a_plain_identifier_is_accepted_as_the_schema(schema: str) -> None:
    assert validate_schema_name(schema) == schema
    assert {table.schema for table in build_metadata(schema).tables.values()} == {schema}
    build_resources({SCHEMA_SETTING: schema, "CONNECTIONS_WAREHOUSE_URL": UNREACHABLE_POSTGRES})
    with WarehouseResource(url=UNREACHABLE_POSTGRES, schema_name=schema).open() as warehouse:
        assert warehouse.schema == schema


@pytest.mark.parametrize("schema", RESERVED_SCHEMAS)
def test_schemas_the_databases_keep_for_themselves_are_refused(schema: str) -> None:
    """Regression: `pg_*` passed the check and PostgreSQL refused it on the first load
    ("unacceptable schema name"); `information_schema` and `temp` passed and broke later."""
    with pytest.raises(ValueError, match=SCHEMA_SETTING):
        validate_schema_name(schema)


@pytest.mark.parametrize(
    ("file_name", "schema"),
    [
        ("finch.duckdb", "finch"),
        ("Finch.duckdb", "finch"),
        ("connections.duckdb", "Connections"),
        ("warehouse.v2.duckdb", "warehouse"),
    ],
)
def test_a_schema_named_like_its_duckdb_file_is_refused(
    tmp_path: Path, file_name: str, schema: str
) -> None:
    """Regression: DuckDB names a file's catalog after it, so `finch.finch_connections` in
    `finch.duckdb` was ambiguous ("Ambiguous reference to catalog or schema") on every load."""
    url = f"duckdb:///{tmp_path / 'never' / file_name}"
    with pytest.raises(ValueError, match=SCHEMA_SETTING):
        WarehouseResource(url=url, schema_name=schema).open()
    with pytest.raises(SettingError, match=SCHEMA_SETTING):
        build_resources({"CONNECTIONS_WAREHOUSE_URL": url, SCHEMA_SETTING: schema})
    _nothing_touched(tmp_path)


@pytest.fixture(scope="module")
def duckdb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("identifier-warehouses")


@settings(
    max_examples=SCHEMA_ROUND_TRIP_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(schema=identifiers)
def test_an_accepted_schema_works_on_duckdb_and_postgres(
    duckdb_folder: Path, postgres_url: str, schema: str
) -> None:
    # A suffix keeps examples apart (DuckDB folds case, so "Ab" and "ab" would meet).
    name = f"{schema[:54]}_{secrets.token_hex(4)}"
    assume(not _is_reserved(name))
    duckdb_url = f"duckdb:///{duckdb_folder / f'wh-{secrets.token_hex(4)}.duckdb'}"
    run = run_transform(raw_frame([raw_row("introspect", "fp-0", encode(introspection()))]))
    for url in (duckdb_url, postgres_url):
        try:
            with WarehouseResource(url=url, schema_name=name).open() as warehouse:
                warehouse.ensure_tables()
                load(warehouse, run)
                assert warehouse.read_current()["connection_key"].to_list() == ["conn-a"]
        finally:
            if url == postgres_url:
                engine = sa.create_engine(postgres_url)
                with engine.begin() as connection:
                    connection.execute(sa.schema.DropSchema(name, cascade=True, if_exists=True))
                engine.dispose()


# --- the export's column settings ------------------------------------------------------------

column_names = st.one_of(st.sampled_from(sorted(SCHEMA)), st.text(max_size=20), near_misses)


@settings(max_examples=EXPORT_COLUMN_EXAMPLES, deadline=None, derandomize=True)
@given(name=column_names, position=st.integers(0, 2))
def test_export_column_settings_accept_only_columns_of_the_table(name: str, position: int) -> None:
    """`sort_by`, `extra_columns[i]` and `filters[i].column` name columns; anything else is
    refused naming the setting and its index (checked before the warehouse is read)."""
    others = [column for column in ("products", "provider_id") if column != name][:position]
    extra = ExportOptions(extra_columns=(*others, name))
    column_filter = ExportOptions(
        filters=(*(ColumnFilter(c, one_of=["x"]) for c in others), ColumnFilter(name, equals=1))
    )
    sort = ExportOptions(sort_by=name)
    if name in SCHEMA:
        check_options(extra, SCHEMA)
    else:
        with pytest.raises(ExportSettingError, match=re.escape(f"extra_columns[{len(others)}]")):
            check_options(extra, SCHEMA)
        with pytest.raises(ExportSettingError, match=re.escape(f"filters[{len(others)}].column")):
            check_options(column_filter, SCHEMA)
    if name in SORT_KEYS:
        check_options(sort, SCHEMA)
    else:
        with pytest.raises(ExportSettingError, match="sort_by"):
            check_options(sort, SCHEMA)


# --- the SQL models' names -------------------------------------------------------------------

MODEL_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
file_stems = st.one_of(
    st.from_regex(MODEL_NAME, fullmatch=True),
    near_misses,
    st.text(max_size=20),
).filter(lambda stem: stem not in ("", ".", "..") and "/" not in stem and "\x00" not in stem)


@settings(max_examples=MODEL_NAME_EXAMPLES, deadline=None, derandomize=True)
@given(stem=file_stems)
def test_a_sql_model_is_named_by_a_plain_lowercase_identifier(stem: str) -> None:
    """A model's file name becomes its relation's name; one that is not a lowercase
    identifier is refused naming the file, before any SQL runs."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = Path(folder) / f"{stem}.sql"
            path.write_text("select 1 as one", encoding="utf-8")
        except (OSError, UnicodeEncodeError, ValueError):
            assume(False)
        if MODEL_NAME.fullmatch(path.stem):
            [model] = load_models(Path(folder))
            assert model.name == stem
        else:
            with pytest.raises(SqlModelError, match=re.escape(path.name)):
                load_models(Path(folder))


def test_the_models_dir_setting_names_itself_when_unusable(tmp_path: Path) -> None:
    with pytest.raises(SqlModelError, match=MODELS_DIR_SETTING):
        load_models(tmp_path / "missing")
