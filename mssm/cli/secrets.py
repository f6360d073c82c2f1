"""`mssm secrets`: enable, disable, list and tune secrets engine mounts."""

from __future__ import annotations

from typing import Any

import click

from mssm.cli.inputs import parse_pairs
from mssm.cli.options import Group, command_options, current_client, current_output
from mssm.cli.output import format_value, print_columns, print_json, print_success

# Engine type names that stand for a type plus a version option.
_TYPE_ALIASES = {"kv-v1": ("kv", "1"), "kv-v2": ("kv", "2")}


@click.group("secrets", cls=Group)
def secrets_command() -> None:
    """Mount, unmount, list and tune secrets engines."""


def _ttl_options(func: Any) -> Any:
    func = click.option(
        "-max-lease-ttl",
        "--max-lease-ttl",
        metavar="DURATION",
        help="Maximum lease duration this mount may grant, e.g. 768h.",
    )(func)
    return click.option(
        "-default-lease-ttl",
        "--default-lease-ttl",
        metavar="DURATION",
        help="Lease duration when a request asks for none, e.g. 1h.",
    )(func)


def _options_option(func: Any) -> Any:
    return click.option(
        "-options",
        "--options",
        "engine_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="Engine option, e.g. -options=version=2; repeat for more.",
    )(func)


def _mount_config(default_ttl: str | None, max_ttl: str | None) -> dict[str, str]:
    config = {}
    if default_ttl is not None:
        config["default_lease_ttl"] = default_ttl
    if max_ttl is not None:
        config["max_lease_ttl"] = max_ttl
    return config


@secrets_command.command("enable")
@click.argument("engine_type", metavar="TYPE")
@click.option(
    "-path",
    "--path",
    metavar="PATH",
    help="Where to mount the engine [default: the TYPE name].",
)
@click.option("-description", "--description", help="Human-readable description.")
@click.option(
    "-version",
    "--version",
    "kv_version",
    type=click.Choice(["1", "2"]),
    help="KV version (the same as -options=version=N).",
)
@_ttl_options
@_options_option
@command_options
def enable_command(
    engine_type: str,
    path: str | None,
    description: str | None,
    kv_version: str | None,
    default_lease_ttl: str | None,
    max_lease_ttl: str | None,
    engine_options: tuple[str, ...],
) -> None:
    """Mount a secrets engine of TYPE (kv, kv-v2, database, transit...)."""
    options = parse_pairs(engine_options, "-options")
    engine_type, alias_version = _TYPE_ALIASES.get(engine_type, (engine_type, None))
    if kv_version or alias_version:
        options["version"] = kv_version or alias_version or ""

    mount_path = (path or engine_type).strip("/") + "/"
    body: dict[str, Any] = {"type": engine_type}
    if description is not None:
        body["description"] = description
    config = _mount_config(default_lease_ttl, max_lease_ttl)
    if config:
        body["config"] = config
    if options:
        body["options"] = options

    current_client().write(f"sys/mounts/{mount_path.rstrip('/')}", body)
    message = f"Enabled the {engine_type} secrets engine at: {mount_path}"
    print_success(message, current_output())


@secrets_command.command("disable")
@click.argument("path")
@command_options
def disable_command(path: str) -> None:
    """Unmount the engine at PATH and delete all of its data and leases."""
    mount_path = path.strip("/") + "/"
    current_client().delete(f"sys/mounts/{mount_path.rstrip('/')}")
    message = f"Disabled the secrets engine (if it existed) at: {mount_path}"
    print_success(message, current_output())


@secrets_command.command("list")
@click.option(
    "-detailed",
    "--detailed",
    is_flag=True,
    help="Add TTL and option columns.",
)
@command_options
def list_command(detailed: bool) -> None:
    """List the mounted secrets engines."""
    response = current_client().read("sys/mounts") or {}
    mounts = response.get("data")
    if not isinstance(mounts, dict):
        mounts = {k: v for k, v in response.items() if k.endswith("/")}
    if current_output().is_json:
        print_json(mounts)
        return

    header = ["Path", "Type", "Accessor", "Description"]
    if detailed:
        header += ["Default TTL", "Max TTL", "Options"]
    rows = [_mount_row(path, mounts[path], detailed) for path in sorted(mounts)]
    print_columns(header, rows)


def _mount_row(path: str, mount: dict[str, Any], detailed: bool) -> list[str]:
    row = [
        path,
        str(mount.get("type", "")),
        str(mount.get("accessor", "")),
        str(mount.get("description") or "n/a"),
    ]
    if detailed:
        config = mount.get("config") or {}
        row += [
            _ttl_cell(config.get("default_lease_ttl")),
            _ttl_cell(config.get("max_lease_ttl")),
            format_value("options", mount.get("options") or {}),
        ]
    return row


def _ttl_cell(seconds: Any) -> str:
    if not seconds:
        return "system"
    return format_value("ttl", seconds)


@secrets_command.command("tune")
@click.argument("path")
@click.option("-description", "--description", help="New description.")
@_ttl_options
@_options_option
@command_options
def tune_command(
    path: str,
    description: str | None,
    default_lease_ttl: str | None,
    max_lease_ttl: str | None,
    engine_options: tuple[str, ...],
) -> None:
    """Change the TTLs, description or options of the engine at PATH.

    A TTL of "system" resets it to the server default.
    """
    body: dict[str, Any] = _mount_config(default_lease_ttl, max_lease_ttl)
    if description is not None:
        body["description"] = description
    if engine_options:
        body["options"] = parse_pairs(engine_options, "-options")
    if not body:
        raise click.UsageError(
            "nothing to tune: give -default-lease-ttl, -max-lease-ttl, "
            "-description or -options"
        )

    mount_path = path.strip("/") + "/"
    current_client().write(f"sys/mounts/{mount_path}tune", body)
    message = f"Tuned the secrets engine at: {mount_path}"
    print_success(message, current_output())
