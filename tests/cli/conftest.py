"""Run the real `mssm` CLI as a subprocess against real `mssm server`s."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.openbao import BaoServer

ROOT = Path(__file__).resolve().parents[2]
MSSM = ROOT / ".venv" / "bin" / "mssm"

# Ports reserved for the CLI tests, so parallel suites do not collide.
PORT_RANGE = range(18230, 18300)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(exclude: tuple[int, ...] = ()) -> int:
    """Return a free port of PORT_RANGE that is not in exclude."""
    for port in PORT_RANGE:
        if port not in exclude and _bindable(port):
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def clean_env(**overrides: str) -> dict[str, str]:
    """Return the environment without any MSSM_ or VAULT_ settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MSSM_", "VAULT_"))
    }
    env.update(overrides)
    return env


def run_mssm(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 60
) -> Result:
    completed = subprocess.run(
        [str(MSSM), *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


@dataclass
class Server:
    """One `mssm server` subprocess."""

    address: str
    process: subprocess.Popen
    log_path: Path
    root_token: str = ""
    config_path: Path | None = None

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until /v1/sys/health returns any HTTP status."""
        self.wait_ready_tls(None, timeout)

    def wait_ready_tls(self, ca_file: Path | None, timeout: float = 30) -> None:
        """wait_ready for a TLS listener whose certificate ca_file signed."""
        verify: str | bool = str(ca_file) if ca_file else True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                requests.get(f"{self.address}/v1/sys/health", timeout=1, verify=verify)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def has_route(self, method: str, path: str) -> bool:
        """Return whether the server has a handler for path (any other response)."""
        response = requests.request(
            method,
            f"{self.address}/v1/{path}",
            headers={"X-Vault-Token": self.root_token},
            json={},
            timeout=10,
        )
        return "no handler for route" not in response.text


def start_server(args: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [str(MSSM), "server", *args], stdout=log, stderr=log, cwd=ROOT
        )


# Set to "bao" to run the dev-server tests against OpenBao's `bao server
# -dev` instead, to check that a test expects what the reference does.
REFERENCE_ENV = "MSSM_CLI_TEST_SERVER"


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`mssm server -dev` with a random root token, shared by the session."""
    directory = tmp_path_factory.mktemp("dev-server")
    token = "cli-root-" + secrets.token_hex(16)
    if os.environ.get(REFERENCE_ENV) == "bao":
        yield from run_openbao_dev_server(directory, token)
    else:
        yield from run_mssm_dev_server(directory, token)


def run_mssm_dev_server(directory: Path, token: str) -> Iterator[Server]:
    port = free_port()
    args = [
        "-dev",
        f"-dev-listen-address=127.0.0.1:{port}",
        f"-dev-root-token-id={token}",
    ]
    log_path = directory / "server.log"
    process = start_server(args, log_path)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, token)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def run_openbao_dev_server(directory: Path, token: str) -> Iterator[Server]:
    with BaoServer.dev(directory, token) as openbao:
        assert openbao.process is not None
        yield Server(openbao.url, openbao.process, openbao.log_path, token)


def write_sqlite_config(directory: Path, port: int) -> Path:
    config = directory / "mssm.toml"
    config.write_text(
        "[listener]\n"
        f'address = "127.0.0.1:{port}"\n'
        "tls_disable = true\n"
        "[storage]\n"
        'type = "sqlite"\n'
        f'path = "{directory / "mssm.db"}"\n'
    )
    return config


def start_config_server(config: Path, log_path: Path) -> Server:
    """Start `mssm server -config` and wait for it; the caller stops it."""
    port = int(config.read_text().split('address = "127.0.0.1:')[1].split('"')[0])
    process = start_server(["-config", str(config)], log_path)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, config_path=config)
    try:
        server.wait_ready()
    except RuntimeError:
        server.stop()
        raise
    return server


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Server]:
    """`mssm server -config` on SQLite in tmp_path, started but not initialised."""
    config = write_sqlite_config(tmp_path, free_port())
    server = start_config_server(config, tmp_path / "server.log")
    try:
        yield server
    finally:
        server.stop()


CLI = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME, so ~/.mssm-token of the user running the tests is unused."""
    directory = tmp_path / "home"
    directory.mkdir()
    return directory


@pytest.fixture
def cli(dev_server: Server, home: Path) -> CLI:
    """Run `mssm ARGS...` against the dev server with its root token."""

    def run(
        *args: str, input: str | None = None, token: str | None = None, **env: str
    ) -> Result:
        variables = clean_env(
            MSSM_ADDR=dev_server.address,
            MSSM_TOKEN=dev_server.root_token if token is None else token,
            HOME=str(home),
            **env,
        )
        if not variables["MSSM_TOKEN"]:
            del variables["MSSM_TOKEN"]
        return run_mssm(*args, env=variables, input=input)

    return run


@pytest.fixture
def needs_route(dev_server: Server) -> Callable[[str, str], None]:
    """Fail the test early, naming the route, when the server lacks it."""

    def check(method: str, path: str) -> None:
        if not dev_server.has_route(method, path):
            pytest.fail(f"the server has no handler for {method} {path}")

    return check
