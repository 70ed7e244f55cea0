"""Imports point one way: the Dagster layer on top, plain code below it, the emulator apart.

Read from the source files' syntax trees, so a forbidden import anywhere in a module (inside
a function too) fails here, not in production.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "connections_pipeline"
SANDBOX = ROOT / "finch_sandbox"

# Plain code: domain rules, I/O adapters, use cases. None of it may know Dagster.
BELOW_DAGSTER = (
    "concepts.py",
    "redaction.py",
    "transform",
    "finch",
    "warehouse",
    "sources",
    "export",
    "sync",
    "connect_links",
    "sql_models",
    "webhooks",
)
# The Dagster layer (and the CLI on top of it): nothing below may import these.
DAGSTER_LAYER = (
    "connections_pipeline.assets",
    "connections_pipeline.resources",
    "connections_pipeline.definitions",
    "connections_pipeline.settings",
    "connections_pipeline.automation",
    "connections_pipeline.pools",
    "connections_pipeline.partitions",
    "connections_pipeline.cli",
    "connections_pipeline.run_log",
    "connections_pipeline.run_summary",
    "connections_pipeline.webhook_sensor",
)
# Pure domain: no I/O library, no adapter (the column registry is plain data).
DOMAIN_FORBIDDEN = (
    "sqlalchemy",
    "httpx",
    "aiohttp",
    "fsspec",
    "duckdb",
    "psycopg",
    "snowflake",
    "connections_pipeline.finch",
    "connections_pipeline.sources",
    "connections_pipeline.export",
    "connections_pipeline.sync",
    "connections_pipeline.connect_links",
    "connections_pipeline.warehouse.engine",
    "connections_pipeline.warehouse.bulk",
    "connections_pipeline.warehouse.dialects",
    "connections_pipeline.warehouse.load",
    "connections_pipeline.warehouse.warehouse",
    "connections_pipeline.warehouse.tables",
)
# The only module through which the pipeline uses the emulator.
EMBEDDED_FINCH = PACKAGE / "resources" / "embedded_finch.py"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved."""
    package = (
        _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else (_module_name(path))
    )
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(f"{prefix}.") for prefix in prefixes)


def _files(*places: str, root: Path = PACKAGE) -> list[Path]:
    files: list[Path] = []
    for place in places:
        target = root / place
        files += [target] if target.is_file() else sorted(target.rglob("*.py"))
    return files


@pytest.mark.parametrize("path", _files(*BELOW_DAGSTER), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_below_the_dagster_layer_imports_dagster_or_that_layer(path: Path) -> None:
    forbidden = [
        module
        for module in imports_of(path)
        if _within(module, ("dagster", "dagster_postgres", *DAGSTER_LAYER))
    ]
    assert forbidden == []


@pytest.mark.parametrize("path", _files("transform"), ids=lambda p: p.name)
def test_the_domain_does_no_io(path: Path) -> None:
    assert [m for m in imports_of(path) if _within(m, DOMAIN_FORBIDDEN)] == []


@pytest.mark.parametrize("path", _files(".", root=SANDBOX), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_emulator_imports_nothing_from_the_pipeline(path: Path) -> None:
    assert [m for m in imports_of(path) if _within(m, ("connections_pipeline",))] == []


def test_only_the_embedded_finch_factory_imports_the_emulator() -> None:
    users = [
        path
        for path in _files(".")
        if any(_within(module, ("finch_sandbox",)) for module in imports_of(path))
    ]
    assert users == [EMBEDDED_FINCH]


def test_the_import_reader_resolves_relative_imports(tmp_path: Path) -> None:
    # The rules above are only as good as the reader they rest on.
    sample = PACKAGE / "sync" / "run.py"
    modules = imports_of(sample)
    assert "connections_pipeline.finch.access.FinchAccess" in modules
    assert "polars" in modules
    sandbox_module = next(iter(_files("emulator.py", root=SANDBOX)), None)
    if sandbox_module is not None:
        assert "finch_sandbox.config" in imports_of(sandbox_module)
