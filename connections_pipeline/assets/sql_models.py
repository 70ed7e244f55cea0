"""The `dbt_like_sql/` models as Dagster assets: one asset per model, one check per test.

One asset per model (not one multi-asset) so that a broken model fails only its own step:
Dagster skips the models downstream of it and still builds the others. Dependencies come
from parsing each model's SQL with sqlglot: a `finch_*` table is the sync's asset of that
name, another model's name is that model's asset. Each model's columns (names, types, and
the registry's description of each column it passes through) are resolved from its SQL.
"""

from pathlib import Path

import dagster as dg

from connections_pipeline.assets.failures import opened_warehouse
from connections_pipeline.assets.table_schemas import COLUMN_SCHEMA
from connections_pipeline.automation import AFTER_UPSTREAM
from connections_pipeline.resources import WarehouseResource
from connections_pipeline.sql_models import SqlModel, load_models
from connections_pipeline.sql_models.columns import ModelColumn, model_columns
from connections_pipeline.warehouse.columns import TABLE_COLUMNS
from connections_pipeline.warehouse.sql_models import SqlModelRunError, build_model, failing_rows

SQL_MODELS_GROUP = "sql_models"


def sql_model_assets(models_dir: Path | None = None) -> list[dg.AssetsDefinition]:
    """One asset per `.sql` file of `models_dir` (default: `dbt_like_sql/`).

    Raises:
        SqlModelError: a model file or its YAML settings are unusable (names the file).
    """
    models = load_models(models_dir)
    names = {model.name for model in models}
    columns = model_columns(models, TABLE_COLUMNS)
    return [_model_asset(model, names, columns[model.name]) for model in models]


def _column_schema(columns: tuple[ModelColumn, ...]) -> dict[str, dg.TableSchema]:
    """The model's columns for the UI, when sqlglot could resolve them from its SQL."""
    if not columns:
        return {}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(column.name, column.type, description=column.description)
            for column in columns
        ]
    )
    return {COLUMN_SCHEMA: schema}


def _model_asset(
    model: SqlModel, model_names: set[str], columns: tuple[ModelColumn, ...]
) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(name) for name in model.reads if name != model.name]
    check_specs = [
        dg.AssetCheckSpec(
            test.name,
            asset=model.name,
            description=f"{model.file_name}: {test.description}",
            blocking=True,
        )
        for test in model.tests
    ]

    @dg.asset(
        name=model.name,
        group_name=SQL_MODELS_GROUP,
        description=model.description or f"SQL model {model.file_name}",
        deps=deps,
        check_specs=check_specs,
        kinds={"sql"},
        # Rebuilt after each sync (and after the models it reads), not on a schedule of its own.
        automation_condition=AFTER_UPSTREAM,
        # A DuckDB file takes one writer at a time: models built in parallel steps wait for
        # the lock by retrying (WarehouseConnectionError); SQL errors fail once (dg.Failure).
        retry_policy=dg.RetryPolicy(
            max_retries=6, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        metadata={
            "file": model.file_name,
            "materialized": model.materialized,
            "reads": ", ".join(model.reads),
            "reads_models": ", ".join(name for name in model.reads if name in model_names),
            **_column_schema(columns),
        },
    )
    def _build(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        with opened_warehouse(warehouse) as store:
            try:
                built = build_model(store, model)
            except SqlModelRunError as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            context.log.info(
                "Built %s %s from %s: %d rows",
                model.materialized,
                built.relation,
                model.file_name,
                built.rows,
            )
            results = []
            for test in model.tests:
                try:
                    failing, error = failing_rows(store, model, test), None
                except SqlModelRunError as exc:
                    failing, error = None, str(exc)
                metadata = {"file": model.file_name, "failing_rows": failing}
                if error:
                    metadata["error"] = error
                results.append(
                    dg.AssetCheckResult(
                        check_name=test.name,
                        asset_key=model.name,
                        passed=failing == 0,
                        severity=dg.AssetCheckSeverity.ERROR,
                        description=error
                        or f"{model.file_name}: {failing} failing rows ({test.description})",
                        metadata=metadata,
                    )
                )
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": built.rows,
                "relation": built.relation,
                "materialized": model.materialized,
                "sql": dg.MetadataValue.md(f"```sql\n{built.statement}\n```"),
            }
        )
        yield from results

    return _build
