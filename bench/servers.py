"""Start, bootstrap and stop the servers under test.

Every server listens on 127.0.0.1 on a port from PORT_RANGE and runs pinned
to the server core. MSSM and OpenBao are initialised with one unseal share,
unsealed, and get KV v2 mounted at secret/, each behind a file audit device
unless a variant turns it off.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.api import VaultAPI
from bench.process import (
    READY_TIMEOUT_S,
    VENV_BIN,
    ServerError,
    ServerProcess,
)
from bench.tlscert import make_tls_cert

logger = logging.getLogger("bench.servers")

PORT_RANGE = range(18300, 18400)

MSSM = "mssm"
OPENBAO = "openbao"
FLOOR = "floor"

# Variants: the main setup, TLS on, the audit device off, and for OpenBao
# disk storage, because its inmem backend does no disk writes while MSSM's
# SQLite fsyncs each one. OpenBao 2.7 has no "file" backend ("unknown storage
# type file"), so the disk variant uses its integrated Raft storage.
MAIN = "main"
TLS = "tls"
NO_AUDIT = "noaudit"
DISK_STORAGE = "raft"


@dataclass
class Cores:
    """The CPU cores given to the server and to the load generator."""

    server: int | None
    load: int | None

    @classmethod
    def detect(cls) -> Cores:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            return cls(server=None, load=None)
        return cls(server=available[0], load=available[1])


class PortAllocator:
    def __init__(self, ports: range = PORT_RANGE) -> None:
        self._free = list(ports)

    def take(self) -> int:
        while self._free:
            port = self._free.pop(0)
            if _port_is_free(port):
                return port
        raise ServerError(
            f"no free port left in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}"
        )


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class VaultServer(ServerProcess):
    """A server that speaks the Vault API: MSSM or OpenBao."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        port: int,
        core: int | None,
        tls: tuple[Path, Path] | None = None,
        audit: bool = True,
    ) -> None:
        super().__init__(name, workdir, port, core, tls)
        self.audit = audit
        self.audit_log = workdir / f"{name}-audit.log"
        self.api = VaultAPI(self.url, verify=str(tls[0]) if tls else True)
        self.unseal_key = ""

    def ready(self) -> bool:
        return self.api.request("GET", "sys/seal-status").status == 200

    def close_clients(self) -> None:
        self.api.close()

    def audit_log_size(self) -> int:
        try:
            return self.audit_log.stat().st_size
        except OSError:
            return 0

    def start(self) -> None:
        self.write_config()
        super().start()

    def write_config(self) -> None:
        raise NotImplementedError

    def bootstrap(self) -> None:
        """Initialise with one share, unseal, and mount KV v2 at secret/."""
        init = self.api.request(
            "PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}
        )
        if not init.ok:
            raise ServerError(f"{self.name}: sys/init returned {init.describe()}")
        self.unseal_key = init.body["keys"][0]
        self.api.token = init.body["root_token"]

        self.unseal()
        mount = self.api.request(
            "POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}
        )
        if not mount.ok:
            raise ServerError(
                f"{self.name}: mounting KV v2 returned {mount.describe()}"
            )

    def unseal(self) -> float:
        """Unseal, wait until the server serves requests, return the seconds."""
        started = time.perf_counter()
        response = self.api.request("PUT", "sys/unseal", {"key": self.unseal_key})
        if not response.ok or response.body.get("sealed", True):
            raise ServerError(f"{self.name}: unseal returned {response.describe()}")

        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.api.request("GET", "sys/health").status != 200:
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.name}: not active {READY_TIMEOUT_S} s after unseal"
                )
            time.sleep(0.05)
        return time.perf_counter() - started

    def restart(self) -> None:
        """Stop and start the process; the server comes back sealed."""
        self.stop()
        super().start()


class MssmServer(VaultServer):
    system = MSSM

    def __init__(
        self,
        name: str,
        workdir: Path,
        port: int,
        core: int | None,
        tls: tuple[Path, Path] | None = None,
        audit: bool = True,
    ) -> None:
        super().__init__(name, workdir, port, core, tls, audit)
        self.config_path = self.workdir / f"{self.name}.toml"
        self.db_path = self.workdir / f"{self.name}.db"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "mssm"), "server", "-config", str(self.config_path)]

    def write_config(self) -> None:
        lines = [
            'log_level = "warn"',
            "[listener]",
            f'address = "127.0.0.1:{self.port}"',
        ]
        if self.tls:
            lines += [
                f'tls_cert_file = "{self.tls[0]}"',
                f'tls_key_file = "{self.tls[1]}"',
            ]
        else:
            lines.append("tls_disable = true")
        lines += ["[storage]", 'type = "sqlite"', f'path = "{self.db_path}"']
        if self.audit:
            lines += [
                "[[audit]]",
                'type = "file"',
                'path = "file"',
                f'options = {{ file_path = "{self.audit_log}" }}',
            ]
        self.config_path.write_text("\n".join(lines) + "\n")


class BaoServer(VaultServer):
    system = OPENBAO

    def __init__(
        self,
        name: str,
        workdir: Path,
        port: int,
        core: int | None,
        tls: tuple[Path, Path] | None = None,
        audit: bool = True,
        *,
        cluster_port: int,
        disk_storage: bool = False,
    ) -> None:
        super().__init__(name, workdir, port, core, tls, audit)
        self.cluster_port = cluster_port
        self.disk_storage = disk_storage
        self.config_path = self.workdir / f"{self.name}.hcl"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "bao"), "server", "-config", str(self.config_path)]

    def write_config(self) -> None:
        # disable_mlock is left out: OpenBao 2.7 reports it as an unknown field.
        if self.disk_storage:
            data_dir = self.workdir / f"{self.name}-data"
            data_dir.mkdir(exist_ok=True)
            storage = (
                f'storage "raft" {{\n  path = "{data_dir}"\n  node_id = "bench"\n}}'
            )
        else:
            storage = 'storage "inmem" {}'
        if self.tls:
            tls = f'tls_cert_file = "{self.tls[0]}"\n  tls_key_file = "{self.tls[1]}"'
        else:
            tls = "tls_disable = true"
        scheme = "https" if self.tls else "http"

        parts = [
            storage,
            'listener "tcp" {\n'
            f'  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n'
            f"  {tls}\n}}",
            f'api_addr = "{scheme}://127.0.0.1:{self.port}"',
            f'cluster_addr = "https://127.0.0.1:{self.cluster_port}"',
            'log_level = "warn"',
        ]
        if self.audit:
            # OpenBao 2.x rejects audit devices created through the API, so
            # the file device is declared in the config file.
            parts.append(
                'audit "file" "file" {\n'
                f'  options {{\n    file_path = "{self.audit_log}"\n  }}\n}}'
            )
        self.config_path.write_text("\n".join(parts) + "\n")


class FloorServer(ServerProcess):
    system = FLOOR

    def __init__(
        self,
        name: str,
        workdir: Path,
        port: int,
        core: int | None,
        tls: tuple[Path, Path] | None = None,
        *,
        body_size: int,
    ) -> None:
        super().__init__(name, workdir, port, core, tls)
        self.body_size = body_size
        self._api = VaultAPI(self.url, verify=str(self.tls[0]) if self.tls else True)

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "bench.floor",
            "--port",
            str(self.port),
            "--body-size",
            str(self.body_size),
        ]
        if self.tls:
            command += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        return command

    def ready(self) -> bool:
        return self._api.request("GET", "sys/health").status == 200

    def close_clients(self) -> None:
        self._api.close()


class Fleet:
    """The servers of one run, started on first use and stopped together.

    A server that failed to start is remembered, so the scenarios after it
    report it unavailable at once instead of waiting for it again.
    """

    def __init__(self, workdir: Path, cores: Cores) -> None:
        self.workdir = workdir
        self.cores = cores
        self.ports = PortAllocator()
        self.servers: dict[tuple[str, str], ServerProcess] = {}
        self.failures: dict[tuple[str, str], str] = {}
        self.floor_body_size = 0
        self._tls: tuple[Path, Path] | None = None

    @property
    def tls_files(self) -> tuple[Path, Path]:
        if self._tls is None:
            self._tls = make_tls_cert(self.workdir)
        return self._tls

    def get(self, system: str, variant: str = MAIN) -> ServerProcess:
        key = (system, normalise_variant(system, variant))
        if key in self.failures:
            raise ServerError(self.failures[key])
        if key not in self.servers:
            try:
                self.servers[key] = self._start(*key)
            except ServerError as exc:
                self.failures[key] = str(exc)
                raise
        return self.servers[key]

    def start_fresh(self, system: str, name: str) -> VaultServer:
        """Start a new MSSM or OpenBao server of the main variant, named name."""
        server = self._start(system, MAIN, name)
        if not isinstance(server, VaultServer):
            raise ServerError(f"{system} is not a Vault API server")
        self.servers[(system, name)] = server
        return server

    def stop_server(self, server: ServerProcess) -> None:
        server.stop()
        for key, running in list(self.servers.items()):
            if running is server:
                del self.servers[key]

    def _start(self, system: str, variant: str, name: str = "") -> ServerProcess:
        server = self.create(system, variant, name or f"{system}-{variant}")
        try:
            server.start()
            if isinstance(server, VaultServer):
                server.bootstrap()
        except (ServerError, OSError, KeyError, ValueError) as exc:
            # KeyError and ValueError come from an init response without the
            # expected keys or JSON.
            server.stop()
            raise ServerError(f"{server.name} failed to start: {exc!r}") from None
        return server

    def create(self, system: str, variant: str, name: str) -> ServerProcess:
        """Build a server object for the variant, without starting it."""
        tls = self.tls_files if variant == TLS else None
        audit = variant != NO_AUDIT
        port = self.ports.take()
        core = self.cores.server
        if system == MSSM:
            return MssmServer(name, self.workdir, port, core, tls, audit)
        if system == OPENBAO:
            return BaoServer(
                name,
                self.workdir,
                port,
                core,
                tls,
                audit,
                cluster_port=self.ports.take(),
                disk_storage=variant == DISK_STORAGE,
            )
        return FloorServer(
            name, self.workdir, port, core, tls, body_size=self.floor_body_size or 320
        )

    def stop_all(self) -> None:
        servers = list(self.servers.values())
        self.servers.clear()
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait_stopped()


def normalise_variant(system: str, variant: str) -> str:
    """Map a variant to the server that serves it: the floor has no audit device,
    and only OpenBao has a separate file-storage server."""
    if system == FLOOR and variant != TLS:
        return MAIN
    if system != OPENBAO and variant == DISK_STORAGE:
        return MAIN
    return variant
