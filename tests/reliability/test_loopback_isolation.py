"""The emulator and every test server listen on loopback only, checked on the real sockets.

The emulator holds test credentials and speaks plain HTTP, so it must never be reachable
from another machine. These tests read the kernel's table of listening sockets
(`/proc/net/tcp`, `/proc/net/tcp6`) and match them to the processes that own them through
`/proc/<pid>/fd`, rather than trusting the URL a server reports.
"""

import ast
import ipaddress
import os
import re
import socket
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sandbox.sandbox_helpers import CLI, cli_server, stop

from finch_sandbox import FinchSandbox, SandboxConfig, serve_in_thread
from finch_sandbox.server import NonLoopbackHostError, is_loopback

TESTS = Path(__file__).parents[1]
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp*
# Hosts a careless caller might pass; each would listen beyond loopback, or names a host
# that could resolve anywhere.
NON_LOOPBACK_HOSTS = [
    "0.0.0.0",
    "",
    "::",
    "0:0:0:0:0:0:0:0",
    "::ffff:0.0.0.0",
    "192.0.2.2",
    "10.0.0.1",
    "example.com",
    "localhost.example.com",
    "LOCALHOST.",
]

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc socket tables"
)


@dataclass(frozen=True)
class Listener:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    inode: int


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # The kernel prints each 32-bit word of the address in host byte order.
    words = [int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)]
    return ipaddress.ip_address(b"".join(struct.pack("=I", word) for word in words))


def parse_listeners(table: str) -> list[Listener]:
    """The LISTEN rows of a /proc/net/tcp or /proc/net/tcp6 table."""
    listeners = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if fields[3] != LISTEN:
            continue
        hex_address, hex_port = fields[1].split(":")
        listeners.append(Listener(_address(hex_address), int(hex_port, 16), int(fields[9])))
    return listeners


def listening_sockets() -> list[Listener]:
    """Every listening TCP socket of this host's network namespace."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    return [
        listener
        for table in tables
        if table.exists()
        for listener in parse_listeners(table.read_text())
    ]


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process `pid` holds open (raises if it cannot be read)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except FileNotFoundError:  # closed meanwhile
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(int(match.group(1)))
    return inodes


def listeners_of(pid: int, port: int | None = None) -> list[Listener]:
    """The listening TCP sockets owned by `pid` (on `port`, if given).

    The kernel prints its socket tables a chunk per read and resumes each chunk by position,
    so a read that races other sockets opening and closing (the rest of the suite, on a busy
    machine) can skip a row. The tables are read until two reads in a row agree.
    """
    owned = socket_inodes(pid)
    previous: set[Listener] | None = None
    while True:
        current = {
            listener
            for listener in listening_sockets()
            if listener.inode in owned and (port is None or listener.port == port)
        }
        if current == previous:
            return sorted(current, key=lambda listener: listener.inode)
        previous = current


def port_of(url: str) -> int:
    port = httpx.URL(url).port
    assert port is not None, url
    return port


def non_loopback_address() -> str | None:
    """An address of this host outside loopback (no packet is sent to find it)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if ipaddress.ip_address(address).is_loopback else address


def assert_only_loopback(listeners: list[Listener], expected: str = "127.0.0.1") -> None:
    assert listeners, "no listening socket found: the inspection looked at nothing"
    for listener in listeners:
        assert not listener.address.is_unspecified, f"listens on every address: {listener}"
        assert listener.address == ipaddress.ip_address(expected), listener


def _sandbox() -> FinchSandbox:
    return FinchSandbox(SandboxConfig(seed=5, connections=3))


def test_proc_parsing_tells_loopback_from_every_address() -> None:
    # The inspection itself must tell loopback from "everywhere", or every test here would
    # pass for the wrong reason. Wildcard rows as the kernel prints them (port 8080):
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        "  timeout inode\n"
        "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 111\n"
        "   1: 0100007F:1F91 00000000:0000 01 00000000:00000000 00:00000000 00000000 0 0 112\n"
    )
    table6 = (
        "  sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt uid"
        "  timeout inode\n"
        f"   0: {'0' * 32}:1F90 {'0' * 32}:0000 0A 00000000:00000000 00:00000000 00000000 0 0 113\n"
    )
    [wildcard] = parse_listeners(table)
    [wildcard6] = parse_listeners(table6)
    assert (wildcard.port, wildcard.inode, wildcard6.inode) == (8080, 111, 113)
    assert wildcard.address.is_unspecified and wildcard6.address.is_unspecified
    with pytest.raises(AssertionError, match="every address"):
        assert_only_loopback([wildcard6])
    # And real loopback sockets, IPv4 and IPv6, are found with their true addresses.
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as ipv4,
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as ipv6,
    ):
        ipv4.bind(("127.0.0.1", 0))
        ipv6.bind(("::1", 0))
        for sock, address in ((ipv4, "127.0.0.1"), (ipv6, "::1")):
            sock.listen()
            [seen] = listeners_of(os.getpid(), sock.getsockname()[1])
            assert seen.address == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    ("host", "expected"), [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("::1", "::1")]
)
def test_serve_in_thread_listens_on_loopback_only(host: str, expected: str) -> None:
    with serve_in_thread(_sandbox(), host=host) as base_url:
        port = port_of(base_url)
        assert_only_loopback(listeners_of(os.getpid(), port), expected)
        # Nothing else on this port anywhere in the namespace (no second, wider socket).
        wide = [s for s in listening_sockets() if s.port == port and s.address.is_unspecified]
        assert wide == []
        answer = httpx.get(f"{base_url}/providers", headers={"Finch-API-Version": "2020-09-17"})
        assert answer.status_code == 200
        outside = non_loopback_address()
        if outside is not None and expected == "127.0.0.1":
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=2).close()
    assert listeners_of(os.getpid(), port) == []  # and it stops listening on exit


@pytest.mark.parametrize("host", NON_LOOPBACK_HOSTS)
def test_serve_in_thread_refuses_a_non_loopback_host_before_listening(host: str) -> None:
    before = set(listeners_of(os.getpid()))
    with pytest.raises(NonLoopbackHostError), serve_in_thread(_sandbox(), host=host):
        pass
    assert set(listeners_of(os.getpid())) == before


@pytest.mark.parametrize("host", ["", "::", "example.com"])
def test_cli_process_refuses_a_non_loopback_host(host: str) -> None:
    # In a process of its own. A CLI that wrongly accepted the host would serve forever: it
    # says so on its first line, so that line (or the end of its output) is what is waited
    # for, however long a busy machine takes to start Python.
    process = subprocess.Popen(
        [*CLI, "--host", host, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    first_line = process.stdout.readline()
    if "listening" in first_line:
        stop(process)
        pytest.fail(f"the CLI accepted {host!r}: {first_line}")
    errors = process.stderr.read()
    assert process.wait() == 2
    assert "loopback" in errors and first_line == ""


def _cli_server(*args: str) -> AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    return cli_server("--connections", "3", *args)


@pytest.mark.parametrize("host", [None, "localhost"])
def test_cli_serve_process_listens_on_loopback_only(host: str | None) -> None:
    args = [] if host is None else ["--host", host]
    with _cli_server(*args) as (process, base_url):
        listeners = listeners_of(process.pid)
        assert_only_loopback(listeners)
        assert {listener.port for listener in listeners} == {port_of(base_url)}


def test_moto_server_as_the_export_tests_start_it_listens_on_loopback_only() -> None:
    from moto.server import ThreadedMotoServer

    # The arguments of tests/export/test_export_s3.py's s3_endpoint fixture (the static
    # check below keeps them loopback).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        assert_only_loopback(listeners_of(os.getpid(), port))
        with serve_in_thread(_sandbox()):
            # Everything this test process listens on, whoever opened it (other test
            # modules' servers included), is on loopback.
            everything = listeners_of(os.getpid())
            assert len(everything) >= 2
            wide = [s for s in everything if s.address.is_unspecified or not s.address.is_loopback]
            assert wide == []
    finally:
        server.stop()


def test_embedded_postgres_fallback_listens_on_no_tcp_address() -> None:
    import pgserver

    # As tests/conftest.py starts it when no local Postgres answers.
    with tempfile.TemporaryDirectory(prefix="cp-pg-") as workdir:
        pgdata = Path(workdir) / "pgdata"
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
        try:
            postmaster = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
            assert socket_inodes(postmaster), "the postmaster holds no socket at all?"
            assert listeners_of(postmaster) == []
            assert "host=/" in server.get_uri()  # a Unix-domain socket
        finally:
            server.cleanup()


def test_every_server_the_suite_starts_is_bound_to_loopback() -> None:
    """Static guard over tests/: each call that starts a server names a loopback host (or
    keeps a loopback default), unless it sits in a `with pytest.raises(...)` that expects
    the refusal. A new server that listens elsewhere fails here before it ever runs."""
    checked: dict[str, int] = {}
    problems: list[str] = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for name, lineno, hosts in _unrefused_server_hosts(tree):
            checked[name] = checked.get(name, 0) + 1
            bad = [host for host in hosts if not _is_loopback_literal(host)]
            if bad:
                where = f"{path.relative_to(TESTS)}:{lineno} {name}"
                problems.append(f"{where}: host(s) {bad!r} not provably loopback")
    assert problems == []
    # The guard saw the servers the suite is known to start.
    assert checked.get("serve_in_thread", 0) >= 5
    assert checked.get("ThreadedMotoServer", 0) >= 2
    assert checked.get("get_server", 0) >= 2


# Server-starting calls and where their host is given: keyword, positional index, and
# whether omitting it means loopback.
SERVER_CALLS: dict[str, tuple[str, int | None, bool]] = {
    "serve_in_thread": ("host", 1, True),
    "ThreadedMotoServer": ("ip_address", 0, False),
    "get_server": ("", None, True),  # pgserver: Unix-domain socket only
    "Config": ("host", None, True),  # uvicorn.Config, default 127.0.0.1
    "run": ("host", None, True),  # uvicorn.run
    "HTTPServer": ("", 0, False),
    "ThreadingHTTPServer": ("", 0, False),
    "TCPServer": ("", 0, False),
    "make_server": ("host", 0, False),
    "create_server": ("", 0, False),
    "start_server": ("host", 1, False),  # asyncio: None means every address
    "bind": ("", 0, False),
}


def _unrefused_server_hosts(tree: ast.AST) -> Iterator[tuple[str, int, list[object]]]:
    """(call name, line, the hosts it may bind to) for every server-starting call that is
    not an expected refusal; a host given by a test parameter stands for its values."""
    refusals = _calls_inside_pytest_raises(tree)
    for call, function in _calls_with_functions(tree, None):
        name = _call_name(call)
        host = _server_host(name, call)
        if host is None or id(call) in refusals:
            continue
        if isinstance(host, ast.Name):
            hosts = _parametrized_values(function, host.id) if function else ["<expr>"]
        elif host == "<default>":
            hosts = ["127.0.0.1"]
        else:
            hosts = [host]
        yield name, call.lineno, hosts


def _calls_with_functions(
    node: ast.AST, function: ast.FunctionDef | None
) -> Iterator[tuple[ast.Call, ast.FunctionDef | None]]:
    """Every call under `node` with the innermost function that contains it."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Call):
            yield child, function
        inner = child if isinstance(child, ast.FunctionDef) else function
        yield from _calls_with_functions(child, inner)


def _parametrized_values(function: ast.FunctionDef, argument: str) -> list[object]:
    """The literal values `@pytest.mark.parametrize` gives `argument` ("<expr>" if any is
    not a literal or there is none)."""
    values: list[object] = []
    for decorator in function.decorator_list:
        if not (isinstance(decorator, ast.Call) and _call_name(decorator) == "parametrize"):
            continue
        names_node, values_node = decorator.args[:2]
        if not isinstance(names_node, ast.Constant | ast.Tuple | ast.List):
            return ["<expr>"]
        names = (
            [n.strip() for n in names_node.value.split(",")]
            if isinstance(names_node, ast.Constant)
            else [n.value for n in names_node.elts if isinstance(n, ast.Constant)]
        )
        if argument not in names:
            continue
        if not isinstance(values_node, ast.List | ast.Tuple):
            return ["<expr>"]
        index = names.index(argument)
        for element in values_node.elts:
            item = (
                element.elts[index]
                if len(names) > 1 and isinstance(element, ast.Tuple)
                else element
            )
            values.append(item.value if isinstance(item, ast.Constant) else "<expr>")
    return values or ["<expr>"]


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _server_host(name: str, call: ast.Call) -> object:
    """The host a server-starting call binds to: a literal, `<default>`, `<expr>`, or None
    when the call does not start a server."""
    if name not in SERVER_CALLS:
        return None
    keyword, position, default_is_loopback = SERVER_CALLS[name]
    if name == "run" and not _is_attribute_of(call, "uvicorn"):
        return None
    if name == "Config" and not _is_attribute_of(call, "uvicorn"):
        return None
    node: ast.expr | None = None
    for kw in call.keywords:
        if keyword and kw.arg == keyword:
            node = kw.value
    if node is None and position is not None and len(call.args) > position:
        node = call.args[position]
    if node is None:
        if name == "bind":
            return None
        return "<default>" if default_is_loopback else "<missing>"
    if name == "bind" and not isinstance(node, ast.Tuple):
        return None  # not a socket bind (e.g. a SQL parameter binding)
    if keyword == "" and isinstance(node, ast.Tuple) and node.elts:  # (host, port)
        node = node.elts[0]
    if isinstance(node, ast.Constant):
        return node.value
    return node if isinstance(node, ast.Name) else "<expr>"


def _is_attribute_of(call: ast.Call, module: str) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == module
    )


def _is_loopback_literal(host: object) -> bool:
    return isinstance(host, str) and is_loopback(host)


def _calls_inside_pytest_raises(tree: ast.AST) -> set[int]:
    """ids of calls made in the items of a `with` statement that also enters
    `pytest.raises(...)`: those servers are expected to be refused."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.With):
            continue
        expects_error = any(
            isinstance(item.context_expr, ast.Call) and _call_name(item.context_expr) == "raises"
            for item in node.items
        )
        if expects_error:
            for item in node.items:
                inside |= {id(n) for n in ast.walk(item.context_expr) if isinstance(n, ast.Call)}
    return inside


def test_the_static_guard_flags_a_wildcard_server() -> None:
    source = (
        "server = ThreadedMotoServer(ip_address='0.0.0.0', port=0)\n"
        "with serve_in_thread(sandbox, host='0.0.0.0'):\n    pass\n"
        "with pytest.raises(E), serve_in_thread(sandbox, host='0.0.0.0'):\n    pass\n"
        "sock.bind(('', 0))\n"
        "uvicorn.run(app, host='0.0.0.0')\n"
        "@pytest.mark.parametrize(('host', 'x'), [('127.0.0.1', 1), ('::', 2)])\n"
        "def test_a(host, x):\n    serve_in_thread(sandbox, host=host)\n"
        "@pytest.mark.parametrize('host', ['127.0.0.1', 'localhost'])\n"
        "def test_b(host):\n    serve_in_thread(sandbox, host=host)\n"
    )
    flagged = sorted(
        (name, line)
        for name, line, hosts in _unrefused_server_hosts(ast.parse(source))
        if not all(_is_loopback_literal(host) for host in hosts)
    )
    assert flagged == [
        ("ThreadedMotoServer", 1),
        ("bind", 6),
        ("run", 7),
        ("serve_in_thread", 2),
        ("serve_in_thread", 10),
    ]
