"""Snowflake settings a user gets wrong fail at once, in one line naming the setting, and
never show the password: against a Snowflake emulator that checks logins as Snowflake does."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from snowflake_emulator import SnowflakeEmulator, serve_snowflake_emulator

from connections_pipeline.cli import EXIT_SETTING, main
from connections_pipeline.warehouse import Warehouse, WarehouseConnectionError

PASSWORD = "Sn0wPa55-w0rd"
USER = "loader"


@pytest.fixture(scope="module")
def guarded() -> Iterator[tuple[SnowflakeEmulator, str]]:
    with serve_snowflake_emulator(users={USER: PASSWORD}, warehouses={"LOAD_WH"}) as emulator:
        yield emulator, emulator.new_database()


def _refusal(url: str, connect_args: str) -> str:
    warehouse = Warehouse(url, connect_args=connect_args)
    try:
        with pytest.raises(WarehouseConnectionError) as raised:
            warehouse.check_connection()
    finally:
        warehouse.dispose()
    return str(raised.value)


def test_the_right_settings_connect(guarded: tuple[SnowflakeEmulator, str]) -> None:
    emulator, database = guarded
    url = f"snowflake://{USER}:{PASSWORD}@fakesnow/{database}?warehouse=LOAD_WH"
    warehouse = Warehouse(url, connect_args=emulator.connect_args)
    warehouse.check_connection()
    warehouse.dispose()


def test_a_wrong_password_names_the_setting_and_hides_the_password(
    guarded: tuple[SnowflakeEmulator, str],
) -> None:
    emulator, database = guarded
    wrong = "n0t-the-Passw0rd"
    url = f"snowflake://{USER}:{wrong}@fakesnow/{database}?warehouse=LOAD_WH"
    message = _refusal(url, emulator.connect_args)
    assert "CONNECTIONS_WAREHOUSE_URL" in message
    assert "user name or password" in message
    assert wrong not in message and "\n" not in message


def test_an_unknown_warehouse_is_refused_at_login(guarded: tuple[SnowflakeEmulator, str]) -> None:
    emulator, database = guarded
    url = f"snowflake://{USER}:{PASSWORD}@fakesnow/{database}?warehouse=NO_SUCH_WH"
    message = _refusal(url, emulator.connect_args)
    assert "CONNECTIONS_WAREHOUSE_URL" in message and "warehouse" in message
    assert PASSWORD not in message and "\n" not in message


def test_an_account_nobody_answers_for_fails_within_the_login_timeout() -> None:
    # The account's address does not answer: the connector gives up after login_timeout.
    closed = json.dumps({"host": "127.0.0.1", "port": 9, "protocol": "http"})
    message = _refusal(f"snowflake://{USER}:{PASSWORD}@nosuchaccount/db", closed)
    assert "CONNECTIONS_WAREHOUSE_URL" in message and "'nosuchaccount'" in message
    assert "unreachable" in message
    assert PASSWORD not in message and "\n" not in message


def test_run_with_a_wrong_password_exits_2_in_one_line(
    guarded: tuple[SnowflakeEmulator, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emulator, database = guarded
    wrong = "Wr0ng-Secret-value"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "5")
    monkeypatch.setenv(
        "CONNECTIONS_WAREHOUSE_URL", f"snowflake://{USER}:{wrong}@fakesnow/{database}"
    )
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_CONNECT_ARGS", emulator.connect_args)

    assert main(["run"]) == EXIT_SETTING

    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert "CONNECTIONS_WAREHOUSE_URL" in line and "user name or password" in line
    assert wrong not in captured.out + captured.err


def test_connect_args_that_are_not_a_json_object_are_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", "snowflake://u:pw@acct/db")
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_CONNECT_ARGS", '["private_key_file_pwd"]')

    assert main(["run"]) == EXIT_SETTING

    line = capsys.readouterr().err.strip()
    assert "CONNECTIONS_WAREHOUSE_CONNECT_ARGS must be a JSON object" in line
    assert "private_key_file_pwd" not in line
    assert not (tmp_path / "data").exists()
