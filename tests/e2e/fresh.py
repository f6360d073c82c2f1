"""Production servers that start uninitialised, for the tests that drive
init, unseal, seal and rekey themselves."""

from __future__ import annotations

from pathlib import Path

from tests.server import ServerProcess, free_port


def write_config(directory: Path, port: int, top: str = "", extra: str = "") -> Path:
    """Write a plain-HTTP SQLite config; top holds top-level keys, extra
    more tables after [storage]."""
    text = (
        f"{top}\n"
        f'[listener]\naddress = "127.0.0.1:{port}"\ntls_disable = true\n'
        f'[storage]\ntype = "sqlite"\npath = "{directory}/mssm.db"\n'
        f"{extra}"
    )
    path = directory / "mssm.toml"
    path.write_text(text)
    return path


def start_fresh(directory: Path, top: str = "", extra: str = "") -> ServerProcess:
    """Start a server on SQLite in directory, not initialised."""
    port = free_port()
    config = write_config(directory, port, top, extra)
    server = ServerProcess(f"http://127.0.0.1:{port}", config, directory / "server.log")
    server.start()
    return server


def start_initialised(
    directory: Path, shares: int = 5, threshold: int = 3, top: str = ""
) -> ServerProcess:
    """Start a server, initialise it with shares/threshold and unseal it."""
    server = start_fresh(directory, top)
    server.init_and_unseal(shares, threshold)
    return server


__all__ = ["start_fresh", "start_initialised", "write_config"]
