from __future__ import annotations

import hvac


def test_kv2_round_trip(client: hvac.Client) -> None:
    client.secrets.kv.v2.create_or_update_secret("smoke/pepper", {"pepper": "p1"})
    answer = client.secrets.kv.v2.read_secret_version(
        "smoke/pepper", raise_on_deleted_version=True
    )
    assert answer["data"]["data"] == {"pepper": "p1"}
    assert answer["data"]["metadata"]["version"] == 1


def test_production_server_starts_sealed_after_restart(production_server) -> None:  # noqa: ANN001
    production_server.stop()
    production_server.start()
    status = production_server.request("GET", "sys/seal-status", token=None).json()
    assert status["initialized"] is True
    assert status["sealed"] is True
