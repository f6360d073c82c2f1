"""The lease manager inside one process, with a clock the test moves.

A small engine replaces the database: it issues a "user" per request
through the two-phase reserve/register flow and records revocations, and
it can be told to fail its next revocations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mssm.core import leases as leases_module
from mssm.core import metrics
from mssm.core.config import Config
from mssm.core.core import Core
from mssm.core.errors import APIError, BadRequest
from mssm.core.fields import DURATION, Field
from mssm.core.lease_record import ACTIVE, IRREVOCABLE, REVOKE_PENDING, Lease
from mssm.core.mounts import MountEntry
from mssm.core.request import READ, Request, Response, SecretLease
from mssm.engines.base import Engine, EngineContext, Route
from mssm.storage.inmem import InmemBackend

ROOT_TOKEN = "hvs.lease-test-root"
START = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class IssuingEngine(Engine):
    """Issues one named "user" per read of creds/:name."""

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.revoked: list[str] = []
        self.renewed: list[tuple[str, int]] = []
        self.failures_left = 0
        fields = {"ttl": Field(DURATION), "max_ttl": Field(DURATION)}
        self.routes = [Route(r"creds/(?P<name>\w+)", {READ: self.issue}, fields)]

    async def issue(self, req: Request, data: dict) -> Response:
        internal = {"user": data["name"]}
        ttl, max_ttl = data.get("ttl", 0), data.get("max_ttl", 0)
        lease = await self.ctx.core.leases.reserve(req, ttl, max_ttl, internal)
        return Response(
            data={"user": data["name"]},
            secret=SecretLease(ttl=ttl, max_ttl=max_ttl, internal=internal),
            lease_id=lease.lease_id,
        )

    async def revoke_secret(self, internal: dict[str, Any]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("connection refused")
        self.revoked.append(internal["user"])

    async def renew_secret(self, internal: dict[str, Any], ttl: int) -> None:
        self.renewed.append((internal["user"], ttl))


class Harness:
    def __init__(self, core: Core, share: bytes, clock: FakeClock) -> None:
        self.core = core
        self.share = share
        self.clock = clock

    @property
    def engine(self) -> IssuingEngine:
        return self.core.engines["test/"]  # type: ignore[return-value]

    @property
    def manager(self) -> leases_module.LeaseManager:
        return self.core.leases

    async def issue(self, name: str, **data: Any) -> Response:
        request = Request(READ, f"test/creds/{name}", data, client_token=ROOT_TOKEN)
        return await self.core.handle(request)

    async def advance(self, seconds: float) -> None:
        """Move the clock and run the expiry pass to completion."""
        self.clock.now += seconds
        await asyncio.gather(*self.manager.run_due())

    async def reseal(self) -> None:
        await self.core.seal()
        await self.core.seal_manager.submit_share(self.share)
        await self.core.post_unseal()


@pytest.fixture
async def harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    # The test drives expiry itself, so the background pass sleeps for long.
    monkeypatch.setattr(leases_module, "TICK_SECONDS", 3600)
    monkeypatch.setattr(leases_module, "RETRY_BASE_SECONDS", 10.0)
    monkeypatch.setattr(leases_module, "RETRY_MAX_SECONDS", 60.0)
    monkeypatch.setattr(leases_module, "MAX_ATTEMPTS", 3)
    clock = FakeClock()
    config = Config(default_lease_ttl=3600, max_lease_ttl=7200)
    core = Core(config, InmemBackend())
    core.clock = clock
    core.engine_types["leasetest"] = IssuingEngine
    shares = await core.seal_manager.initialize(1, 1)
    await core.seal_manager.submit_share(shares[0])
    await core.post_unseal()
    await core.tokens.create_root(token_id=ROOT_TOKEN)
    await core.mount(MountEntry(path="test/", type="leasetest"))
    yield Harness(core, shares[0], clock)
    if not core.sealed:
        await core.seal()


def _failures() -> float:
    name = "mssm_lease_revocation_failures_total"
    return metrics.REGISTRY.get_sample_value(name) or 0.0


def gauge(state: str) -> float:
    value = metrics.REGISTRY.get_sample_value("mssm_leases", {"state": state})
    return value or 0.0


# -- issuing ------------------------------------------------------------------


async def test_issue_fills_envelope(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60, max_ttl=300)
    assert response.lease_id.startswith("test/creds/alice/")
    assert len(response.lease_id.rsplit("/", 1)[1]) == 24
    assert response.lease_duration == 60
    assert response.renewable is True
    lease = harness.manager.get(response.lease_id)
    assert lease is not None
    assert lease.state == ACTIVE
    assert lease.expire_time == START + 60
    assert lease.max_expire_time == START + 300
    assert lease.internal == {"user": "alice"}
    assert lease.token_hash == harness.core.tokens.hash_token(ROOT_TOKEN)


async def test_issue_uses_mount_default(harness: Harness) -> None:
    response = await harness.issue("alice")
    assert response.lease_duration == 3600
    assert not response.warnings


async def test_issue_caps_ttl_at_max(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=600, max_ttl=300)
    assert response.lease_duration == 300
    assert response.warnings == [
        'TTL of "10m0s" exceeded the effective max_ttl of "5m0s"; '
        "TTL value is capped accordingly"
    ]


async def test_issue_caps_max_at_system(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60, max_ttl=99999)
    lease = harness.manager.get(response.lease_id)
    assert lease.max_expire_time == START + 7200
    assert "max_ttl" in response.warnings[0]


async def test_lookup_fields(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60)
    harness.clock.now += 15
    answer = harness.manager.describe(response.lease_id)
    assert answer["id"] == response.lease_id
    assert answer["path"] == "test/creds/alice"
    assert answer["ttl"] == 45
    assert answer["renewable"] is True
    assert answer["last_renewal"] is None
    assert answer["issue_time"].endswith("Z")
    assert answer["state"] == ACTIVE


async def test_lookup_unknown_lease(harness: Harness) -> None:
    with pytest.raises(BadRequest, match="invalid lease"):
        harness.manager.describe("test/creds/alice/nope")


# -- expiry and retries -------------------------------------------------------


async def test_expiry_revokes_at_deadline(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60)
    await harness.advance(59)
    assert harness.engine.revoked == []
    await harness.advance(1)
    assert harness.engine.revoked == ["alice"]
    assert harness.manager.get(response.lease_id) is None
    stored = await harness.manager.storage.get("id/" + response.lease_id)
    assert stored is None


async def test_retry_backoff_schedule(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60)
    harness.engine.failures_left = 10
    await harness.advance(60)
    lease = harness.manager.get(response.lease_id)
    delays = []
    for _ in range(5):
        delays.append(lease.next_attempt - harness.clock.now)
        await harness.advance(lease.next_attempt - harness.clock.now)
    # 10 s, doubling, capped at 60 s; attempts go on after "irrevocable".
    assert delays == [10, 20, 40, 60, 60]
    assert lease.revoke_attempts == 6
    assert lease.state == IRREVOCABLE
    assert lease.revoke_error == "connection refused"


async def test_state_after_failures(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60)
    harness.engine.failures_left = 3
    failures_before = _failures()
    await harness.advance(60)
    lease = harness.manager.get(response.lease_id)
    assert lease.state == REVOKE_PENDING
    assert harness.manager.describe(lease.lease_id)["ttl"] == 0
    await harness.advance(10)
    assert lease.state == REVOKE_PENDING
    await harness.advance(20)
    assert lease.state == IRREVOCABLE
    assert gauge(IRREVOCABLE) == 1
    await harness.advance(40)
    assert harness.engine.revoked == ["alice"]
    assert harness.manager.get(response.lease_id) is None
    assert gauge(IRREVOCABLE) == 0
    assert _failures() - failures_before == 3


async def test_gauges_follow_states(harness: Harness) -> None:
    await harness.issue("alice", ttl=60)
    await harness.issue("bob", ttl=120)
    assert gauge(ACTIVE) == 2
    harness.engine.failures_left = 1
    await harness.advance(60)
    assert gauge(ACTIVE) == 1
    assert gauge(REVOKE_PENDING) == 1
    await harness.advance(60)
    assert gauge(ACTIVE) == 0
    assert gauge(REVOKE_PENDING) == 0
    assert sorted(harness.engine.revoked) == ["alice", "bob"]


async def test_explicit_revoke_failure_keeps_lease(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=600)
    harness.engine.failures_left = 1
    with pytest.raises(APIError, match="connection refused") as raised:
        await harness.manager.revoke(response.lease_id)
    assert raised.value.status == 400
    lease = harness.manager.get(response.lease_id)
    assert lease.state == REVOKE_PENDING
    assert lease.expire_time == START
    with pytest.raises(BadRequest, match="lease expired"):
        await harness.manager.renew(response.lease_id, 60)
    await harness.advance(10)
    assert harness.engine.revoked == ["alice"]


async def test_revoke_unknown_is_noop(harness: Harness) -> None:
    await harness.manager.revoke("test/creds/alice/none")
    assert harness.engine.revoked == []


# -- restarts -----------------------------------------------------------------


async def test_expired_while_sealed_revoked(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60)
    await harness.core.seal()
    harness.clock.now += 120
    await harness.core.seal_manager.submit_share(harness.share)
    await harness.core.post_unseal()
    assert harness.manager.get(response.lease_id).state == ACTIVE
    await harness.advance(0)
    assert harness.engine.revoked == ["alice"]


async def test_creating_lease_revoked_at_unseal(harness: Harness) -> None:
    request = Request(READ, "test/creds/ghost", {}, client_token=ROOT_TOKEN)
    request.mount_point, request.mount_accessor = "test/", "acc"
    lease = await harness.manager.reserve(request, 60, 0, {"user": "ghost"})
    await harness.reseal()
    reloaded = harness.manager.get(lease.lease_id)
    assert reloaded.state == REVOKE_PENDING
    assert reloaded.internal == {"user": "ghost"}
    await harness.advance(0)
    assert harness.engine.revoked == ["ghost"]


async def test_leases_survive_reseal(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=600)
    await harness.reseal()
    reloaded = harness.manager.get(response.lease_id)
    assert reloaded.expire_time == START + 600
    assert reloaded.internal == {"user": "alice"}
    assert gauge(ACTIVE) == 1


# -- renewal ------------------------------------------------------------------


async def test_renew_counts_from_now(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60, max_ttl=180)
    harness.clock.now += 30
    renewed = await harness.manager.renew(response.lease_id, 120)
    assert renewed.lease_duration == 120
    assert renewed.warnings == []
    assert harness.engine.renewed == [("alice", 120)]
    lease = harness.manager.get(response.lease_id)
    assert lease.expire_time == START + 150
    assert lease.last_renewal == START + 30
    await harness.advance(60)
    assert harness.engine.revoked == []
    await harness.advance(60)
    assert harness.engine.revoked == ["alice"]


async def test_renew_capped_at_max(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60, max_ttl=180)
    harness.clock.now += 30
    await harness.manager.renew(response.lease_id, 120)
    harness.clock.now += 70
    renewed = await harness.manager.renew(response.lease_id, 300)
    assert renewed.lease_duration == 80
    assert "capped" in renewed.warnings[0]


async def test_renew_without_increment(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=60, max_ttl=180)
    harness.clock.now += 50
    renewed = await harness.manager.renew(response.lease_id, 0)
    assert renewed.lease_duration == 60


async def test_renew_unknown_lease(harness: Harness) -> None:
    with pytest.raises(BadRequest, match="lease not found"):
        await harness.manager.renew("test/creds/x/none", 10)


# -- prefixes, tokens, counts -------------------------------------------------


async def test_revoke_prefix_whole_segments(harness: Harness) -> None:
    await harness.issue("app", ttl=600)
    await harness.issue("app2", ttl=600)
    count = await harness.manager.revoke_prefix("test/creds/app")
    assert count == 1
    assert harness.engine.revoked == ["app"]


async def test_revoke_force_drops_failing(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=600)
    harness.engine.failures_left = 5
    with pytest.raises(APIError, match="failed to revoke 1 of 1"):
        await harness.manager.revoke_prefix("test/creds/alice")
    assert harness.manager.get(response.lease_id) is not None
    count = await harness.manager.revoke_prefix("test/creds/alice", force=True)
    assert count == 1
    assert harness.manager.get(response.lease_id) is None
    assert await harness.manager.storage.get("id/" + response.lease_id) is None


async def test_revoke_by_token_only_its_leases(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=600)
    other = Request(READ, "test/creds/bob", {}, client_token=ROOT_TOKEN)
    other.mount_point = "test/"
    other.mount_accessor = harness.engine.ctx.mount.accessor
    other.token = type("Token", (), {"id_hash": "otherhash", "expire_time": 0})()
    await harness.manager.reserve(other, 600, 0, {"user": "bob"})
    lease = harness.manager.get(response.lease_id)
    await harness.manager.revoke_by_token(lease.token_hash)
    assert harness.engine.revoked == ["alice"]
    assert await harness.manager.storage.list(f"token/{lease.token_hash}/") == []


async def test_count_and_list_irrevocable(harness: Harness) -> None:
    await harness.issue("good", ttl=60)
    bad = await harness.issue("bad", ttl=60)
    harness.engine.failures_left = 0
    original = harness.engine.revoke_secret

    async def refuse_bad(internal: dict[str, Any]) -> None:
        if internal["user"] == "bad":
            raise RuntimeError("role " + "x" * 400)
        await original(internal)

    harness.engine.revoke_secret = refuse_bad  # type: ignore[method-assign]
    await harness.advance(60)
    await harness.advance(10)
    await harness.advance(20)
    counted = harness.manager.count(IRREVOCABLE)
    accessor = harness.engine.ctx.mount.accessor
    assert counted == {"lease_count": 1, "counts": {accessor: 1}}
    listed = harness.manager.listing(IRREVOCABLE, limit=10)
    assert listed["lease_count"] == 1
    entry = listed["leases"][0]
    assert entry["lease_id"] == bad.lease_id
    assert entry["mount_id"] == accessor
    assert len(entry["error"]) == 240
    assert harness.manager.count(None)["lease_count"] == 1


async def test_listing_limit_exceeded(harness: Harness) -> None:
    await harness.issue("a", ttl=60)
    await harness.issue("b", ttl=60)
    with pytest.raises(BadRequest, match="more than the limit of 1"):
        harness.manager.listing(None, limit=1)


async def test_tidy_revokes_orphaned(harness: Harness) -> None:
    response = await harness.issue("alice", ttl=600)
    lease: Lease = harness.manager.get(response.lease_id)
    lease.token_hash = "no-such-token"
    await harness.manager.tidy()
    assert harness.engine.revoked == ["alice"]
    assert harness.manager.count(None)["lease_count"] == 0
