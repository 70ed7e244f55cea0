"""Runs the `dbt_like_sql/` models: builds each model's relation and counts test failures.

A view is replaced with CREATE OR REPLACE VIEW (views reading it keep working on
PostgreSQL); a table is dropped and created again. Either way in one transaction, so a
reader sees the previous relation or the new one, and a failed build leaves the previous one.
Snowflake commits each DDL statement on its own: there a table is replaced by one CREATE OR
REPLACE TABLE, as atomic for its readers; only a switch between view and table drops first.
"""

from dataclasses import dataclass

import sqlalchemy as sa

from connections_pipeline.sql_models import (
    DataTest,
    SqlModel,
    build_statement,
    check_statement,
)
from connections_pipeline.sql_models.statements import relation
from connections_pipeline.warehouse.warehouse import Warehouse


class SqlModelRunError(RuntimeError):
    """A model or a test failed in the database; the message names the model's file and
    carries the database's own message."""


@dataclass(frozen=True)
class BuiltModel:
    name: str
    relation: str
    materialized: str
    rows: int
    statement: str


def database_message(exc: sa.exc.DBAPIError) -> str:
    """The driver's message, without SQLAlchemy's echo of the statement."""
    return str(exc.orig).strip()


def _stored_name(connection: sa.Connection, name: str) -> str:
    """`name` as the catalog holds it: Snowflake keeps unquoted (plain lowercase) names in
    upper case."""
    dialect = connection.dialect
    return dialect.denormalize_name(name) if dialect.requires_name_normalize else name


def _existing_kind(connection: sa.Connection, schema: str, name: str) -> str | None:
    """ "view", "table" or None. information_schema.views first: the Snowflake emulator
    (fakesnow) lists no view in information_schema.tables, as the other databases do."""
    names = {"schema": _stored_name(connection, schema), "name": _stored_name(connection, name)}
    for kind, catalog in (("view", "views"), ("table", "tables")):
        found = connection.execute(
            sa.text(
                f"SELECT COUNT(*) FROM information_schema.{catalog} "
                "WHERE table_schema = :schema AND table_name = :name"
            ),
            names,
        ).scalar_one()
        if found:
            return kind
    return None


def _create(connection: sa.Connection, statement: str, target: str, replaces_view: bool) -> None:
    if not (replaces_view and connection.dialect.name == "postgresql"):
        connection.exec_driver_sql(statement)
        return
    # PostgreSQL replaces a view only when its columns keep their names and order; when
    # they changed, drop and create the view instead (still in this transaction).
    try:
        with connection.begin_nested():
            connection.exec_driver_sql(statement)
    except sa.exc.ProgrammingError:
        connection.execute(sa.text(f"DROP VIEW {target}"))
        connection.exec_driver_sql(statement.replace("CREATE OR REPLACE VIEW", "CREATE VIEW", 1))


def build_model(warehouse: Warehouse, model: SqlModel) -> BuiltModel:
    """Create or replace the model's relation in the warehouse schema.

    Raises:
        SqlModelRunError: the database refused the model; names the file.
    """
    statement = build_statement(model, warehouse.schema, warehouse.dialect)
    target = relation(model.name, warehouse.schema, warehouse.dialect)
    # Snowflake replaces a table by CREATE OR REPLACE TABLE (build_statement).
    replaces_table = warehouse.dialect == "snowflake" and model.materialized == "table"
    try:
        # No load runs here: the warehouse's per-session load setup is not needed.
        with warehouse._connect(transaction=False) as connection, connection.begin():
            existing = _existing_kind(connection, warehouse.schema, model.name)
            if existing == "table" and not replaces_table:
                connection.execute(sa.text(f"DROP TABLE {target}"))
            elif existing == "view" and model.materialized == "table":
                connection.execute(sa.text(f"DROP VIEW {target}"))
            replaces_view = existing == "view" and model.materialized == "view"
            _create(connection, statement, target, replaces_view)
            rows = connection.execute(sa.text(f"SELECT COUNT(*) FROM {target}")).scalar_one()
    except sa.exc.DBAPIError as exc:
        raise SqlModelRunError(
            f"{model.file_name}: {warehouse.dialect} refused the model: {database_message(exc)}"
        ) from None
    return BuiltModel(model.name, target, model.materialized, int(rows), statement)


def failing_rows(warehouse: Warehouse, model: SqlModel, test: DataTest) -> int:
    """How many rows fail the test (0 = passed).

    Raises:
        SqlModelRunError: the test's query itself failed; names the file and the test.
    """
    statement = check_statement(model, test, warehouse.schema, warehouse.dialect)
    try:
        with warehouse._connect(transaction=False) as connection:
            return int(connection.exec_driver_sql(statement).scalar_one())
    except sa.exc.DBAPIError as exc:
        raise SqlModelRunError(
            f"{model.file_name}: test {test.name} failed to run: {database_message(exc)}"
        ) from None
