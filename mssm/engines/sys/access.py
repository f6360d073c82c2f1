"""ACL checks on the canonical form of a sys/ path.

The core checks the ACL on the path as the client sent it. Some handlers
then act on a normalised form of a path segment: policy names are
lower-cased and trimmed, mount paths lose repeated and trailing slashes.
A rule that denies the canonical path must stop every spelling of it, so
those handlers check the canonical path as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mssm.core.errors import PermissionDenied
from mssm.core.request import Request

if TYPE_CHECKING:
    from mssm.core.core import Core


async def require_canonical_access(core: Core, req: Request, canonical: str) -> None:
    """Raise PermissionDenied unless req's token may act on canonical too."""
    if canonical == req.path or req.token is None:
        return
    decision = await core.policies.check(req.token.policies, canonical, req.operation)
    if not decision.allowed:
        raise PermissionDenied()
