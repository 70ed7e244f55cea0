"""Find the models of a `dbt_like_sql/` folder and read their YAML settings and tests.

A model is one `<name>.sql` file holding one SELECT (Postgres dialect); its relation in the
warehouse is `<name>`. Settings and tests live in any `*.yml`/`*.yaml` file of the folder,
under `models: {<name>: {materialized, description, columns, tests}}`.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp

MODELS_DIR_SETTING = "CONNECTIONS_SQL_MODELS_DIR"
# The dialect the model files are written in; other warehouses get them transpiled.
SOURCE_DIALECT = "postgres"
MATERIALIZATIONS = ("view", "table")
COLUMN_TESTS = ("not_null", "unique", "accepted_values", "relationships")
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class SqlModelError(ValueError):
    """A model file or its settings cannot be used; the message names the file."""


@dataclass(frozen=True)
class DataTest:
    """One declared test of a model; it passes when its query finds no failing rows.

    Attributes:
        name: the asset check's name, unique per model.
        kind: not_null, unique, accepted_values, relationships or sql.
        column: the tested column (None for a custom SQL test).
        options: `values` for accepted_values; `to` and `field` for relationships;
            `sql` for a custom test.
    """

    name: str
    kind: str
    column: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        if self.kind == "sql":
            return f"custom test: no row of `{self.options['sql'].strip()}`"
        if self.kind == "accepted_values":
            return f"{self.column} in {self.options['values']}"
        if self.kind == "relationships":
            return f"{self.column} found in {self.options['to']}.{self.options['field']}"
        return f"{self.column} {self.kind.replace('_', ' ')}"


@dataclass(frozen=True)
class SqlModel:
    """One model: its file, parsed SELECT, materialization, tests and the tables it reads."""

    name: str
    path: Path
    sql: str
    query: exp.Query
    materialized: str = "view"
    description: str | None = None
    tests: tuple[DataTest, ...] = ()
    reads: tuple[str, ...] = ()

    @property
    def file_name(self) -> str:
        return self.path.name


def default_models_dir() -> Path:
    """`CONNECTIONS_SQL_MODELS_DIR`, else `dbt_like_sql/` of the project (or the installed
    copy beside the package)."""
    configured = os.environ.get(MODELS_DIR_SETTING)
    if configured:
        return Path(configured)
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "dbt_like_sql", package / "dbt_like_sql"):
        if candidate.is_dir():
            return candidate
    return package.parent / "dbt_like_sql"


def parse_query(path: Path, sql: str) -> exp.Query:
    """The one SELECT of a model file, or SqlModelError naming the file."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=SOURCE_DIALECT) if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise SqlModelError(f"{path.name}: not valid {SOURCE_DIALECT} SQL: {exc}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise SqlModelError(f"{path.name}: must hold exactly one SELECT statement")
    return statements[0]


def tables_read(query: exp.Expression) -> tuple[str, ...]:
    """Names of the tables and views a query reads (its own CTEs excluded), sorted."""
    ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    return tuple(sorted({t.name for t in query.find_all(exp.Table) if t.name not in ctes}))


def load_models(models_dir: Path | None = None) -> list[SqlModel]:
    """Every model of `models_dir` (default: `default_models_dir()`), sorted by name.

    Raises:
        SqlModelError: a file name that is not a plain lowercase identifier, a file that is
            not one SELECT, or YAML settings that are unusable; the message names the file.
    """
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    if not folder.is_dir():
        raise SqlModelError(f"{MODELS_DIR_SETTING}: {folder} is not a folder")
    settings = _read_settings(folder)
    models = []
    for path in sorted(folder.glob("*.sql")):
        name = path.stem
        if not _NAME.fullmatch(name):
            raise SqlModelError(f"{path.name}: a model's file name must match {_NAME.pattern}")
        sql = path.read_text(encoding="utf-8")
        query = parse_query(path, sql)
        entry = settings.pop(name, None) or {}
        models.append(_model(path, sql, query, entry))
    if settings:
        raise SqlModelError(f"models.yml: settings for unknown models {sorted(settings)}")
    return models


def _read_settings(folder: Path) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SqlModelError(f"{path.name}: not valid YAML: {exc}") from None
        models = document.get("models") or {}
        if not isinstance(models, dict):
            raise SqlModelError(f"{path.name}: `models` must be a mapping of model names")
        for name, entry in models.items():
            if name in settings:
                raise SqlModelError(f"{path.name}: model {name!r} is configured twice")
            settings[name] = entry or {}
    return settings


def _model(path: Path, sql: str, query: exp.Query, entry: dict[str, Any]) -> SqlModel:
    materialized = entry.get("materialized", "view")
    if materialized not in MATERIALIZATIONS:
        raise SqlModelError(
            f"{path.name}: materialized must be one of {MATERIALIZATIONS}, got {materialized!r}"
        )
    tests = _tests(path, entry)
    names = [test.name for test in tests]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise SqlModelError(f"{path.name}: duplicate test names {duplicated}")
    return SqlModel(
        name=path.stem,
        path=path,
        sql=sql,
        query=query,
        materialized=materialized,
        description=entry.get("description"),
        tests=tuple(tests),
        reads=tables_read(query),
    )


def _check_name(*parts: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", "_".join(parts).lower()).strip("_")


def _tests(path: Path, entry: dict[str, Any]) -> list[DataTest]:
    tests = []
    for column, declared in (entry.get("columns") or {}).items():
        for item in declared or []:
            kind, options = (item, {}) if isinstance(item, str) else _single(path, item)
            if kind not in COLUMN_TESTS:
                raise SqlModelError(f"{path.name}: unknown test {kind!r} on {column!r}")
            if kind == "accepted_values" and not options.get("values"):
                raise SqlModelError(f"{path.name}: accepted_values on {column!r} needs values")
            if kind == "relationships" and not (options.get("to") and options.get("field")):
                raise SqlModelError(f"{path.name}: relationships on {column!r} needs to, field")
            tests.append(DataTest(_check_name(kind, str(column)), kind, str(column), options))
    for custom in entry.get("tests") or []:
        if not isinstance(custom, dict) or not custom.get("name") or not custom.get("sql"):
            raise SqlModelError(f"{path.name}: a custom test needs a name and sql")
        parse_query(path, custom["sql"])
        tests.append(DataTest(_check_name(custom["name"]), "sql", None, {"sql": custom["sql"]}))
    return tests


def _single(path: Path, item: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(item, dict) or len(item) != 1:
        raise SqlModelError(f"{path.name}: a test is a name or a one-key mapping, got {item!r}")
    [(kind, options)] = item.items()
    return kind, dict(options or {})
