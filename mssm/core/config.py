"""Server configuration from a TOML file, with Vault's defaults."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

from mssm.core.durations import parse_duration
from mssm.storage.cache import DEFAULT_CACHE_ENTRIES

DEFAULT_LEASE_TTL = 768 * 3600
DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024


class ConfigError(Exception):
    """The configuration file is invalid; the message names the key."""


@dataclass
class ListenerConfig:
    address: str = "127.0.0.1:8200"
    tls_disable: bool = False
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_min_version: str = "tls12"
    tls_client_ca_file: str = ""
    # The unseal-key quorum and the operation's nonce authorise sys/rekey and
    # sys/generate-root, as in Vault. True makes them need a sudo token too.
    disable_unauthed_rekey_endpoints: bool = False
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE


@dataclass
class StorageConfig:
    type: str = "sqlite"
    path: str = "mssm.db"
    connection_url: str = ""


@dataclass
class TelemetryConfig:
    unauthenticated_metrics_access: bool = False


@dataclass
class BootstrapConfig:
    init_allowed_networks: list[str] = field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )


@dataclass
class AuditDeviceConfig:
    type: str = "file"
    path: str = "file"
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditAPIConfig:
    allow_api_audit_creation: bool = False
    allowed_directory: str = ""


@dataclass
class Config:
    log_level: str = "info"
    default_lease_ttl: int = DEFAULT_LEASE_TTL
    max_lease_ttl: int = DEFAULT_LEASE_TTL
    listener: ListenerConfig = field(default_factory=ListenerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    audit: list[AuditDeviceConfig] = field(default_factory=list)
    audit_api: AuditAPIConfig = field(default_factory=AuditAPIConfig)
    # The read cache in front of storage, as Vault's disable_cache and
    # cache_size: entries kept, evicted least recently used first.
    disable_cache: bool = False
    cache_size: int = DEFAULT_CACHE_ENTRIES
    dev: bool = False
    dev_root_token_id: str = ""
    # Seconds added to the core's clock. Tests use it to let scheduled work
    # fall due across a restart; a real deployment leaves it at 0.
    test_clock_offset: int = 0


_SECTIONS = {
    "listener": ListenerConfig,
    "storage": StorageConfig,
    "telemetry": TelemetryConfig,
    "bootstrap": BootstrapConfig,
    "audit_api": AuditAPIConfig,
}


def load_config(path: str) -> Config:
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    return parse_config(raw)


def parse_config(raw: dict[str, Any]) -> Config:
    known = {f.name for f in fields(Config)} - {"dev", "dev_root_token_id"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
    config = Config()
    for name, value in raw.items():
        if name in _SECTIONS:
            setattr(config, name, _section(name, _SECTIONS[name], value))
        elif name == "audit":
            config.audit = [_section("audit", AuditDeviceConfig, v) for v in value]
        elif name in ("default_lease_ttl", "max_lease_ttl", "test_clock_offset"):
            setattr(config, name, _duration(name, value))
        elif name == "log_level":
            config.log_level = _log_level(value)
        elif name == "disable_cache":
            config.disable_cache = _boolean(name, value)
        elif name == "cache_size":
            config.cache_size = _cache_size(value)
    _validate(config)
    return config


def _section(name: str, cls: type, value: object) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    allowed = {f.name: f for f in fields(cls)}
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown keys in [{name}]: {', '.join(unknown)}")
    instance = cls()
    for key, item in value.items():
        expected = type(getattr(instance, key))
        if expected is int and isinstance(item, bool) or not isinstance(item, expected):
            raise ConfigError(
                f"[{name}] {key} must be of type {expected.__name__}, got {item!r}"
            )
        setattr(instance, key, item)
    return instance


def _duration(name: str, value: object) -> int:
    try:
        return parse_duration(value, name)
    except Exception as exc:
        raise ConfigError(f"invalid {name}: {exc}") from None


def _boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def _cache_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"cache_size must be a positive number of entries, got {value!r}"
        )
    return value


def _log_level(value: object) -> str:
    levels = ("trace", "debug", "info", "warn", "warning", "error")
    if not isinstance(value, str) or value.lower() not in levels:
        raise ConfigError(f"log_level must be one of {', '.join(levels)}")
    return value.lower()


def _validate(config: Config) -> None:
    if config.storage.type not in ("inmem", "sqlite", "postgresql"):
        raise ConfigError(
            f"[storage] type {config.storage.type!r} is not one of "
            "inmem, sqlite, postgresql"
        )
    if config.storage.type == "sqlite" and not config.storage.path:
        # SQLite would open a temporary database, deleted when it closes.
        raise ConfigError(
            "[storage] path is required with type sqlite: the database file, "
            'such as "/var/lib/mssm/mssm.db"'
        )
    if config.storage.type == "postgresql":
        _validate_connection_url(config.storage.connection_url)
    if config.listener.tls_min_version not in ("tls12", "tls13"):
        raise ConfigError("[listener] tls_min_version must be tls12 or tls13")
    listener = config.listener
    if not listener.tls_disable and not (
        listener.tls_cert_file and listener.tls_key_file
    ):
        raise ConfigError(
            "[listener] needs tls_cert_file and tls_key_file, or tls_disable = true"
        )
    if listener.max_request_size <= 0:
        raise ConfigError("[listener] max_request_size must be a positive integer")
    if config.default_lease_ttl > config.max_lease_ttl:
        raise ConfigError("default_lease_ttl must not exceed max_lease_ttl")


def _validate_connection_url(url: str) -> None:
    # The URL may carry a password, so no message quotes it.
    example = "postgresql://USER:PASSWORD@HOST:5432/DATABASE"
    if not url:
        raise ConfigError(
            "[storage] connection_url is required with type postgresql, "
            f"as a URL like {example}"
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "[storage] connection_url must start with postgresql:// or "
            f"postgres://, as in {example}"
        )
    if _unencoded_user_info(url):
        raise ConfigError(
            "[storage] connection_url is invalid: it has an '@' in the host or "
            "the database name, as when the user name or password contains an "
            "'@' or '/' that is not percent-encoded; write '@' as %40 and '/' "
            "as %2F"
        )


def _unencoded_user_info(url: str) -> bool:
    """Return whether an '@' or '/' in the user info would split the URL.

    libpq ends the user info at the first '@' and the host at the first
    '/'. An unencoded '@' in the password puts the rest of it in the host,
    and a '/' puts its parts in the port and the database name. Messages
    name the host and the database, so both would show part of the password.
    """
    rest = url.split("://", 1)[1]
    authority, _, path = rest.partition("/")
    _, at, host = authority.partition("@")
    if at:
        return "@" in host
    database = path.split("?", 1)[0]
    return "@" in database
