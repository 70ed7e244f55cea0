"""`connections-pipeline run` with notifications set, as a person runs it: the Finch emulator
served over HTTP, the messages going to real receivers on loopback (an HTTP server for JSON
webhooks, an SMTP server for email). What the receivers got is compared with the emulator's
own truth, never with what the pipeline computed."""

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from receivers import FAIL, HANG, OK, http_receiver, smtp_receiver
from sandbox.sandbox_helpers import cli_server
from sync.sync_helpers import TIME_SCALE

from connections_pipeline.cli import EXIT_HELD, main
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow

# Seed 59 with 60 connections has live connections that need action from the start.
FINCH = ("--seed", "59", "--connections", "60", "--time-scale", str(TIME_SCALE))


@pytest.fixture
def finch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The emulator, and a folder to run in with the settings that reach it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with cli_server(*FINCH) as (_, base_url):
        monkeypatch.setenv("FINCH_BASE_URL", base_url)
        monkeypatch.setenv("CONNECTIONS_TOKENS_SOURCE", "sandbox")
        monkeypatch.setenv("CONNECTIONS_FINCH_TIME_SCALE", str(TIME_SCALE))
        monkeypatch.setenv("CONNECTIONS_NOTIFY_TIMEOUT_SECONDS", "3")
        yield base_url


def truth(base_url: str) -> list[dict]:
    return httpx.get(f"{base_url}/_sandbox/truth", timeout=60).json()["rows"]


def named_as_needing_action(message: str) -> set[str]:
    return set(re.findall(r"\| connection (\S+) \|", message))


# The tables a sync writes (its run log aside), and the columns naming the run that wrote them.
SYNCED_TABLES = (
    "finch_connections",
    "finch_connections_history",
    "finch_connection_entities",
    "finch_tokens",
    "finch_connect_sessions",
    "finch_quarantine",
)


def warehouse() -> Warehouse:
    return Warehouse(f"duckdb:///{Path('data/connections.duckdb').resolve()}")


def synced(store: Warehouse) -> dict[str, pl.DataFrame]:
    """What the sync wrote, without the run IDs (two runs' IDs differ by construction)."""
    tables = {}
    for name in SYNCED_TABLES:
        frame = store.read_table(name)
        frame = frame.drop([column for column in frame.columns if "run" in column])
        tables[name] = frame.sort(frame.columns, nulls_last=True)
    return tables


def kind_of(title: str) -> str:
    for kind in ("CSV exports", "report", "need action"):
        if kind in title:
            return kind
    return title


def test_the_digest_names_who_newly_needs_action_once(
    finch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with http_receiver() as hook:
        monkeypatch.setenv("CONNECTIONS_NOTIFY_NEEDS_ACTION", hook.url)
        assert main(["run"]) == 0
        rows = truth(finch)
        needing = {row["connection_id"] for row in rows if row["needs_action"]}
        assert needing, "the seed must start with connections that need action"
        # The first digest names every connection that needs action, with whom to call.
        [first] = hook.messages()
        assert named_as_needing_action(first) == needing
        some = next(row for row in rows if row["needs_action"])
        [line] = [
            line for line in first.splitlines() if f"connection {some['connection_id']} " in line
        ]
        assert some["customer_id"] in line and some["provider_name"] in line

        # Nothing changed in Finch: nothing is posted.
        assert main(["run"]) == 0
        assert len(hook.posts) == 1

        connected = sorted(
            row["connection_id"]
            for row in rows
            if row["state"] == "live" and row["connection_status"] == "connected"
        )
        moved = connected[:3]
        for connection_id in moved:
            httpx.post(
                f"{finch}/_sandbox/connections/{connection_id}/status",
                json={"status": "reauth"},
                timeout=60,
            ).raise_for_status()
        assert main(["run"]) == 0
        assert len(hook.posts) == 2
        assert named_as_needing_action(hook.messages()[1]) == set(moved)
        assert "Re-auth" in hook.messages()[1]


def test_a_held_run_posts_one_alert_saying_why_and_still_exits_3(
    finch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with http_receiver() as hook:
        monkeypatch.setenv("CONNECTIONS_NOTIFY_RUNS", hook.url)
        assert main(["run"]) == 0
        assert hook.posts == []  # a run that succeeds sends nothing
        httpx.post(f"{finch}/_sandbox/advance", json={"days": 365}, timeout=60)
        assert main(["run"]) == EXIT_HELD
    [alert] = hook.posts
    assert "held" in alert["title"]
    assert "would leave Live in one run" in alert["message"]
    assert "connections-pipeline run --accept-mass-change" in alert["message"]
    with warehouse() as store:
        [held] = (
            store.read_table("finch_sync_runs")
            .filter(pl.col("status") == "held")["run_id"]
            .to_list()
        )
        sent = store.read_table("finch_notifications")
    assert f"Sync run {held} was held" in alert["message"]
    assert sent["kind"].to_list() == ["held"] and sent["sent_at"].is_not_null().all()


def test_the_csvs_arrive_as_attachments(finch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with smtp_receiver() as smtp:
        monkeypatch.setenv("CONNECTIONS_NOTIFY_EXPORTS", smtp.url())
        assert main(["run"]) == 0
    exports = Path("data/exports")
    csvs = {
        name: mail.attachments[name]
        for mail in smtp.emails
        for name in mail.attachments
        if name.endswith(".csv")
    }
    dated = sorted(path.name for path in exports.glob("connections_*_20*.csv"))
    assert sorted(csvs) == dated and len(dated) == 3
    for name, content in csvs.items():
        assert content == (exports / name).read_bytes()
    reports = [name for mail in smtp.emails for name in mail.attachments if name.endswith(".html")]
    assert reports == [path.name for path in exports.glob("connections_report_20*.html")]


def test_receivers_in_trouble_change_no_table_and_get_the_messages_later(
    finch: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The same world loaded without notifications, for comparison.
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    monkeypatch.chdir(quiet)
    assert main(["run"]) == 0
    with warehouse() as store:
        expected = synced(store)

    loud = tmp_path / "loud"
    loud.mkdir()
    monkeypatch.chdir(loud)
    # One receiver down (its port closed), one that hangs, one that answers 500.
    with (
        http_receiver(up=False) as down,
        http_receiver(HANG) as hanging,
        http_receiver(FAIL) as failing,
    ):
        receivers = (down, hanging, failing)
        monkeypatch.setenv("CONNECTIONS_NOTIFY_NEEDS_ACTION", down.url)
        monkeypatch.setenv("CONNECTIONS_NOTIFY_EXPORTS", f"{hanging.url}, {failing.url}")
        assert main(["run"]) == 0
        with warehouse() as store:
            for name, frame in synced(store).items():
                assert_frame_equal(frame, expected[name])
            waiting = store.read_table("finch_notifications")
        assert [receiver.posts for receiver in receivers] == [[], [], []]
        assert hanging.requests and failing.requests
        # Kept with the reason: the digest, and the CSVs and the report for each receiver.
        assert Counter(waiting["kind"]) == {"digest": 1, "export": 2, "report": 2}
        assert waiting["sent_at"].is_null().all()
        assert waiting["last_error"].is_not_null().all() and (waiting["attempts"] >= 1).all()

        # The receivers are back: the next run sends what waited, once.
        for receiver in receivers:
            receiver.stop()
            receiver.mode = OK
            receiver.released.clear()
            receiver.start()
        assert main(["run"]) == 0
    # The first run's messages, and the second run's own deliveries; its digest had no news.
    assert [kind_of(post["title"]) for post in down.posts] == ["need action"]
    for receiver in (hanging, failing):
        assert Counter(kind_of(post["title"]) for post in receiver.posts) == {
            "CSV exports": 2,
            "report": 2,
        }


def test_finch_failing_partway_posts_one_partial_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Finch answers about one request in twelve with a 5xx and the client tries once: some
    # tokens fail (the run is partial), too few to hold it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with (
        cli_server(*FINCH, "--error-rate", "0.08") as (_, base_url),
        http_receiver() as hook,
    ):
        monkeypatch.setenv("FINCH_BASE_URL", base_url)
        monkeypatch.setenv("CONNECTIONS_TOKENS_SOURCE", "sandbox")
        monkeypatch.setenv("CONNECTIONS_FINCH_TIME_SCALE", str(TIME_SCALE))
        monkeypatch.setenv("CONNECTIONS_FINCH_MAX_ATTEMPTS", "1")
        monkeypatch.setenv("CONNECTIONS_NOTIFY_RUNS", hook.url)
        assert main(["run"]) == 0
    with warehouse() as store:
        [run] = store.read_table("finch_sync_runs").iter_rows(named=True)
    assert run["status"] == "partial" and run["failed_tokens"] > 0
    [alert] = hook.posts
    assert alert["title"] == "Connections sync partial"
    assert f"Sync run {run['run_id']} loaded a partial snapshot" in alert["message"]
    assert f"failed_tokens {run['failed_tokens']}" in alert["message"]
