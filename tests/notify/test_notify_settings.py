"""The notification settings: a bad URL is refused before any work, a URL's secret is never
shown, and `notify test` says per URL whether a real receiver got the message."""

from pathlib import Path

import pytest
from receivers import http_receiver, smtp_receiver

from connections_pipeline.cli import EXIT_FAILED, EXIT_SETTING, main
from connections_pipeline.settings import build_resources

SECRET = "Sm7pSecretPw42"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("value", "position"),
    [
        (f"nosuchservice://user:{SECRET}@host/path", 1),
        (f"json://127.0.0.1:9/ok, slack://{SECRET}", 2),
    ],
)
def test_a_malformed_url_is_one_line_exit_2_before_any_work(
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    position: int,
) -> None:
    monkeypatch.setenv("CONNECTIONS_NOTIFY_NEEDS_ACTION", value)
    assert main(["run"]) == EXIT_SETTING
    printed = capsys.readouterr()
    [line] = printed.err.strip().splitlines()
    assert line.startswith(f"run: CONNECTIONS_NOTIFY_NEEDS_ACTION: entry {position} is ")
    assert SECRET not in printed.out + printed.err
    assert list(folder.iterdir()) == []  # no warehouse, no Dagster folder, no export


def test_the_resource_never_shows_a_url() -> None:
    urls = f"mailto://loader:{SECRET}@smtp.example.com?to=cs@example.com, json://hooks.example.com/{SECRET}"
    notifier = build_resources({"CONNECTIONS_NOTIFY_RUNS": urls})["notifier"]
    resolved = notifier.model_copy(update={"runs": urls})
    for shown in (repr(notifier), str(resolved), repr(resolved)):
        assert SECRET not in shown
    assert "2 URLs (json, mailto)" in repr(resolved)


def test_notify_test_says_per_url_whether_it_was_delivered(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with smtp_receiver() as smtp, http_receiver() as hook, http_receiver(up=False) as down:
        monkeypatch.setenv("CONNECTIONS_NOTIFY_RUNS", f"{hook.url}?token={SECRET}")
        monkeypatch.setenv("CONNECTIONS_NOTIFY_EXPORTS", smtp.url())
        monkeypatch.setenv("CONNECTIONS_NOTIFY_TIMEOUT_SECONDS", "3")
        assert main(["notify", "test"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(hook.posts) == 1 and len(smtp.emails) == 1
        assert (
            hook.posts[0]["title"] == smtp.emails[0].subject == "connections_pipeline test message"
        )
        assert [line.split(": ")[0] for line in lines] == [
            "CONNECTIONS_NOTIFY_RUNS",
            "CONNECTIONS_NOTIFY_EXPORTS",
        ]
        assert all(line.endswith(": delivered") for line in lines)
        assert SECRET not in "\n".join(lines)

        monkeypatch.setenv("CONNECTIONS_NOTIFY_NEEDS_ACTION", down.url)
        assert main(["notify", "test"]) == EXIT_FAILED
        lines = capsys.readouterr().out.strip().splitlines()
        [failed] = [line for line in lines if line.startswith("CONNECTIONS_NOTIFY_NEEDS_ACTION")]
        assert f"127.0.0.1:{down.port}" in failed and "NOT delivered" in failed
        assert len(hook.posts) == 2


def test_notify_test_without_a_url_says_which_to_set(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["notify", "test"]) == EXIT_SETTING
    assert "CONNECTIONS_NOTIFY_RUNS" in capsys.readouterr().err
