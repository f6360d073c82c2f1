"""Audit broker: every request and response passes through it.

Devices are declared in the config file ([[audit]] tables) or, when the
config's [audit_api] allows it, enabled through sys/audit. Each request is
recorded before its engine runs, and each response before it is sent. When
devices are enabled and none of them can record a line, the request fails
with a 500 (fail closed).

No secret reaches a device in the clear: every scalar in request and
response data (strings, numbers and booleans alike), every token and, by
default, every accessor is replaced by "hmac-sha256:<hex>" under a salt kept
per device in the barrier. sys/audit-hash computes the same value for a
given input, so an operator can search a log.

Storage layout (a view under sys/audit/):
    signing-key            the Ed25519 key of the checkpoints
    salt/<device>          the HMAC key of one device
    checkpoint/<device>    the device's latest checkpoint and chain head
    devices                devices enabled through the API
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mssm.core import metrics
from mssm.core.audit_chain import key_id, public_key_text
from mssm.core.audit_file import STDOUT, AuditWriteError, ChainHead, FileAuditWriter
from mssm.core.barrier import StorageView
from mssm.core.config import AuditAPIConfig, AuditDeviceConfig, ConfigError
from mssm.core.errors import APIError, BadRequest
from mssm.core.request import Request, Response
from mssm.core.timefmt import rfc3339

logger = logging.getLogger(__name__)

HMAC_PREFIX = "hmac-sha256:"
DEVICE_TYPES = ("file",)
DEVICE_OPTIONS = ("file_path", "mode", "hmac_accessor")
DEFAULT_MODE = 0o600
# The id that names this process's chain in every line.
# NOTE: several worker processes writing one file need distinct ids, but
# every MSSM process uses this one.
WRITER_ID = "0"
HASH_CACHE_SIZE = 4096
AUDIT_FAILED = (
    "failed to write the audit log: no audit device could record the request; "
    "see the server log"
)


@dataclass
class AuditDevice:
    path: str
    type: str
    description: str
    options: dict[str, str]
    declared: bool
    salt: bytes = field(default=b"", repr=False)
    writer: FileAuditWriter | None = None
    _cached: dict[str, str] = field(default_factory=dict, repr=False)
    _keyed: tuple[bytes, hmac.HMAC] | None = field(default=None, repr=False)

    @property
    def file_path(self) -> str:
        return self.options["file_path"]

    @property
    def hmac_accessor(self) -> bool:
        return self.options.get("hmac_accessor", "true") != "false"

    def hash(self, value: Any) -> str:
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        keyed = self._keyed
        if keyed is None or keyed[0] is not self.salt:
            keyed = self._keyed = (self.salt, hmac.new(self.salt, digestmod="sha256"))
        # A copy of an HMAC already keyed with the salt skips the key setup,
        # about a third of the cost of hashing a short value.
        mac = keyed[1].copy()
        mac.update(text.encode())
        return HMAC_PREFIX + mac.hexdigest()

    def hash_cached(self, value: str, key: str) -> str:
        """Hash a token or accessor, remembering the result under key.

        Every line of a request repeats its token and accessor, so the
        cache saves most of the HMACs a request costs. key must not be a
        secret itself: the token's id hash, or the accessor.
        """
        cached = self._cached.get(key)
        if cached is None:
            if len(self._cached) >= HASH_CACHE_SIZE:
                self._cached.clear()
            cached = self._cached[key] = self.hash(value)
        return cached

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "description": self.description,
            "options": self.options,
            "local": False,
            "path": self.path,
        }


def normalize_path(path: str) -> str:
    cleaned = path.strip().strip("/")
    if not cleaned:
        raise BadRequest("audit device path must not be empty")
    return cleaned + "/"


def validate_options(device_type: str, options: dict[str, Any]) -> dict[str, str]:
    """Check a device's type and options, and return the options as strings."""
    if device_type not in DEVICE_TYPES:
        raise BadRequest(f'unknown backend type: "{device_type}"')
    if "log_raw" in options:
        raise BadRequest(
            "option log_raw is not supported: secret values never reach the "
            "audit log in the clear"
        )
    unknown = sorted(set(options) - set(DEVICE_OPTIONS))
    if unknown:
        raise BadRequest(
            f"unknown audit option {unknown[0]!r}; accepted: "
            f"{', '.join(DEVICE_OPTIONS)}"
        )
    values = {k: _option_text(v) for k, v in options.items()}
    if not values.get("file_path"):
        raise BadRequest("option file_path is required: a file path, or stdout")
    _parse_mode(values.get("mode", ""))
    if values.get("hmac_accessor", "true") not in ("true", "false"):
        raise BadRequest("option hmac_accessor must be true or false")
    return values


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_mode(text: str) -> int:
    if not text:
        return DEFAULT_MODE
    try:
        mode = int(text, 8)
    except ValueError:
        raise BadRequest(
            f"invalid option mode {text!r}: expected octal file permissions, "
            'e.g. "0600"'
        ) from None
    if not 0 <= mode <= 0o777:
        raise BadRequest(f"invalid option mode {text!r}: must be between 0000 and 0777")
    return mode


class AuditBroker:
    def __init__(self) -> None:
        self.devices: dict[str, AuditDevice] = {}
        self._declared: list[AuditDevice] = []
        self._api = AuditAPIConfig()
        self._storage: StorageView | None = None
        self._signing_key: Ed25519PrivateKey | None = None
        self._rejected_failures = 0

    @property
    def enabled(self) -> bool:
        # Declared devices count before they are open, so nothing is served
        # unaudited while the core unseals.
        return bool(self.devices or self._declared)

    def declare(self, configs: list[AuditDeviceConfig], api: AuditAPIConfig) -> None:
        """Take the config's devices; raise ConfigError on an invalid one."""
        self._api = api
        declared: dict[str, AuditDevice] = {}
        for config in configs:
            try:
                path = normalize_path(config.path)
                options = validate_options(config.type, config.options)
            except BadRequest as exc:
                raise ConfigError(
                    f"[[audit]] {config.path!r}: {exc.messages[0]}"
                ) from None
            if path in declared:
                raise ConfigError(f"[[audit]] path {path!r} is declared twice")
            declared[path] = AuditDevice(
                path, config.type, config.description, options, declared=True
            )
        self._declared = list(declared.values())

    # -- lifecycle -------------------------------------------------------------

    async def start(self, storage: StorageView) -> None:
        """Open every device after unseal: the declared and the API ones."""
        self._storage = storage
        self._signing_key = await self._load_signing_key()
        devices = [_copy(d) for d in self._declared] + await self._api_devices()
        for device in devices:
            await self._open(device)
            self.devices[device.path] = device
        if devices:
            logger.info("audit devices open: %s", ", ".join(self.devices))

    async def stop(self) -> None:
        """Write final checkpoints and close every device."""
        devices, self.devices = list(self.devices.values()), {}
        for device in devices:
            if device.writer is not None:
                await device.writer.close()

    async def close(self) -> None:
        await self.stop()

    async def _load_signing_key(self) -> Ed25519PrivateKey:
        storage = self._require_storage()
        raw = await storage.get("signing-key")
        if raw is None:
            key = Ed25519PrivateKey.generate()
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            await storage.put("signing-key", raw)
            return key
        return Ed25519PrivateKey.from_private_bytes(raw)

    async def _api_devices(self) -> list[AuditDevice]:
        stored = await self._require_storage().get_json("devices") or []
        return [AuditDevice(**item, declared=False) for item in stored]

    async def _save_api_devices(self) -> None:
        stored = [
            {
                "path": d.path,
                "type": d.type,
                "description": d.description,
                "options": d.options,
            }
            for d in self.devices.values()
            if not d.declared
        ]
        await self._require_storage().put_json("devices", stored)

    async def _open(self, device: AuditDevice) -> None:
        storage = self._require_storage()
        name = device.path.rstrip("/")
        salt = await storage.get(f"salt/{name}")
        if salt is None:
            salt = secrets.token_bytes(32)
            await storage.put(f"salt/{name}", salt)
        device.salt = salt
        stored = await storage.get_json(f"checkpoint/{name}")
        head = ChainHead(stored["seq"], stored["line_hash"]) if stored else None
        assert self._signing_key is not None
        device.writer = FileAuditWriter(
            device.path,
            device.file_path,
            _parse_mode(device.options.get("mode", "")),
            WRITER_ID,
            self._signing_key,
            lambda checkpoint, head: self._store_checkpoint(device, checkpoint, head),
        )
        await device.writer.open(head)

    async def _store_checkpoint(
        self, device: AuditDevice, checkpoint: dict[str, Any], head: ChainHead
    ) -> None:
        record = checkpoint | {"line_hash": head.hash, "file_path": device.file_path}
        name = device.path.rstrip("/")
        await self._require_storage().put_json(f"checkpoint/{name}", record)

    def _require_storage(self) -> StorageView:
        if self._storage is None:
            raise APIError("audit devices are not open: the core is sealed", status=503)
        return self._storage

    # -- the sys/audit API -----------------------------------------------------

    def describe(self) -> dict[str, dict[str, Any]]:
        return {path: device.describe() for path, device in self.devices.items()}

    async def enable(
        self, path: str, device_type: str, description: str, options: dict[str, Any]
    ) -> None:
        path = normalize_path(path)
        self._check_api_allowed()
        if path in self.devices:
            raise BadRequest("path already in use")
        values = validate_options(device_type, options)
        self._check_allowed_file(
            values["file_path"], _parse_mode(values.get("mode", ""))
        )
        device = AuditDevice(path, device_type, description, values, declared=False)
        await self._open(device)
        self.devices[path] = device
        await self._save_api_devices()
        logger.info("audit device %s enabled (%s)", path, values["file_path"])

    def _check_api_allowed(self) -> None:
        if self._api.allow_api_audit_creation:
            return
        raise BadRequest(
            "audit devices are not enabled through the API on this server: "
            "declare the device in the config file as an [[audit]] table "
            '(type = "file", path = "file", options = { file_path = '
            '"/var/log/mssm/audit.log" }) and restart, or set [audit_api] '
            "allow_api_audit_creation = true with an allowed_directory"
        )

    def _check_allowed_file(self, file_path: str, mode: int) -> None:
        if file_path == STDOUT:
            return
        directory = self._api.allowed_directory
        if not directory:
            raise BadRequest(
                "[audit_api] allowed_directory is not set, so no audit file may be "
                "created through the API"
            )
        if not os.path.isabs(file_path):
            raise BadRequest(f"file_path {file_path!r} must be an absolute path")
        allowed = os.path.realpath(directory)
        real = os.path.realpath(file_path)
        if os.path.commonpath([real, allowed]) != allowed:
            raise BadRequest(
                f"file_path {file_path!r} is outside [audit_api] allowed_directory "
                f"{directory!r}"
            )
        _check_writable(file_path, mode)

    async def disable(self, path: str) -> None:
        path = normalize_path(path)
        device = self.devices.get(path)
        if device is None:
            return
        if device.declared:
            raise BadRequest(
                f"audit device {path} is declared in the config file; remove its "
                "[[audit]] table and restart to disable it"
            )
        del self.devices[path]
        await self._save_api_devices()
        if device.writer is not None:
            await device.writer.close()
        logger.info("audit device %s disabled", path)

    def hash(self, path: str, value: str) -> str:
        device = self.devices.get(normalize_path(path))
        if device is None:
            raise BadRequest(f'unknown audit backend "{normalize_path(path)}"')
        return device.hash(value)

    async def checkpoints(self) -> dict[str, Any]:
        """Return the public key and each device's latest stored checkpoint."""
        storage = self._require_storage()
        assert self._signing_key is not None
        public_key = self._signing_key.public_key()
        stored = {}
        for path in self.devices:
            record = await storage.get_json(f"checkpoint/{path.rstrip('/')}")
            if record is not None:
                stored[path] = record
        return {
            "public_key": public_key_text(public_key),
            "key_id": key_id(public_key),
            "checkpoints": stored,
        }

    # -- recording -------------------------------------------------------------

    async def log_request(self, req: Request) -> None:
        """Record req on every device, and raise a 500 if no device could."""
        if not self.enabled:
            return
        await self._record(lambda device: [request_entry(device, req)], sync=False)

    async def log_response(
        self,
        req: Request,
        resp: Response | None,
        error: Exception | None,
        requested_at: float | None = None,
    ) -> None:
        """Record the outcome of req on every device, or raise a 500 if none could.

        requested_at, when given, is the time req arrived: its request line,
        not written yet, goes first in the same write. That is for requests
        that change nothing, whose line need not be on disk before they run.
        """
        if not self.enabled:
            return
        if requested_at is not None:
            await self._record(
                lambda device: [
                    request_entry(device, req, requested_at),
                    response_entry(device, req, resp, error),
                ]
            )
            return
        await self._record(lambda device: [response_entry(device, req, resp, error)])

    async def log_rejected(self, req: Request, message: str) -> None:
        """Record a request rejected before it ran; a failure here is only counted."""
        if not self.enabled:
            return
        try:
            await self._record(lambda device: [rejected_entry(device, req, message)])
        except APIError:
            self._rejected_failures += 1

    async def _record(self, build: Any, sync: bool = True) -> None:
        devices = list(self.devices.values())
        if len(devices) == 1:
            failed = not await _write(devices[0], build, sync)
        else:
            writes = (_write(device, build, sync) for device in devices)
            results = await asyncio.gather(*writes)
            failed = not any(results)
        if failed:
            metrics.audit_failures.inc()
            raise APIError(AUDIT_FAILED, status=500)


async def _write(device: AuditDevice, build: Any, sync: bool) -> bool:
    if device.writer is None:
        return False
    try:
        await device.writer.write_many(build(device), sync)
    except AuditWriteError:
        return False
    return True


def _copy(device: AuditDevice) -> AuditDevice:
    return AuditDevice(
        device.path, device.type, device.description, dict(device.options), True
    )


def _check_writable(file_path: str, mode: int) -> None:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    try:
        fd = os.open(file_path, flags, mode or DEFAULT_MODE)
    except OSError as exc:
        raise BadRequest(
            f"cannot open audit file {file_path}: {exc.strerror}; check that the "
            "directory exists and the server may write to it"
        ) from None
    os.close(fd)


# -- entries -----------------------------------------------------------------


def hash_values(device: AuditDevice, value: Any) -> Any:
    """Replace every scalar in value with its HMAC, keeping keys and nulls."""
    # Exact types first: this runs for every field of every audited body.
    kind = type(value)
    if kind is str:
        return device.hash(value)
    if kind is dict or isinstance(value, dict):
        return {k: hash_values(device, v) for k, v in value.items()}
    if value is None:
        return None
    if kind is list or isinstance(value, list | tuple):
        return [hash_values(device, v) for v in value]
    return device.hash(value)


def _accessor(device: AuditDevice, accessor: str) -> str:
    if not accessor:
        return ""
    if not device.hmac_accessor:
        return accessor
    return device.hash_cached(accessor, "accessor:" + accessor)


def _client_token(device: AuditDevice, req: Request) -> str:
    if not req.client_token:
        return ""
    if req.token is None:
        return device.hash(req.client_token)
    return device.hash_cached(req.client_token, "token:" + req.token.id_hash)


def _auth(device: AuditDevice, req: Request) -> dict[str, Any]:
    token = req.token
    client_token = _client_token(device, req)
    if token is None:
        return {"client_token": client_token} if client_token else {}
    return {
        "client_token": client_token,
        "accessor": _accessor(device, token.accessor),
        "display_name": token.display_name,
        "policies": token.policies,
        "token_policies": token.policies,
        "metadata": hash_values(device, token.meta) or None,
        "entity_id": "",
        "token_type": token.type,
        "token_ttl": token.ttl,
        "token_issue_time": rfc3339(token.creation_time),
    }


def _request(device: AuditDevice, req: Request) -> dict[str, Any]:
    client_token = _client_token(device, req)
    body: dict[str, Any] = {
        "id": req.request_id,
        "operation": req.operation,
        "mount_point": req.mount_point,
        "mount_type": req.mount_type,
        "mount_accessor": req.mount_accessor,
        "client_token": client_token,
        "client_token_accessor": _accessor(device, req.token_accessor),
        "path": req.path,
        "data": hash_values(device, req.data) or None,
        "remote_address": req.remote_addr,
    }
    if req.wrap_ttl:
        body["wrap_ttl"] = req.wrap_ttl
    return body


def _hashed_request(
    device: AuditDevice, req: Request
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the auth and request sections of req's lines on device.

    Both lines of a request carry the same sections, so they are hashed
    once and kept on the request.
    """
    sections = req.audit_sections.get(device.path)
    if sections is None:
        sections = (_auth(device, req), _request(device, req))
        req.audit_sections[device.path] = sections
    return sections


def request_entry(
    device: AuditDevice, req: Request, at: float | None = None
) -> dict[str, Any]:
    auth, request = _hashed_request(device, req)
    return {
        "time": rfc3339(time.time() if at is None else at),
        "type": "request",
        "auth": auth,
        "request": request,
    }


def rejected_entry(device: AuditDevice, req: Request, message: str) -> dict[str, Any]:
    entry = response_entry(device, req, None, None)
    entry["error"] = message
    return entry


def response_entry(
    device: AuditDevice, req: Request, resp: Response | None, error: Exception | None
) -> dict[str, Any]:
    auth, request = _hashed_request(device, req)
    entry: dict[str, Any] = {
        "time": rfc3339(time.time()),
        "type": "response",
        "auth": auth,
        "request": request,
        "response": _response(device, req, resp) if resp is not None else {},
    }
    if error is not None:
        entry["error"] = _error_text(error)
    return entry


def _response(device: AuditDevice, req: Request, resp: Response) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mount_point": req.mount_point,
        "mount_type": req.mount_type,
        "data": hash_values(device, resp.data),
        "warnings": resp.warnings or None,
    }
    if resp.auth is not None:
        body["auth"] = _response_auth(device, resp.auth)
    if resp.wrap_info is not None:
        body["wrap_info"] = _wrap_info(device, resp.wrap_info)
    if resp.lease_id:
        body["secret"] = {"lease_id": resp.lease_id}
    return body


def _response_auth(device: AuditDevice, auth: dict[str, Any]) -> dict[str, Any]:
    hashed = dict(auth)
    if auth.get("client_token"):
        hashed["client_token"] = device.hash(auth["client_token"])
    hashed["accessor"] = _accessor(device, auth.get("accessor", ""))
    hashed["metadata"] = hash_values(device, auth.get("metadata"))
    return hashed


def _wrap_info(device: AuditDevice, wrap_info: dict[str, Any]) -> dict[str, Any]:
    hashed = dict(wrap_info)
    hashed["token"] = device.hash(wrap_info["token"])
    hashed["accessor"] = _accessor(device, wrap_info.get("accessor", ""))
    if wrap_info.get("wrapped_accessor"):
        hashed["wrapped_accessor"] = _accessor(device, wrap_info["wrapped_accessor"])
    return hashed


def _error_text(error: Exception) -> str:
    if isinstance(error, APIError):
        return "; ".join(error.messages)
    return f"internal error ({type(error).__name__})"
