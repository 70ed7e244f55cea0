"""The emulator over real HTTP: `serve_in_thread` and the `serve` command line."""

from __future__ import annotations

import os
import subprocess
from email.utils import parsedate_to_datetime

import httpx
import pytest
from sandbox_helpers import CLI, START, VERSION, current_tokens, make_sandbox, stop

from connections_pipeline.sources.sandbox_ledgers import ServedSandboxError, read_served_sandbox
from finch_sandbox import EndpointFaults, serve_in_thread
from finch_sandbox.cli import build_parser, config_from_args, main
from finch_sandbox.server import NonLoopbackHostError


def test_serve_in_thread_answers_and_stops() -> None:
    sandbox = make_sandbox()
    token = next(iter(current_tokens(sandbox).values()))
    with serve_in_thread(sandbox) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        response = httpx.get(
            f"{base_url}/introspect", headers={**VERSION, "Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        assert response.headers.get_list("date") == [response.headers["date"]]
        assert parsedate_to_datetime(response.headers["date"]) == START
        assert "server" not in response.headers
        assert httpx.get(f"{base_url}/_sandbox/truth").json()["now"] == "2026-03-02T00:00:00Z"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/providers", headers=VERSION, timeout=2)


def test_requests_over_http_come_from_loopback_and_count_per_ip() -> None:
    sandbox = make_sandbox()
    with (
        serve_in_thread(sandbox) as base_url,
        httpx.Client(base_url=base_url, headers=VERSION) as client,
    ):
        for _ in range(3):
            assert client.get("/providers").status_code == 200
    assert sandbox.stats()["max_requests_in_ip_window"] == 3


def test_drop_and_hang_over_real_http() -> None:
    sandbox = make_sandbox(
        faults={
            "providers": EndpointFaults(drop_rate=1.0),
            "introspect": EndpointFaults(hang_rate=1.0, hang_seconds=3.0),
        }
    )
    token = next(iter(current_tokens(sandbox).values()))
    with serve_in_thread(sandbox) as base_url:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{base_url}/providers", headers=VERSION)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(
                f"{base_url}/introspect",
                timeout=0.3,
                headers={**VERSION, "Authorization": f"Bearer {token}"},
            )
        assert httpx.get(f"{base_url}/_sandbox/credentials").status_code == 200


def test_hang_after_effect_over_real_http_creates_the_session() -> None:
    faults = EndpointFaults(hang_rate=1.0, hang_seconds=2.0, after_effect=True)
    sandbox = make_sandbox(faults={"connect_sessions": faults})
    client_id, secret = sandbox.credentials
    body = {"customer_id": "c-hang", "customer_name": "n", "products": ["company"]}
    with serve_in_thread(sandbox) as base_url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{base_url}/connect/sessions",
                json=body,
                auth=(client_id, secret),
                headers=VERSION,
                timeout=0.3,
            )
        listed = httpx.get(f"{base_url}/_sandbox/sessions").json()["sessions"]
    assert [s["customer_id"] for s in listed].count("c-hang") == 1


def test_serve_in_thread_refuses_non_loopback_hosts() -> None:
    with pytest.raises(NonLoopbackHostError), serve_in_thread(make_sandbox(), host="0.0.0.0"):
        pass


def test_cli_serves_providers_on_a_free_loopback_port() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            *CLI,
            "--port",
            "0",
            "--seed",
            "3",
            "--connections",
            "50",
            "--time-scale",
            "0.5",
            "--start-time",
            "2026-01-05T00:00:00Z",
            "--error-rate",
            "0",
            "--extra-fields",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = line.strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:"), line
        response = httpx.get(f"{base_url}/providers", headers=VERSION, timeout=10)
        assert response.status_code == 200
        assert all("sandbox_unknown_field" in p for p in response.json())
        assert parsedate_to_datetime(response.headers["date"]).isoformat() == (
            "2026-01-05T00:00:00+00:00"
        )
        truth = httpx.get(f"{base_url}/_sandbox/truth", timeout=10).json()
        assert sum(r["state"] != "staged" for r in truth["rows"]) == 50
    finally:
        stop(process)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--connections", "-5"], "--connections"),
        (["--error-rate", "1.5"], "--error-rate"),
        (["--drop-rate", "-0.1"], "--drop-rate"),
        (["--time-scale", "0"], "--time-scale"),
        (["--host", "0.0.0.0"], "loopback"),
        (["--host", "192.168.1.10"], "loopback"),
        (["--start-time", "yesterday"], "ISO 8601"),
        (["--bogus"], "unrecognized arguments"),
        (["--port", "70000"], "--port"),
    ],
)
def test_cli_rejects_bad_options_with_exit_2(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *args])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_cli_process_exits_2_for_a_non_loopback_host() -> None:
    result = subprocess.run(
        [*CLI, "--host", "10.0.0.1", "--port", "0"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr


def test_read_served_sandbox_returns_the_ledgers_over_http() -> None:
    sandbox = make_sandbox(connections=40)
    with serve_in_thread(sandbox) as base_url:
        tokens, sessions = read_served_sandbox(base_url + "/")
    assert tokens == sandbox.tokens() and sessions == sandbox.sessions()
    with pytest.raises(ServedSandboxError, match="could not read"):
        read_served_sandbox(base_url, timeout=2)


def test_cli_after_effect_moves_every_endpoints_faults_after_the_handler() -> None:
    args = build_parser().parse_args(["serve", "--error-rate", "1", "--after-effect"])
    faults = config_from_args(args).faults_for("connect_sessions")
    assert (faults.error_rate, faults.after_effect) == (1.0, True)
    assert config_from_args(build_parser().parse_args(["serve", "--after-effect"])).faults == {}
