"""The duplicate-link guard sees through what a person cannot: case, width, invisible marks.

After a link for `REDTEAM-1`, ids that look the same to a person (`redteam-1` + U+200B,
full-width `REDTEAM-1`) are the same customer; an id of invisible characters only is
refused. Against the emulator and a real ledger on DuckDB and PostgreSQL, and from the CLI.
"""

import itertools
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from link_helpers import embedded, link_request

from connections_pipeline.cli import main
from connections_pipeline.connect_links import (
    ConnectLinkError,
    check_request,
    create_connect_link,
    customer_key,
    request_body,
)
from connections_pipeline.connect_links.request import ledger_row, normalized
from connections_pipeline.warehouse import Warehouse

FIRST = "REDTEAM-1"
# Each looks like REDTEAM-1 to a person; before NFKC and invisible-character removal, each
# created a second link.
LOOKALIKES = [
    "redteam-1\u200b",  # zero-width space
    "\ufeffREDTEAM-1",  # byte-order mark
    "RED\u00adTEAM-1",  # soft hyphen
    "RED\u2060TEAM\u200d-1",  # word joiner, zero-width joiner
    "\u202aREDTEAM-1\u202c",  # bidi embedding
    "REDTEAM-1\ufe0f",  # variation selector (default-ignorable, not a format character)
    "\uff32\uff25\uff24\uff34\uff25\uff21\uff2d-1",  # full-width letters
    "\uff52\uff45\uff44\uff54\uff45\uff41\uff4d\uff0d\uff11",  # full-width, hyphen, digit
    "\u00a0RedTeam-1\u3000",  # no-break and ideographic spaces
]
INVISIBLE_ONLY = ["\u200b", "\ufeff\u200b\u200d", " \u2060 ", "\u3164", "\u00ad\ufe0f"]
SEEDS = itertools.count(2101)


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_lookalike_ids_share_the_customer_key(lookalike: str) -> None:
    assert customer_key(lookalike) == customer_key(FIRST) == "redteam-1"


@pytest.mark.parametrize("other", ["REDTEAM-2", "REDTEAM-11", "RED TEAM-1", "REDTEAM_1"])
def test_ids_that_differ_visibly_keep_apart(other: str) -> None:
    assert customer_key(other) != customer_key(FIRST)


@pytest.mark.parametrize("field", ["customer_id", "customer_name"])
@pytest.mark.parametrize("value", INVISIBLE_ONLY)
def test_an_id_or_name_of_invisible_characters_only_is_refused(field: str, value: str) -> None:
    with pytest.raises(ConnectLinkError, match=f"{field} must hold a visible character"):
        check_request(link_request(**{field: value}))


def test_finch_gets_the_id_as_typed_only_trimmed() -> None:
    # Finch hands the id back with the token; the application matches it as it typed it.
    request = normalized(link_request(customer_id=" \uff32\uff25\uff24-1 "))
    assert request_body(request)["customer_id"] == "\uff32\uff25\uff24-1"


@pytest.fixture(params=["duckdb", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """An empty session ledger on DuckDB or on the real PostgreSQL (a schema of its own)."""
    if request.param == "duckdb":
        warehouse = Warehouse(f"duckdb:///{tmp_path / 'links.duckdb'}", schema="finch")
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        warehouse = Warehouse(postgres_url, schema=f"links_{secrets.token_hex(5)}")
    warehouse.ensure_tables()
    yield warehouse
    warehouse.dispose()


@pytest.mark.slow
def test_lookalikes_of_an_open_link_create_no_second_link(
    tmp_path: Path, ledger: Warehouse
) -> None:
    finch, _, _ = embedded(tmp_path, seed=next(SEEDS))
    first = create_connect_link(link_request(customer_id=FIRST), finch, ledger)
    before = ledger.read_sessions()
    at_finch = len(finch.sandbox().sessions())
    for lookalike in LOOKALIKES:
        with pytest.raises(ConnectLinkError, match=f"active Connect session {first.session_id}"):
            create_connect_link(link_request(customer_id=lookalike), finch, ledger)
    assert ledger.read_sessions().equals(before)
    assert len(finch.sandbox().sessions()) == at_finch


@pytest.mark.slow
def test_a_ledger_row_written_before_the_rule_is_compared_by_it(
    tmp_path: Path, ledger: Warehouse
) -> None:
    finch, _, _ = embedded(tmp_path, seed=next(SEEDS))
    # Stored as typed, full-width, by a version whose guard only trimmed and case-folded.
    stored = "\uff32\uff25\uff24\uff34\uff25\uff21\uff2d-1"
    old = normalized(link_request(customer_id=stored))
    link = {"session_id": "s-old", "connect_url": "https://connect.example/s-old"}
    ledger.import_sessions(ledger_row(old, link, finch.sandbox().now))
    at_finch = len(finch.sandbox().sessions())
    with pytest.raises(ConnectLinkError, match="active Connect session s-old"):
        create_connect_link(link_request(customer_id="redteam-1\u200b"), finch, ledger)
    assert ledger.read_sessions()["customer_id"].to_list() == [stored]
    assert len(finch.sandbox().sessions()) == at_finch


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings for the embedded emulator (a seed of its own) and a DuckDB file in tmp."""
    database = tmp_path / "cli.duckdb"
    for name in ("FINCH_BASE_URL", "FINCH_CLIENT_ID", "FINCH_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", f"duckdb:///{database}")
    monkeypatch.setenv("CONNECTIONS_SANDBOX_SEED", str(next(SEEDS)))
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "30")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return database


def _link_args(customer_id: str) -> list[str]:
    return [
        "connect-link",
        "--customer-id",
        customer_id,
        "--customer-name",
        "Red Team Co",
        "--products",
        "company",
        "--redirect-uri",
        "https://app.example.com/cb",
    ]


def _ledger_ids(database: Path) -> list[str]:
    with Warehouse(f"duckdb:///{database}") as warehouse:
        warehouse.ensure_tables()
        return warehouse.read_sessions()["customer_id"].to_list()


@pytest.mark.slow
def test_cli_refuses_lookalikes_and_invisible_ids_in_one_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_link_args(FIRST)) == 0
    capsys.readouterr()
    for lookalike in ("redteam-1\u200b", "\uff32\uff25\uff24\uff34\uff25\uff21\uff2d-1"):
        assert main(_link_args(lookalike)) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith("connect-link: ") and "already has an active Connect" in line
    assert main(_link_args("\u200b\ufeff")) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "customer_id must hold a visible character" in line
    assert _ledger_ids(cli_env) == [FIRST]
