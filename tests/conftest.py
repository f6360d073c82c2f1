from __future__ import annotations

from collections.abc import Iterator

import hvac
import pytest

from tests.server import ServerProcess, start_dev, start_production


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A dev server shared by the tests that only need an unsealed server."""
    server = start_dev(tmp_path_factory.mktemp("dev"))
    yield server
    server.stop()


@pytest.fixture
def production_server(tmp_path) -> Iterator[ServerProcess]:  # noqa: ANN001
    """A fresh SQLite-backed server, initialised with one share and unsealed."""
    server = start_production(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def client(dev_server: ServerProcess) -> hvac.Client:
    return hvac.Client(url=dev_server.url, token=dev_server.root_token)
