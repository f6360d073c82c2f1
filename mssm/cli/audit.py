"""`mssm audit`: enable, disable and list audit devices, and verify an
audit log's hash chain and signed checkpoints offline."""

from __future__ import annotations

from typing import Any

import click

from mssm.cli.inputs import parse_data
from mssm.cli.options import (
    Group,
    command_options,
    current_client,
    current_output,
    flags,
    http_options,
)
from mssm.cli.output import print_columns, print_json, print_success
from mssm.core.audit_chain import ChainError, ChainVerifier, key_id, load_public_key

# Exit code of `audit verify` when the log fails a check. Codes 1 and 2 keep
# their CLI-wide meaning (a local error, a failed server request).
EXIT_TAMPERED = 3


@click.group("audit", cls=Group)
def audit_command() -> None:
    """Manage audit devices and verify audit logs."""


@audit_command.command("enable")
@click.argument("device_type", metavar="TYPE")
@click.argument("options", nargs=-1, metavar="[KEY=VALUE...]")
@click.option("-path", "--path", default="", help="Device path [default: TYPE].")
@click.option("-description", "--description", default="", help="A description.")
@command_options
def enable_command(
    device_type: str, options: tuple[str, ...], path: str, description: str
) -> None:
    """Enable an audit device of TYPE (file) with options such as
    file_path=/var/log/mssm/audit.log.

    The server accepts this only when its config sets [audit_api]
    allow_api_audit_creation = true, and only for files under the
    configured allowed_directory.
    """
    name = (path or device_type).strip("/")
    device_path = name + "/"
    body = {
        "type": device_type,
        "description": description,
        "options": parse_data(options),
    }
    # No trailing slash: the server rejects writes to paths that end in "/".
    current_client().write(f"sys/audit/{name}", body)
    message = f"Enabled the {device_type} audit device at: {device_path}"
    print_success(message, current_output())


@audit_command.command("disable")
@click.argument("path")
@command_options
def disable_command(path: str) -> None:
    """Disable the audit device at PATH (devices from the config file cannot
    be disabled through the API)."""
    name = path.strip("/")
    current_client().delete(f"sys/audit/{name}")
    device_path = name + "/"
    message = f"Disabled audit device (if it was enabled) at: {device_path}"
    print_success(message, current_output())


@audit_command.command("list")
@click.option("-detailed", "--detailed", is_flag=True, help="Show the options.")
@command_options
def list_command(detailed: bool) -> None:
    """List the enabled audit devices."""
    response = current_client().read("sys/audit") or {}
    if current_output().is_json:
        print_json(response)
        return
    devices = _devices(response)
    if not devices:
        click.echo("No audit devices are enabled.")
        return
    header = ["Path", "Type", "Description"] + (["Options"] if detailed else [])
    rows = []
    for path, device in sorted(devices.items()):
        row = [path, device.get("type", ""), device.get("description") or "n/a"]
        if detailed:
            options = device.get("options") or {}
            row.append(" ".join(f"{k}={v}" for k, v in sorted(options.items())))
        rows.append(row)
    print_columns(header, rows)


def _devices(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    data = response.get("data")
    source = data if isinstance(data, dict) else response
    return {k: v for k, v in source.items() if k.endswith("/") and isinstance(v, dict)}


@audit_command.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-public-key",
    "--public-key",
    required=True,
    metavar="KEY",
    help="The audit public key (base64, hex, PEM, or a file holding one), "
    "as GET sys/audit/checkpoint returns it.",
)
@http_options
def verify_command(files: tuple[str, ...], public_key: str) -> None:
    """Verify the hash chain and signed checkpoints of audit FILES.

    Give rotated files oldest first: each continues the chain of the one
    before. Verification is offline. With -address (and a token in
    MSSM_TOKEN or from `mssm login`), the server's latest stored checkpoint
    is fetched too, and a file that ends before it fails: its tail was cut
    off.

    Exit codes: 0 the log is intact, 1 a local error (bad flags, unreadable
    file), 2 the server request failed, 3 a line fails verification (the
    message names the file and line).
    """
    try:
        key = load_public_key(public_key)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    verifier = ChainVerifier(key)
    try:
        # The server stores a checkpoint only after writing it to the file,
        # so fetching first guarantees that an intact file contains it.
        stored = _stored_checkpoints(key_id(key)) if flags().get("address") else None
        for path in files:
            verifier.verify_file(path)
        if stored is not None:
            verifier.check_stored_checkpoints(stored)
        result = verifier.finish()
    except OSError as exc:
        raise click.ClickException(
            f"cannot read {exc.filename}: {exc.strerror}"
        ) from None
    except ChainError as exc:
        click.echo(f"Error: {exc}", err=True)
        click.get_current_context().exit(EXIT_TAMPERED)
    for note in result.notes:
        click.echo(f"Note: {note}")
    click.echo(
        f"OK: {result.lines} lines verified, {result.checkpoints} signed checkpoints"
    )


def _stored_checkpoints(expected_key_id: str) -> dict[str, dict[str, Any]]:
    response = current_client().read("sys/audit/checkpoint") or {}
    data = response.get("data") if isinstance(response.get("data"), dict) else response
    if data.get("key_id") != expected_key_id:
        raise ChainError(
            f"the server's audit key ({data.get('key_id')}) is not the given "
            f"public key ({expected_key_id})"
        )
    return data.get("checkpoints") or {}
