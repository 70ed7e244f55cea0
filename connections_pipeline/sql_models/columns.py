"""The columns each SQL model returns, worked out from its SQL before anything runs.

sqlglot resolves every model's SELECT against the warehouse tables' column registry (and
the columns of the models it reads), so each model's column names and types are known when
the code location loads. A column passed through from a table or another model keeps that
column's description; a computed one says which file computes it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope

from connections_pipeline.sql_models.project import SOURCE_DIALECT, SqlModel
from connections_pipeline.warehouse.columns import Column


@dataclass(frozen=True)
class ModelColumn:
    """One column a model returns: its name, SQL type (lowercase) and description."""

    name: str
    type: str
    description: str


def _sql_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamptz"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "double precision"
    return "text"


def model_columns(
    models: Sequence[SqlModel], tables: Mapping[str, Sequence[Column]]
) -> dict[str, tuple[ModelColumn, ...]]:
    """Each model's columns, by model name; a model whose columns cannot be resolved
    (it reads a table the registry does not know, say) maps to an empty tuple."""
    known: dict[str, tuple[ModelColumn, ...]] = {
        name: tuple(ModelColumn(c.name, _sql_type(c.dtype), c.description) for c in columns)
        for name, columns in tables.items()
    }
    found: dict[str, tuple[ModelColumn, ...]] = {}
    pending = list(models)
    while pending:
        ready = [model for model in pending if all(name in known for name in model.reads)]
        for model in ready or pending:
            columns = _resolve(model, known) if ready else ()
            found[model.name] = known[model.name] = columns
            pending.remove(model)
    return found


def _resolve(
    model: SqlModel, known: Mapping[str, tuple[ModelColumn, ...]]
) -> tuple[ModelColumn, ...]:
    schema = {name: {c.name: c.type for c in columns} for name, columns in known.items()}
    try:
        query = qualify(
            model.query.copy(),
            schema=schema,
            dialect=SOURCE_DIALECT,
            validate_qualify_columns=True,
        )
        query = annotate_types(query, schema=schema, dialect=SOURCE_DIALECT)
        scope = build_scope(query)
    except (sqlglot.errors.SqlglotError, ValueError, KeyError):
        return ()
    described = {name: {c.name: c.description for c in columns} for name, columns in known.items()}
    columns = []
    for select in query.selects:
        kind = select.type.sql(SOURCE_DIALECT).lower() if select.type else "unknown"
        columns.append(
            ModelColumn(select.alias_or_name, kind, _description(select, scope, described, model))
        )
    return tuple(columns)


def _description(
    select: exp.Expression,
    scope: object,
    described: Mapping[str, Mapping[str, str]],
    model: SqlModel,
) -> str:
    """The description of the table column `select` passes through, if it does."""
    inner = select.unalias()
    if isinstance(inner, exp.Column) and scope is not None:
        source = scope.sources.get(inner.table)
        if isinstance(source, exp.Table) and inner.name in described.get(source.name, {}):
            return described[source.name][inner.name]
    return f"Computed in {model.file_name}"
