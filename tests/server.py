"""Start real MSSM servers as subprocesses for the end-to-end tests."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """One `mssm server` process; config_path is None in dev mode."""

    url: str
    config_path: Path | None
    log_path: Path
    root_token: str = ""
    keys: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    verify: str | bool = True

    def start(self, extra_args: dict | None = None) -> None:
        options = {"config_path": str(self.config_path)} if self.config_path else {}
        options |= extra_args or {}
        code = "from mssm.http.server import serve; raise SystemExit(serve(**%r))"
        code %= options
        command = [sys.executable, "-c", code]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                requests.get(
                    f"{self.url}/v1/sys/seal-status", timeout=1, verify=self.verify
                )
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def request(self, method: str, path: str, token: str | None = "", **kwargs):
        headers = kwargs.pop("headers", {})
        token = self.root_token if token == "" else token
        if token:
            headers["X-Vault-Token"] = token
        return requests.request(
            method,
            f"{self.url}/v1/{path}",
            headers=headers,
            timeout=30,
            verify=self.verify,
            **kwargs,
        )

    def init_and_unseal(self, shares: int = 1, threshold: int = 1) -> None:
        body = {"secret_shares": shares, "secret_threshold": threshold}
        answer = self.request("PUT", "sys/init", token=None, json=body)
        answer.raise_for_status()
        self.root_token = answer.json()["root_token"]
        self.keys = answer.json()["keys"]
        self.unseal()

    def unseal(self) -> None:
        threshold = self.request("GET", "sys/seal-status", token=None).json()["t"]
        for key in self.keys[:threshold]:
            self.request("PUT", "sys/unseal", token=None, json={"key": key})


def write_config(
    directory: Path, port: int, extra: str = "", storage: str = ""
) -> Path:
    """Write a plain-HTTP config with SQLite storage in directory."""
    storage = storage or f'[storage]\ntype = "sqlite"\npath = "{directory}/mssm.db"\n'
    text = (
        f'[listener]\naddress = "127.0.0.1:{port}"\ntls_disable = true\n'
        f"{storage}{extra}"
    )
    path = directory / "mssm.toml"
    path.write_text(text)
    return path


def start_production(directory: Path, extra: str = "") -> ServerProcess:
    """Start a server on SQLite in directory, initialised and unsealed."""
    port = free_port()
    config = write_config(directory, port, extra)
    server = ServerProcess(f"http://127.0.0.1:{port}", config, directory / "server.log")
    server.start()
    server.init_and_unseal()
    return server


def start_dev(directory: Path, root_token: str = "") -> ServerProcess:
    """Start a dev server (in memory, unsealed) with a random root token."""
    port = free_port()
    server = ServerProcess(f"http://127.0.0.1:{port}", None, directory / "dev.log")
    server.root_token = root_token or "hvs." + secrets.token_hex(12)
    server.start(
        {
            "dev": True,
            "dev_root_token_id": server.root_token,
            "dev_listen_address": f"127.0.0.1:{port}",
        }
    )
    return server


__all__ = ["ServerProcess", "free_port", "start_dev", "start_production"]
