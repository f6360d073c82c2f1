"""sys/metrics: Prometheus text, or a JSON summary of the same samples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mssm.core import metrics
from mssm.core.fields import STRING, Field
from mssm.core.request import READ, Request, Response
from mssm.engines.base import Route

if TYPE_CHECKING:
    from mssm.core.core import Core


class MetricsSection:
    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        public = self.core.config.telemetry.unauthenticated_metrics_access
        return [
            Route(
                "metrics",
                {READ: self.read_metrics},
                {"format": Field(STRING)},
                unauthenticated=public,
            )
        ]

    async def read_metrics(self, req: Request, data: dict) -> Response:
        metrics.sealed.set(1 if self.core.sealed else 0)
        if data.get("format") == "prometheus":
            return Response(
                raw_body=generate_latest(metrics.REGISTRY),
                content_type=CONTENT_TYPE_LATEST,
            )
        return Response(raw_body=orjson.dumps(_summary()))


def _summary() -> dict[str, list[dict]]:
    samples = []
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            samples.append(
                {"Name": sample.name, "Labels": sample.labels, "Value": sample.value}
            )
    return {"Samples": samples}
