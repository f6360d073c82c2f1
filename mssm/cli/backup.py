"""`mssm operator backup`: an online copy of the SQLite storage file.

The copy is taken with SQLite's online backup API in one step, which reads
the database inside a single read transaction. In WAL mode that snapshot
does not block the server's writers, and the copy holds every transaction
committed before the step began and none after it. Values stay encrypted by
the barrier, so the copy needs the unseal key shares to be of any use.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from pathlib import Path
from urllib.request import pathname2url

import click

from mssm.cli.options import Command

logger = logging.getLogger(__name__)

# How long to wait for a lock held by the server (a checkpoint, for example).
_BUSY_TIMEOUT_SECONDS = 30.0


class BackupError(click.ClickException):
    """A local failure of the backup (exit code 1)."""


def storage_path(config_file: str) -> Path:
    """Return the SQLite file named by the [storage] table of a config."""
    from mssm.core.config import ConfigError, load_config

    try:
        config = load_config(config_file)
    except ConfigError as exc:
        raise BackupError(str(exc)) from None
    if config.storage.type != "sqlite":
        raise BackupError(
            f"[storage] type is {config.storage.type!r} in {config_file}; "
            "operator backup copies only sqlite storage (back up PostgreSQL "
            "with pg_dump or pg_basebackup)"
        )
    # NOTE: a relative path is taken from the current directory, which
    # matches the server only when both start in the same directory.
    return Path(config.storage.path)


def _open_source(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise BackupError(
            f"storage file {path} not found; check [storage] path in the config"
        )
    # Read-only: the backup must never change the server's database.
    uri = f"file:{pathname2url(str(path.resolve()))}?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_SECONDS)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open storage file {path}: {exc}") from None


def _temporary_copy(destination: Path) -> Path:
    """Create an empty 0600 file next to destination to write the copy into."""
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent
        )
    except OSError as exc:
        raise BackupError(
            f"cannot create a file in {destination.parent}: {exc.strerror}"
        ) from None
    os.close(fd)
    return Path(name)


def copy_database(source: Path, destination: Path) -> int:
    """Copy source to destination atomically; return the number of entries."""
    if destination.exists():
        raise BackupError(
            f"{destination} already exists; remove it or choose another name"
        )
    temporary = _temporary_copy(destination)
    try:
        count = _backup_into(source, temporary)
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(destination.parent)
    return count


def _backup_into(source: Path, target: Path) -> int:
    source_conn = _open_source(source)
    target_conn = sqlite3.connect(target)
    try:
        # pages=-1 copies everything in one step, under one read snapshot.
        source_conn.backup(target_conn, pages=-1)
        return _finish_copy(target_conn, target)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from None
    finally:
        target_conn.close()
        source_conn.close()


def _finish_copy(conn: sqlite3.Connection, path: Path) -> int:
    """Make the copy one self-contained file, check it and count entries."""
    conn.execute("PRAGMA journal_mode=DELETE")
    result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise BackupError(f"integrity check of the copy {path} failed: {result}")
    (count,) = conn.execute("SELECT count(*) FROM entries").fetchone()
    conn.commit()
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    return int(count)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@click.command("backup", cls=Command)
@click.option(
    "-config",
    "--config",
    "config_file",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="The server's TOML config; its [storage] path is the file to copy.",
)
@click.argument("outfile", type=click.Path(dir_okay=False))
def backup_command(config_file: str, outfile: str) -> None:
    """Copy the SQLite storage file to OUTFILE while the server runs.

    The copy is consistent (one snapshot), written with mode 0600, and still
    encrypted: it can be read only with the unseal key shares that were
    current when it was made. OUTFILE must not exist yet.

    \b
    To restore:
    1. Stop the server (every process using the storage file).
    2. Move the storage file and its -wal and -shm files aside.
    3. Copy OUTFILE to the [storage] path and give it to the server's user.
    4. Start the server and unseal it with the key shares that were current
       when the backup was made (shares from a later rekey do not work).
    5. Revoke by hand any database users issued after the backup: the
       restored server has no lease for them.
    """
    source = storage_path(config_file)
    destination = Path(outfile)
    count = copy_database(source, destination)
    logger.info("backed up %d entries from %s to %s", count, source, destination)
    click.echo(f"Success! Copied {count} entries from {source} to {destination}.")
