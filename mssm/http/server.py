"""Start the server: build the core from the config and run uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from collections.abc import Iterator

import uvicorn

from mssm.core.config import Config, ConfigError, load_config
from mssm.core.core import Core
from mssm.http.app import App, current_request_id
from mssm.http.protocol import VaultHttpProtocol
from mssm.http.tls import server_context
from mssm.storage.base import Backend, StorageError

logger = logging.getLogger("mssm.server")

DEV_ADDRESS = "127.0.0.1:8200"
_LOG_LEVELS = {"trace": "DEBUG", "debug": "DEBUG", "info": "INFO", "warn": "WARNING"}
_LOG_LEVELS |= {"warning": "WARNING", "error": "ERROR"}


def dev_config(root_token_id: str = "", listen_address: str = "") -> Config:
    config = Config(dev=True, dev_root_token_id=root_token_id)
    config.storage.type = "inmem"
    config.listener.tls_disable = True
    config.listener.address = listen_address or DEV_ADDRESS
    host, _ = split_address(config.listener.address)
    if not ipaddress.ip_address(host).is_loopback:
        raise ConfigError(
            f"dev mode listens on loopback only; {host} is not a loopback address"
        )
    return config


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ConfigError(f"[listener] address {address!r} must be HOST:PORT")
    return host, int(port)


async def open_backend(config: Config) -> Backend:
    storage = config.storage
    if storage.type == "inmem":
        from mssm.storage.inmem import InmemBackend

        return InmemBackend()
    if storage.type == "sqlite":
        from mssm.storage.sqlite import SQLiteBackend

        try:
            return SQLiteBackend(storage.path)
        except StorageError as exc:
            raise ConfigError(f"cannot open sqlite storage: {exc}") from None
    from mssm.storage.postgresql import PostgreSQLBackend

    try:
        backend = PostgreSQLBackend(storage.connection_url)
        await backend.open()
    except StorageError as exc:
        # serve() reports a ConfigError as one line and exit status 1.
        raise ConfigError(f"cannot open postgresql storage: {exc}") from None
    return backend


class RequestIdFilter(logging.Filter):
    """Append the id of the request being served to each log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        record.request_suffix = f" request_id={request_id}" if request_id else ""
        return True


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=_LOG_LEVELS.get(level, "INFO"),
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s%(request_suffix)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())


def serve(
    config_path: str | None = None,
    dev: bool = False,
    dev_root_token_id: str = "",
    dev_listen_address: str = "",
) -> int:
    """Run the server until SIGTERM or SIGINT; return the exit code."""
    try:
        if dev:
            config = dev_config(dev_root_token_id, dev_listen_address)
        elif config_path:
            config = load_config(config_path)
        else:
            raise ConfigError("a config file is required: -config FILE.toml, or -dev")
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    configure_logging(config.log_level)
    try:
        import uvloop

        uvloop.run(run(config))
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


async def run(config: Config) -> None:
    core = Core(config, await open_backend(config))
    if config.dev:
        await bootstrap_dev(core)
    server = GracefulServer(uvicorn_config(config, core))
    logger.info(
        "listening on %s (tls %s)",
        config.listener.address,
        "off" if config.listener.tls_disable else "on",
    )
    try:
        await server.serve()
    finally:
        await shutdown(core)


class GracefulServer(uvicorn.Server):
    """uvicorn's server without its habit of raising the caught signal again
    once it stops: that would kill the process before the core is sealed and
    storage closed. A second SIGINT still forces the exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def uvicorn_config(config: Config, core: Core) -> uvicorn.Config:
    host, port = split_address(config.listener.address)
    listener = config.listener
    options: dict = {}
    if not listener.tls_disable:
        options["ssl_certfile"] = listener.tls_cert_file
        options["ssl_context_factory"] = lambda _config, _default: server_context(
            listener
        )
    return uvicorn.Config(
        App(core, listener.max_request_size),
        host=host,
        port=port,
        loop="uvloop",
        http=VaultHttpProtocol,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=5,
        **options,
    )


async def bootstrap_dev(core: Core) -> None:
    """Initialise with one share, unseal, and mount the dev engines."""
    from mssm.core.mounts import MountEntry

    shares = await core.seal_manager.initialize(1, 1)
    await core.seal_manager.submit_share(shares[0])
    await core.post_unseal()
    root_token = await core.tokens.create_root(token_id=core.config.dev_root_token_id)
    await core.mount(
        MountEntry(
            path="secret/",
            type="kv",
            options={"version": "2"},
            description="key/value secret storage",
        )
    )
    if "transit" in core.engine_types:
        await core.mount(MountEntry(path="transit/", type="transit"))
    logger.warning("dev mode: in-memory storage, unsealed, plain HTTP on loopback")
    print(
        "WARNING! dev mode is enabled: storage is in memory and the server is "
        "unsealed.\n\n"
        f"Unseal Key: {shares[0].hex()}\n"
        f"Root Token: {root_token}\n",
        flush=True,
    )


async def shutdown(core: Core) -> None:
    logger.info("shutting down")
    try:
        if not core.sealed:
            await core.seal()
        await core.audit.close()
    finally:
        await core.backend.close()
        await asyncio.sleep(0)
