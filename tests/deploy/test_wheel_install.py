"""The built wheel is enough: installed in a fresh venv, run from an empty folder, it loads
the code location (SQL models included) and `connections-pipeline run` works."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_SOURCES = (
    ".git",
    ".venv",
    "build",
    "data",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)

pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv holding only the wheel; the python and the environment to run it with.

    The wheel's dependencies come from this test environment's site-packages, added to the
    venv's path as a plain folder: its .pth files (this checkout's editable install among
    them) are not processed, so `connections_pipeline` can only come from the wheel.
    """
    root = tmp_path_factory.mktemp("wheel")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DAGSTER_", "CONNECTIONS_", "FINCH_", "PYTHON"))
    }
    # Built as a user would (build isolation, pip's cache), from a copy of the checkout: an
    # in-tree build leaves a build/ folder whose stale files a later wheel would ship.
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    _run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(root), "-q"],
        cwd=root,
        env=env,
    )
    [wheel] = root.glob("connections_pipeline-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    models = {
        f"connections_pipeline/dbt_like_sql/{p.name}" for p in (REPO / "dbt_like_sql").iterdir()
    }
    assert models <= shipped

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root, env=env)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            root,
            env,
        ).strip()
    )
    (site / "test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        cwd=root,
        env=env,
    )
    return python, env


def test_the_installed_wheel_finds_its_own_sql_models(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    python, env = installed
    where = _run(
        [
            str(python),
            "-c",
            "import connections_pipeline; from connections_pipeline.sql_models.project import "
            "default_models_dir; print(connections_pipeline.__file__); print(default_models_dir())",
        ],
        cwd=tmp_path,
        env=env,
    ).split()
    venv = python.parent.parent
    assert all(Path(path).is_relative_to(venv) for path in where), where

    # CONNECTIONS_SQL_MODELS_DIR still points elsewhere.
    own = tmp_path / "models"
    own.mkdir()
    (own / "live_only.sql").write_text("select * from finch_connections where state = 'live'\n")
    keys = _run(
        [
            str(python),
            "-c",
            "from connections_pipeline.definitions import defs; "
            "g = defs().resolve_asset_graph(); "
            "print(sorted(k.to_user_string() for k in g.get_all_asset_keys() "
            "if g.get(k).group_name == 'sql_models'))",
        ],
        cwd=tmp_path,
        env={**env, "CONNECTIONS_SQL_MODELS_DIR": str(own)},
    )
    assert keys.strip() == "['live_only']"


def test_run_and_the_sql_models_work_from_an_empty_folder(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    python, env = installed
    env = {**env, "CONNECTIONS_SANDBOX_CONNECTIONS": "30"}
    printed = _run([str(python.parent / "connections-pipeline"), "run"], cwd=tmp_path, env=env)
    assert f"duckdb:///{tmp_path / 'data' / 'connections.duckdb'}" in printed
    assert sorted(p.name for p in (tmp_path / "data" / "exports").glob("*_latest.csv")) == [
        f"connections_{state}_latest.csv" for state in ("disconnected", "live", "staged")
    ]

    # The models the wheel carries build against that warehouse.
    _run(
        [
            str(python),
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "connections_pipeline.definitions",
            "--select",
            "group:sql_models",
        ],
        cwd=tmp_path,
        env={**env, "DAGSTER_HOME": str(tmp_path / "data" / "dagster_home")},
    )
    with duckdb.connect(str(tmp_path / "data" / "connections.duckdb"), read_only=True) as db:
        [(views,)] = db.execute(
            "select count(*) from duckdb_views() where schema_name = 'finch'"
        ).fetchall()
        [(rows,)] = db.execute("select count(*) from finch.connections").fetchall()
    assert views >= 1 and rows > 0
