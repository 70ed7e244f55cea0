"""SQL models for BI (`dbt_like_sql/`): discovery, settings, dependencies and statements.

Pure: reads the model files and builds SQL text; `warehouse.sql_models` executes it.
"""

from connections_pipeline.sql_models.project import (
    MODELS_DIR_SETTING,
    SOURCE_DIALECT,
    DataTest,
    SqlModel,
    SqlModelError,
    default_models_dir,
    load_models,
)
from connections_pipeline.sql_models.statements import (
    build_statement,
    check_statement,
    qualified,
)

__all__ = [
    "MODELS_DIR_SETTING",
    "SOURCE_DIALECT",
    "DataTest",
    "SqlModel",
    "SqlModelError",
    "build_statement",
    "check_statement",
    "default_models_dir",
    "load_models",
    "qualified",
]
