"""Write many KV v2 secrets into a stopped MSSM server's SQLite file, fast.

Through the HTTP API every write waits for its own fsync, which makes a
million secrets take many minutes. This tool opens the same database with
MSSM's own core in this process, unseals it with the unseal key, and sends
the writes to Core.handle, so the stored layout and encryption are exactly
what the server writes. Only the durability differs: the connection runs
with synchronous=OFF and the writes skip HTTP and audit.

    python -m bench.storagefill --config mssm.toml --unseal-key HEX \
        --token ROOT --prefix bench --start 1000 --stop 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import uvloop

from mssm.core.config import load_config
from mssm.core.core import Core
from mssm.core.request import UPDATE, Request
from mssm.storage.sqlite import SQLiteBackend

# Writes in flight at once: enough to keep the SQLite writer thread busy.
BATCH = 512


class FastSQLiteBackend(SQLiteBackend):
    """MSSM's SQLite backend without the fsync on every commit."""

    def _connect(self):  # noqa: ANN202
        conn = super()._connect()
        conn.execute("PRAGMA synchronous=OFF")
        return conn

    async def _write(self, func, *args):  # noqa: ANN001, ANN202
        # Without fsync a write takes microseconds, less than the hop to the
        # writer thread that the server needs for its fsyncs.
        return func(*args)

    async def checkpoint(self) -> None:
        """Move the WAL into the database file, so the server starts with none."""
        self._write_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def _call(core: Core, request: Request) -> None:
    response = await core.handle(request)
    if response.status is not None and response.status >= 400:
        raise RuntimeError(
            f"{request.path} returned {response.status}: {response.data}"
        )


async def fill(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    backend = FastSQLiteBackend(config.storage.path)
    core = Core(config, backend)
    try:
        await _call(core, Request(UPDATE, "sys/unseal", {"key": args.unseal_key}))
        if core.sealed:
            raise RuntimeError("the unseal key did not unseal the core")

        for first in range(args.start, args.stop, BATCH):
            last = min(first + BATCH, args.stop)
            await asyncio.gather(
                *(
                    _call(
                        core,
                        Request(
                            UPDATE,
                            f"secret/data/{args.prefix}/{index}",
                            {"data": {"value": args.value}},
                            client_token=args.token,
                        ),
                    )
                    for index in range(first, last)
                )
            )
    finally:
        if not core.sealed:
            await core.seal()
        await backend.checkpoint()
        await backend.close()
    return args.stop - args.start


def main() -> None:
    parser = argparse.ArgumentParser(description="Fill a stopped MSSM with secrets.")
    parser.add_argument("--config", required=True, help="the server's TOML config")
    parser.add_argument("--unseal-key", required=True, help="unseal key share, hex")
    parser.add_argument("--token", required=True, help="root token")
    parser.add_argument("--prefix", default="bench", help="path under secret/data/")
    parser.add_argument("--start", type=int, required=True, help="first index")
    parser.add_argument("--stop", type=int, required=True, help="index after the last")
    parser.add_argument("--value", default="s3cr3t-value-0123456789abcdef")
    args = parser.parse_args()

    started = time.perf_counter()
    written = uvloop.run(fill(args))
    seconds = time.perf_counter() - started
    print(json.dumps({"written": written, "seconds": seconds}))
    sys.exit(0)


if __name__ == "__main__":
    main()
