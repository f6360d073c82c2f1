"""A server process under test: start it pinned to a core, wait, stop it."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import procstat

logger = logging.getLogger("bench.process")

READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


class ServerError(Exception):
    """A server failed to start, respond or initialise."""


class ServerProcess:
    """One server process; subclasses give its command line and readiness check."""

    system = ""

    def __init__(
        self,
        name: str,
        workdir: Path,
        port: int,
        core: int | None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.port = port
        self.tls = tls
        self.core = core
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"
        self.fixtures: dict[str, Any] = {}

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServerError(f"{self.name} is not running")
        return self.process.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        command = self.command()
        if self.core is not None:
            command = ["taskset", "-c", str(self.core), *command]
        logger.info("starting %s: %s", self.name, " ".join(command))

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.process.returncode} while "
                    f"starting; log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if self.ready():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ServerError(
            f"{self.name} did not respond on port {self.port} within "
            f"{READY_TIMEOUT_S} s; log {self.log_path}:\n{self.log_tail()}"
        )

    def check_running(self) -> None:
        """Raise ServerError if the process has exited, for example by crashing."""
        if self.process is None or self.process.poll() is not None:
            code = self.process.returncode if self.process else "no process"
            raise ServerError(
                f"{self.name} is not running (exit code {code}); "
                f"log {self.log_path}: {self.log_tail(3)}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(
                self.log_path.read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        self.terminate()
        self.wait_stopped()

    def terminate(self) -> None:
        """Send SIGTERM without waiting, so several servers can stop at once."""
        self.close_clients()
        if self.process is not None and self.process.poll() is None:
            logger.info("stopping %s (pid %d)", self.name, self.process.pid)
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        process = self.process
        if process is None:
            return
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s ignored SIGTERM for %d s; killing it", self.name, STOP_TIMEOUT_S
            )
            process.kill()
            process.wait()
        self.process = None

    def close_clients(self) -> None:
        """Close keep-alive connections, which would delay a graceful shutdown."""

    def cpu_seconds(self) -> float:
        return procstat.cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return procstat.rss_bytes(self.pid)
