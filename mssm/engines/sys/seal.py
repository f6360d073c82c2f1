"""The system backend at sys/: seal lifecycle, mounts and the keyring."""

from __future__ import annotations

import base64
import ipaddress
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from mssm import __version__
from mssm.core.errors import BadRequest, PermissionDenied
from mssm.core.fields import ANY, BOOL, INT, STRING, Field
from mssm.core.request import DELETE, READ, UPDATE, Request, Response
from mssm.core.seal import decode_share, share_candidates, validate_share_counts
from mssm.engines.base import Route

if TYPE_CHECKING:
    from mssm.core.core import Core


def plain(body: dict[str, Any], status: int = 200) -> Response:
    """Build a response sent without the Vault envelope, as sys/init sends it."""
    return Response(raw_body=orjson.dumps(body), status=status)


CLUSTER_PATH = "core/cluster"


class SealSection:
    """Init, seal, unseal, health, rekey and the barrier keyring."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.cluster: dict[str, str] = {}

    async def setup(self) -> None:
        """Load the cluster name and id, creating them on the first unseal."""
        raw = await self.core.barrier.get(CLUSTER_PATH)
        if raw is None:
            cluster_id = str(uuid.uuid4())
            cluster = {"name": f"mssm-cluster-{cluster_id[:8]}", "id": cluster_id}
            await self.core.barrier.put(CLUSTER_PATH, orjson.dumps(cluster))
            raw = orjson.dumps(cluster)
        self.cluster = orjson.loads(raw)

    def _cluster_fields(self) -> dict[str, str]:
        return {
            "cluster_name": self.cluster.get("name", ""),
            "cluster_id": self.cluster.get("id", ""),
        }

    def routes(self) -> list[Route]:
        return [
            Route(
                "init",
                {READ: self.read_init, UPDATE: self.write_init},
                {
                    "secret_shares": Field(ANY),
                    "secret_threshold": Field(ANY),
                    "pgp_keys": Field(ANY),
                    "root_token_pgp_key": Field(STRING),
                    "stored_shares": Field(INT),
                    "recovery_shares": Field(INT),
                    "recovery_threshold": Field(INT),
                    "recovery_pgp_keys": Field(ANY),
                },
            ),
            Route("seal-status", {READ: self.seal_status}),
            Route(
                "unseal",
                {UPDATE: self.unseal},
                {"key": Field(ANY), "reset": Field(BOOL), "migrate": Field(BOOL)},
            ),
            Route("seal", {UPDATE: self.seal}),
            Route("health", {READ: self.health}, {k: Field(ANY) for k in _HEALTH}),
            Route("key-status", {READ: self.key_status}),
            Route("rotate", {UPDATE: self.rotate}),
            Route(
                "rekey/init",
                {
                    READ: self.rekey_status,
                    UPDATE: self.rekey_init,
                    DELETE: self.rekey_cancel,
                },
                {
                    "secret_shares": Field(ANY),
                    "secret_threshold": Field(ANY),
                    "nonce": Field(ANY),
                    "pgp_keys": Field(ANY),
                    "backup": Field(BOOL),
                    "require_verification": Field(BOOL),
                },
            ),
            Route(
                "rekey/update",
                {UPDATE: self.rekey_update},
                {"key": Field(ANY), "nonce": Field(ANY)},
            ),
            Route("leader", {READ: self.leader}),
        ]

    # -- init and seal -----------------------------------------------------

    async def read_init(self, req: Request, data: dict) -> Response:
        return plain({"initialized": await self.core.seal_manager.initialized()})

    async def write_init(self, req: Request, data: dict) -> Response:
        if await self.core.seal_manager.initialized():
            raise BadRequest("Vault is already initialized")
        self._check_init_network(req.remote_addr)
        if data.get("pgp_keys") or data.get("root_token_pgp_key"):
            raise BadRequest("pgp_keys and root_token_pgp_key are not supported")
        shares, threshold = validate_share_counts(
            data.get("secret_shares"), data.get("secret_threshold")
        )
        key_shares = await self.core.seal_manager.initialize(shares, threshold)
        root_token = await self._unseal_and_create_root(key_shares, threshold)
        return plain(
            {
                "keys": [share.hex() for share in key_shares],
                "keys_base64": [base64.b64encode(s).decode() for s in key_shares],
                "root_token": root_token,
            }
        )

    async def _unseal_and_create_root(self, shares: list[bytes], threshold: int) -> str:
        """Unseal briefly to write the root token, then seal again as Vault does."""
        manager = self.core.seal_manager
        for share in shares[:threshold]:
            await manager.submit_share(share)
        await self.core.post_unseal()
        root_token = await self.core.tokens.create_root(
            token_id=self.core.config.dev_root_token_id if self.core.config.dev else ""
        )
        if not self.core.config.dev:
            await self.core.seal()
        return root_token

    def _check_init_network(self, remote_addr: str) -> None:
        networks = self.core.config.bootstrap.init_allowed_networks
        try:
            address = ipaddress.ip_address(remote_addr)
        except ValueError:
            raise PermissionDenied(
                "sys/init is not allowed from this address"
            ) from None
        if not any(address in ipaddress.ip_network(net) for net in networks):
            raise PermissionDenied(
                f"sys/init is not allowed from {remote_addr}; add its network to "
                "[bootstrap] init_allowed_networks"
            )

    async def seal_status(self, req: Request, data: dict) -> Response:
        return plain(await self.seal_status_body())

    async def seal_status_body(self) -> dict[str, Any]:
        manager = self.core.seal_manager
        config = await manager.config()
        body: dict[str, Any] = {
            "type": "shamir",
            "initialized": config is not None,
            "sealed": self.core.sealed,
            "t": config.secret_threshold if config else 0,
            "n": config.secret_shares if config else 0,
            "progress": len(manager.progress),
            "nonce": manager.unseal_nonce,
            "version": __version__,
            "commit_date": "",
            "migration": False,
            "recovery_seal": False,
            "storage_type": self.core.config.storage.type,
        }
        if not self.core.sealed:
            body |= self._cluster_fields()
        return body

    async def unseal(self, req: Request, data: dict) -> Response:
        manager = self.core.seal_manager
        if not await manager.initialized():
            raise BadRequest("Vault is not initialized")
        if data.get("reset"):
            if not self.core.sealed:
                raise BadRequest("Vault is unsealed: there is no unseal progress")
            manager.reset_progress()
            return plain(await self.seal_status_body())
        if "key" not in data:
            raise BadRequest(
                "'key' must be specified in request body as JSON, "
                "or 'reset' set to true"
            )
        share_candidates(data["key"])
        if not self.core.sealed:
            # A well-encoded share sent to an unsealed server is ignored.
            return plain(await self.seal_status_body())
        share = decode_share(data["key"])
        if await manager.submit_share(share):
            await self.core.post_unseal()
        return plain(await self.seal_status_body())

    async def seal(self, req: Request, data: dict) -> None:
        await self.core.seal(req)

    async def health(self, req: Request, data: dict) -> Response:
        initialized = await self.core.seal_manager.initialized()
        sealed = self.core.sealed
        # A sealed node reports itself as a standby with unknown replication
        # and no cluster identity, which it cannot read, as Vault does.
        replication = "unknown" if sealed else "disabled"
        body = {
            "initialized": initialized,
            "sealed": sealed,
            "standby": sealed,
            "replication_performance_mode": replication,
            "replication_dr_mode": replication,
            "server_time_utc": int(time.time()),
            "version": __version__,
        }
        if not sealed:
            body |= self._cluster_fields()
        if not initialized:
            status = _health_code(data, "uninitcode", 501)
        elif self.core.sealed:
            status = _health_code(data, "sealedcode", 503)
        else:
            status = _health_code(data, "activecode", 200)
        return plain(body, status)

    # -- keyring -----------------------------------------------------------

    async def key_status(self, req: Request, data: dict) -> Response:
        term = self.core.barrier.key_status()
        install = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(term.install_time))
        fraction = f"{term.install_time % 1:.9f}"[1:]
        status = {
            "term": term.term,
            "install_time": f"{install}{fraction}Z",
            "encryptions": term.encryptions,
        }
        return Response(data=status, top_level=True)

    async def rotate(self, req: Request, data: dict) -> None:
        await self.core.barrier.rotate()

    # -- rekey -------------------------------------------------------------

    async def rekey_status(self, req: Request, data: dict) -> Response:
        return plain(await self._rekey_status_body())

    async def _rekey_status_body(self) -> dict[str, Any]:
        manager = self.core.seal_manager
        config = await manager.config()
        operation = manager.rekey
        return {
            "nonce": operation.nonce if operation else "",
            "started": operation is not None,
            "t": operation.secret_threshold if operation else 0,
            "n": operation.secret_shares if operation else 0,
            "progress": len(operation.shares) if operation else 0,
            "required": config.secret_threshold if config else 0,
            "pgp_fingerprints": None,
            "backup": False,
            "verification_required": False,
        }

    async def rekey_init(self, req: Request, data: dict) -> Response:
        if (
            data.get("pgp_keys")
            or data.get("backup")
            or data.get("require_verification")
        ):
            raise BadRequest(
                "pgp_keys, backup and require_verification are not supported"
            )
        shares, threshold = validate_share_counts(
            data.get("secret_shares"), data.get("secret_threshold")
        )
        self.core.seal_manager.start_rekey(shares, threshold)
        return plain(await self._rekey_status_body())

    async def rekey_cancel(self, req: Request, data: dict) -> None:
        self.core.seal_manager.cancel_rekey(data.get("nonce"))

    async def rekey_update(self, req: Request, data: dict) -> Response:
        if "key" not in data:
            raise BadRequest("'key' must be specified in request body as JSON")
        share = decode_share(data["key"])
        manager = self.core.seal_manager
        operation = manager.rekey
        new_shares = await manager.submit_rekey_share(share, data.get("nonce"))
        if not new_shares:
            return plain(await self._rekey_status_body())
        assert operation is not None
        return plain(
            {
                "nonce": operation.nonce,
                "complete": True,
                "keys": [s.hex() for s in new_shares],
                "keys_base64": [base64.b64encode(s).decode() for s in new_shares],
                "pgp_fingerprints": None,
                "backup": False,
                "verification_required": False,
            }
        )

    async def leader(self, req: Request, data: dict) -> Response:
        return plain(
            {
                "ha_enabled": False,
                "is_self": True,
                "active_time": "0001-01-01T00:00:00Z",
                "leader_address": "",
                "leader_cluster_address": "",
                "performance_standby": False,
                "performance_standby_last_remote_wal": 0,
            }
        )


_HEALTH = (
    "standbyok",
    "perfstandbyok",
    "activecode",
    "standbycode",
    "sealedcode",
    "uninitcode",
    "drsecondarycode",
    "performancestandbycode",
)


def _health_code(data: dict, name: str, default: int) -> int:
    if name not in data:
        return default
    try:
        code = int(data[name])
    except (TypeError, ValueError):
        code = 0
    # A status outside 200-599 cannot answer this request: 1xx codes are
    # interim responses, and the HTTP server has no status line for others.
    if not 200 <= code <= 599:
        raise BadRequest(
            f"invalid {name} {str(data[name])[:40]!r}: expected an HTTP status "
            "code from 200 to 599"
        )
    return code
