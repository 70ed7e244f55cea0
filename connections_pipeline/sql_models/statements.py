"""SQL text for building a model and running its tests, in the warehouse's dialect.

Models are written in Postgres' dialect with unqualified table names; sqlglot qualifies
every table a statement reads with the warehouse schema and transpiles it (DuckDB).
"""

import sqlglot
from sqlglot import exp

from connections_pipeline.sql_models.project import SOURCE_DIALECT, DataTest, SqlModel

_DIALECTS = {"postgresql": "postgres", "duckdb": "duckdb"}


def _dialect(database: str) -> str:
    try:
        return _DIALECTS[database]
    except KeyError:
        raise ValueError(f"SQL models support DuckDB and PostgreSQL, not {database!r}") from None


def qualified(query: exp.Expression, schema: str, database: str) -> str:
    """`query` with every unqualified table (not its CTEs) in `schema`, as `database` SQL."""
    query = query.copy()
    ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    for table in query.find_all(exp.Table):
        if not table.args.get("db") and table.name not in ctes:
            table.set("db", exp.to_identifier(schema, quoted=True))
    return query.sql(dialect=_dialect(database), comments=False)


def build_statement(model: SqlModel, schema: str, database: str) -> str:
    """CREATE [OR REPLACE] VIEW / CREATE TABLE `schema.model` AS the model's SELECT."""
    select = qualified(model.query, schema, database)
    if model.materialized == "view":
        return f"CREATE OR REPLACE VIEW {relation(model.name, schema)} AS {select}"
    return f"CREATE TABLE {relation(model.name, schema)} AS {select}"


def relation(name: str, schema: str) -> str:
    """`"schema"."name"`, quoted alike on both databases."""
    return f"{_ident(schema)}.{_ident(name)}"


def _ident(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect=SOURCE_DIALECT)


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return exp.Literal.string(str(value)).sql(dialect=SOURCE_DIALECT)


def failing_rows_query(model: SqlModel, test: DataTest) -> str:
    """The test as a Postgres-dialect SELECT of its failing rows (unqualified tables)."""
    relation = model.name
    if test.kind == "sql":
        return test.options["sql"]
    column = _ident(test.column)
    if test.kind == "not_null":
        return f"SELECT * FROM {relation} WHERE {column} IS NULL"
    if test.kind == "unique":
        return (
            f"SELECT {column} FROM {relation} WHERE {column} IS NOT NULL "
            f"GROUP BY {column} HAVING COUNT(*) > 1"
        )
    if test.kind == "accepted_values":
        values = ", ".join(_literal(value) for value in test.options["values"])
        return f"SELECT * FROM {relation} WHERE {column} IS NOT NULL AND {column} NOT IN ({values})"
    if test.kind == "relationships":
        target, field = test.options["to"], _ident(test.options["field"])
        return (
            f"SELECT * FROM {relation} AS child WHERE child.{column} IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {target} AS parent "
            f"WHERE parent.{field} = child.{column})"
        )
    raise ValueError(f"unknown test kind {test.kind!r}")


def check_statement(model: SqlModel, test: DataTest, schema: str, database: str) -> str:
    """SELECT COUNT(*) of the test's failing rows, qualified and in `database`'s dialect."""
    inner = sqlglot.parse_one(failing_rows_query(model, test), read=SOURCE_DIALECT)
    counted = exp.select(exp.Count(this=exp.Star())).from_(inner.subquery("failing"))
    return qualified(counted, schema, database)
