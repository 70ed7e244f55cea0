"""The documentation's reference pages come from the code: every setting the code reads,
every column, every CLI option and every SQL model has an entry with a meaning, and the site
builds with no broken link."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from reference_pages import options, read_by, reference_pages

from connections_pipeline import warehouse
from connections_pipeline.cli import _parser
from connections_pipeline.setting_docs import SETTING_DOCS
from connections_pipeline.sql_models.project import load_models
from connections_pipeline.warehouse.columns import TABLE_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "connections_pipeline"
# A quoted upper-case name starting like a setting; the warehouse's own constant names
# (listed in its __all__) are code, not settings.
SETTING_NAME = re.compile(r"[\"']((?:CONNECTIONS|FINCH|DAGSTER)_[A-Z0-9_]+)[\"']")


def settings_in_code() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        found |= set(SETTING_NAME.findall(path.read_text(encoding="utf-8")))
    return found - set(warehouse.__all__)


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return reference_pages()


def test_every_setting_the_code_reads_has_a_meaning_and_a_reader(pages: dict[str, str]) -> None:
    read = settings_in_code()
    assert len(read) > 30  # the scan found the settings
    assert sorted(read - set(SETTING_DOCS)) == []
    for name in read:
        default, meaning = SETTING_DOCS[name]
        assert default and meaning, name
        assert read_by(name), f"{name}: which part reads it?"
        assert f"| `{name}` |" in pages["settings.md"]


def test_every_table_and_column_is_in_the_tables_page(pages: dict[str, str]) -> None:
    page = pages["tables.md"]
    for table, columns in TABLE_COLUMNS.items():
        section = page.split(f"## `{table}`", 1)[1].split("\n## ", 1)[0]
        for column in columns:
            assert column.description, f"{table}.{column.name} has no description"
            assert f"| `{column.name}` |" in section, f"{table}.{column.name}"


def test_every_cli_option_has_help_and_is_in_the_cli_page(pages: dict[str, str]) -> None:
    commands = 0
    for line in pages["cli.md"].splitlines():
        commands += line.startswith("## `connections-pipeline ")
    assert commands >= 5  # run, connect-link, webhooks serve, notify test, ...
    parser = _parser()
    stack = [parser]
    while stack:
        current = stack.pop()
        for flag, text in options(current):
            assert text, f"{current.prog}: {flag} has no help"
            assert f"| `{flag}` |" in pages["cli.md"]
        for action in current._actions:
            if isinstance(getattr(action, "choices", None), dict):
                stack += list(action.choices.values())


def test_every_sql_model_and_test_is_in_its_page(pages: dict[str, str]) -> None:
    models = load_models()
    assert models
    for model in models:
        assert f"## `{model.name}`" in pages["sql-models.md"]
        assert model.description, f"{model.name} has no description"
        for test in model.tests:
            assert f"| {test.name} |" in pages["sql-models.md"]


def test_every_emulator_route_and_option_says_what_it_does(pages: dict[str, str]) -> None:
    lines = pages["emulator.md"].splitlines()
    routes = [line for line in lines if line.startswith("| `") and "/_sandbox/" in line]
    flags = [line for line in lines if line.startswith("| `--")]
    assert len(routes) >= 10 and "| `--error-rate` |" in pages["emulator.md"]
    assert [line for line in routes + flags if line.endswith("|  |")] == []


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    # A broken link, a page missing from the navigation or a failing generator fails it.
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    assert (tmp_path / "reference" / "settings" / "index.html").is_file()
    settings_page = tmp_path / "reference" / "settings" / "index.html"
    assert "CONNECTIONS_NOTIFY_RUNS" in settings_page.read_text(encoding="utf-8")


def test_readme_is_the_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
