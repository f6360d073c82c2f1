"""The system backend at sys/, built from one section per concern.

Each section is a class taking the core and returning its routes; the
order of SECTIONS is the order in which routes are matched.
"""

from __future__ import annotations

from importlib import import_module

from mssm.engines.base import Engine, EngineContext

# module:class pairs, so that a section can be added without touching others.
SECTIONS = [
    "mssm.engines.sys.seal:SealSection",
    "mssm.engines.sys.mounts:MountsSection",
    "mssm.engines.sys.metrics:MetricsSection",
    "mssm.engines.sys.audit:AuditSection",
    "mssm.engines.sys.policies:PoliciesSection",
    "mssm.engines.sys.capabilities:CapabilitiesSection",
    "mssm.engines.sys.auth:AuthSection",
    "mssm.engines.sys.wrapping:WrappingSection",
    "mssm.engines.sys.generate_root:GenerateRootSection",
    "mssm.engines.sys.leases:LeasesSection",
    "mssm.engines.sys.remount:RemountSection",
    "mssm.engines.sys.password_policies:PasswordPoliciesSection",
]


class SystemEngine(Engine):
    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.sections = [_load(name)(ctx.core) for name in SECTIONS]
        self.routes = [route for s in self.sections for route in s.routes()]

    async def setup(self) -> None:
        for section in self.sections:
            setup = getattr(section, "setup", None)
            if setup is not None:
                await setup()

    async def teardown(self) -> None:
        for section in self.sections:
            teardown = getattr(section, "teardown", None)
            if teardown is not None:
                await teardown()


def _load(name: str) -> type:
    module_name, _, class_name = name.partition(":")
    return getattr(import_module(module_name), class_name)
