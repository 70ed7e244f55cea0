"""The instance's Postgres URL: README's form is accepted, forms dagster-postgres cannot use
are refused when the code location loads, in one line naming the setting and the fix."""

from pathlib import Path

import pytest
import yaml
from deploy_helpers import INSTANCE_CONFIG, readme_instance_url_scheme

from connections_pipeline.cli import main
from connections_pipeline.definitions import defs
from connections_pipeline.settings import INSTANCE_URL_SETTING, SettingError


def test_readme_shows_the_form_the_code_location_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    scheme = readme_instance_url_scheme()
    assert scheme == "postgresql+psycopg2"
    monkeypatch.setenv(INSTANCE_URL_SETTING, f"{scheme}://dagster:pw@db.internal:5432/dagster")
    assert defs().resolve_job_def("sync_connections")


@pytest.mark.parametrize(
    "url",
    [
        # SQLAlchemy 2.1 picks psycopg 3 for these; dagster-postgres then fails on NOTIFY.
        "postgresql://dagster:pw-secret@db.internal:5432/dagster",
        "postgresql+psycopg://dagster:pw-secret@db.internal/dagster",
        "postgres://dagster:pw-secret@db.internal/dagster",
        "not a url pw-secret",
    ],
)
def test_a_url_dagster_postgres_cannot_use_is_refused(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INSTANCE_URL_SETTING, url)
    with pytest.raises(SettingError) as refused:
        defs()
    message = str(refused.value)
    assert message.startswith(INSTANCE_URL_SETTING)
    assert "postgresql+psycopg2://" in message
    assert "pw-secret" not in message and "\n" not in message


def test_run_refuses_it_in_one_line_before_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv(INSTANCE_URL_SETTING, "postgresql://dagster:pw-secret@db/dagster")

    assert main(["run"]) == 2

    error = capsys.readouterr().err
    assert error.startswith(f"run: {INSTANCE_URL_SETTING}") and error.count("\n") == 1
    assert "pw-secret" not in error
    assert not (tmp_path / "data" / "connections.duckdb").exists()


def test_the_shipped_instance_config_bounds_finch_and_fails_killed_runs() -> None:
    config = yaml.safe_load(INSTANCE_CONFIG.read_text())
    storage = config["storage"]["postgres"]["postgres_url"]
    assert storage == {"env": INSTANCE_URL_SETTING}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    pools = config["concurrency"]["pools"]
    # The pool's limit, and enforced by the step itself: runs outside the queue included.
    assert pools["default_limit"] == 1 and pools["granularity"] == "op"
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] and monitoring["max_resume_run_attempts"] == 0
    assert monitoring["free_slots_after_run_end_seconds"] > 0
    assert monitoring["max_runtime_seconds"] > 0
