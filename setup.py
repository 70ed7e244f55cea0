"""Package layout that pyproject.toml cannot express: `dbt_like_sql/` inside the wheel.

The distribution ships two packages: `connections_pipeline` and the Finch emulator,
`finch_sandbox`, which the embedded default runs in-process.

The SQL models stay at the repository's root, where people edit them; an installed package
(a wheel, `pip install .`, a container image) carries them as `connections_pipeline/dbt_like_sql/`,
where `sql_models.project.default_models_dir` finds them.
"""

from setuptools import find_packages, setup

MODELS_PACKAGE = "connections_pipeline.dbt_like_sql"

setup(
    packages=[
        *find_packages(include=["connections_pipeline*", "finch_sandbox*"]),
        MODELS_PACKAGE,
    ],
    package_dir={MODELS_PACKAGE: "dbt_like_sql"},
    package_data={
        MODELS_PACKAGE: ["*.sql", "*.yml", "*.yaml"],
        # the HTML report's template, style and script
        "connections_pipeline.export": ["templates/*"],
    },
)
