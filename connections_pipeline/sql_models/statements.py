"""SQL text for building a model and running its tests, in the warehouse's dialect.

Models are written in Postgres' dialect with unqualified table names; sqlglot qualifies
every table a statement reads with the warehouse schema and transpiles it (DuckDB,
Snowflake).

Snowflake folds unquoted names to upper case where Postgres folds them to lower case, and
the warehouse creates its tables (and these models their relations) with unquoted names. So
for Snowflake every name Postgres would fold (unquoted, or quoted but plain lowercase) is
written unquoted, and only the others ("Company Name") stay quoted: a model reads and
creates the same objects on each database. Postgres' `EXTRACT(EPOCH FROM a - b)` becomes a
difference of epoch microseconds: Snowflake subtracts no timestamps, and its epoch seconds
are whole seconds.
"""

import re

import sqlglot
from sqlglot import exp

from connections_pipeline.sql_models.project import SOURCE_DIALECT, DataTest, SqlModel

_DIALECTS = {"postgresql": "postgres", "duckdb": "duckdb", "snowflake": "snowflake"}
_PLAIN_LOWER = re.compile(r"^[a-z_][a-z0-9_$]*$")
# Snowflake's reserved words (its documentation's list): a name Postgres folds that is one
# of these is quoted in upper case, which is the object an unquoted name would find.
_RESERVED_WORDS = """
    account all alter and any as between by case cast check column connect connection
    constraint create cross current current_date current_time current_timestamp current_user
    database delete distinct drop else exists false following for from full grant group
    gscluster having ilike in increment inner insert intersect into is issue join lateral
    left like localtime localtimestamp minus natural not null of on or order organization
    qualify regexp revoke right rlike row rows sample schema select set some start table
    tablesample then to trigger true try_cast union unique update using values view when
    whenever where with
"""
_SNOWFLAKE_RESERVED = frozenset(_RESERVED_WORDS.split())
_MICROSECONDS = 1_000_000


def _dialect(database: str) -> str:
    try:
        return _DIALECTS[database]
    except KeyError:
        raise ValueError(
            f"SQL models support DuckDB, PostgreSQL and Snowflake, not {database!r}"
        ) from None


def _snowflake_name(identifier: exp.Identifier) -> exp.Identifier:
    """The Snowflake identifier naming what `identifier` names on Postgres."""
    folded = identifier.name if identifier.quoted else identifier.name.lower()
    if not _PLAIN_LOWER.fullmatch(folded):
        return exp.to_identifier(folded, quoted=True)
    if folded in _SNOWFLAKE_RESERVED:
        return exp.to_identifier(folded.upper(), quoted=True)
    return exp.to_identifier(folded, quoted=False)


def _epoch_microseconds(value: exp.Expression) -> exp.Expression:
    return exp.Extract(this=exp.var("EPOCH_MICROSECOND"), expression=value)


def _snowflake_node(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Identifier):
        return _snowflake_name(node)
    if isinstance(node, exp.Extract) and node.this.name.upper() == "EPOCH":
        inner = node.expression.unnest()
        if isinstance(inner, exp.Sub):
            # Postgres: the seconds of the interval between two timestamps.
            micros: exp.Expression = exp.Sub(
                this=_epoch_microseconds(inner.this),
                expression=_epoch_microseconds(inner.expression),
            )
        else:
            micros = _epoch_microseconds(inner)
        return exp.paren(
            exp.Div(this=exp.paren(micros), expression=exp.Literal.number(_MICROSECONDS))
        )
    return node


def _to_sql(query: exp.Expression, database: str) -> str:
    if database == "snowflake":
        query = query.transform(_snowflake_node)
    return query.sql(dialect=_dialect(database), comments=False)


def qualified(query: exp.Expression, schema: str, database: str) -> str:
    """`query` with every unqualified table (not its CTEs) in `schema`, as `database` SQL."""
    query = query.copy()
    ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    for table in query.find_all(exp.Table):
        if not table.args.get("db") and table.name not in ctes:
            table.set("db", exp.to_identifier(schema, quoted=True))
    return _to_sql(query, database)


def build_statement(model: SqlModel, schema: str, database: str) -> str:
    """CREATE [OR REPLACE] VIEW / CREATE TABLE `schema.model` AS the model's SELECT.

    Snowflake replaces a table with CREATE OR REPLACE TABLE, one atomic statement (its DDL
    commits on its own, so a DROP and CREATE pair would show readers no table between)."""
    select = qualified(model.query, schema, database)
    target = relation(model.name, schema, database)
    if model.materialized == "view":
        return f"CREATE OR REPLACE VIEW {target} AS {select}"
    if database == "snowflake":
        return f"CREATE OR REPLACE TABLE {target} AS {select}"
    return f"CREATE TABLE {target} AS {select}"


def relation(name: str, schema: str, database: str = SOURCE_DIALECT) -> str:
    """`"schema"."name"` as `database` names it (Snowflake: unquoted when plain lowercase)."""
    table = exp.Table(
        this=exp.to_identifier(name, quoted=True), db=exp.to_identifier(schema, quoted=True)
    )
    if database == SOURCE_DIALECT:
        return table.sql(dialect=SOURCE_DIALECT)
    return _to_sql(table, database)


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
