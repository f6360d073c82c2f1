"""`mssm kv`: the key/value engine, versions 1 and 2, under one set of verbs.

The mount and its KV version come from sys/internal/ui/mounts/PATH (the
preflight request Vault's CLI sends). For version 2, the data/, metadata/,
delete/, undelete/ and destroy/ segments go between mount and secret path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from mssm.cli.client import APIError, Client, not_found
from mssm.cli.inputs import parse_data, parse_pairs
from mssm.cli.options import (
    Group,
    command_options,
    current_client,
    current_output,
    field_option,
    mount_option,
)
from mssm.cli.output import (
    Output,
    lookup_field,
    print_field,
    print_json,
    print_keys,
    print_secret,
    print_section,
    print_success,
    print_table,
    print_write_result,
)


@dataclass(frozen=True)
class KVPath:
    """A secret path split into its mount ("secret/") and the rest ("a/b")."""

    mount: str
    secret: str
    version: int

    def api_path(self, segment: str) -> str:
        """Return the request path, with segment (data, metadata...) for v2."""
        if self.version == 2:
            return f"{self.mount}{segment}/{self.secret}"
        return f"{self.mount}{self.secret}"


def resolve(client: Client, path: str, mount: str | None) -> KVPath:
    """Find the mount of path (or use -mount) and its KV version."""
    if mount:
        mount_path = mount.strip("/") + "/"
        secret = path.strip("/")
        info = _mount_info(client, mount_path)
    else:
        info = _mount_info(client, path.strip("/"))
        mount_path = info.get("path") or ""
        secret = _strip_mount(path.strip("/"), mount_path)
    version = str((info.get("options") or {}).get("version") or "1")
    return KVPath(mount_path, secret, 2 if version == "2" else 1)


def _mount_info(client: Client, path: str) -> dict[str, Any]:
    response = client.read(f"sys/internal/ui/mounts/{path}")
    data = (response or {}).get("data")
    if not isinstance(data, dict) or not data.get("path"):
        raise APIError(f"no secrets engine is mounted at {path} (HTTP 404)", 404)
    return data


def _strip_mount(path: str, mount: str) -> str:
    bare = mount.rstrip("/")
    if path == bare:
        return ""
    return path[len(mount) :] if path.startswith(mount) else path


def _require_secret(kv: KVPath) -> None:
    if not kv.secret:
        raise click.UsageError(
            f"missing secret path under the mount {kv.mount}: "
            f"expected e.g. {kv.mount}my-app"
        )


def _require_v2(kv: KVPath, command: str) -> None:
    if kv.version != 2:
        raise click.ClickException(
            f"kv {command} needs a KV version 2 mount, but {kv.mount} is version 1"
        )


def _parse_versions(values: tuple[str, ...]) -> list[int]:
    versions: list[int] = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                versions.append(int(part))
            except ValueError:
                raise click.UsageError(
                    f"invalid -versions entry {part!r}: expected version "
                    "numbers such as -versions=1,2"
                ) from None
    return versions


def _versions_option(required: bool) -> Any:
    return click.option(
        "-versions",
        "--versions",
        multiple=True,
        required=required,
        metavar="N,N...",
        help="Comma-separated version numbers.",
    )


def _cas_option(func: Any) -> Any:
    return click.option(
        "-cas",
        "--cas",
        type=click.IntRange(min=-1),
        default=-1,
        metavar="VERSION",
        help="Check-and-set: write only if the current version is VERSION "
        "(0 means the secret must not exist). -1 disables the check.",
    )(func)


def _kv_command(group: click.Group, name: str) -> Any:
    """Register a kv command with -mount, the HTTP flags and -format."""

    def decorator(func: Any) -> Any:
        func = command_options(func)
        func = mount_option(None)(func)
        return group.command(name)(func)

    return decorator


@click.group("kv", cls=Group)
def kv_command() -> None:
    """Read and write key/value secrets (KV versions 1 and 2).

    Give the path with its mount (secret/my-app) or the mount separately
    (-mount=secret my-app).
    """


# -- printing -----------------------------------------------------------------


def _print_written(kv: KVPath, response: dict | None, output: Output) -> None:
    """Print the result of a v2 put or patch: the new version's metadata."""
    if output.field:
        print_field(lookup_field(response or {}, output.field), output)
        return
    if output.is_json:
        print_json(response)
        return
    _print_path_and_metadata(kv, (response or {}).get("data"))


def _print_path_and_metadata(kv: KVPath, metadata: dict | None) -> None:
    print_section("Secret Path")
    click.echo(kv.api_path("data"))
    click.echo()
    print_section("Metadata")
    print_table(sorted((metadata or {}).items()))


def _print_v2_secret(kv: KVPath, response: dict[str, Any], output: Output) -> None:
    body = response.get("data") or {}
    values = body.get("data")
    if output.field:
        if not isinstance(values, dict) or output.field not in values:
            raise click.ClickException(
                f'field "{output.field}" is not present in {kv.api_path("data")}'
            )
        print_field(values[output.field], output)
        return
    if output.is_json:
        print_json(response)
        return

    _print_path_and_metadata(kv, body.get("metadata"))
    if isinstance(values, dict):
        click.echo()
        print_section("Data")
        print_table(sorted(values.items()))


# -- put, patch, get ----------------------------------------------------------


@_kv_command(kv_command, "put")
@click.argument("path")
@click.argument("data", nargs=-1)
@_cas_option
@field_option
def put_command(path: str, data: tuple[str, ...], mount: str | None, cas: int) -> None:
    """Write a secret: PATH KEY=VALUE... (KEY=@FILE, KEY=- or - for stdin).

    On KV version 2 every put creates a new version holding exactly DATA.
    """
    values = parse_data(data)
    if not values:
        raise click.UsageError("missing data: give KEY=VALUE pairs or - for stdin")
    client = current_client()
    kv = resolve(client, path, mount)
    _require_secret(kv)
    output = current_output()

    if kv.version == 1:
        response = client.write(kv.api_path("data"), values)
        message = f"Data written to: {kv.api_path('data')}"
        print_write_result(response, output, message)
        return
    body: dict[str, Any] = {"data": values}
    if cas >= 0:
        body["options"] = {"cas": cas}
    response = client.request("PUT", kv.api_path("data"), json=body)
    _print_written(kv, response, output)


@_kv_command(kv_command, "patch")
@click.argument("path")
@click.argument("data", nargs=-1)
@_cas_option
@click.option(
    "-method",
    "--method",
    type=click.Choice(["patch", "rw"]),
    default="patch",
    show_default=True,
    help="patch sends an HTTP PATCH; rw reads the secret, merges and writes "
    "it back with check-and-set, for servers without PATCH.",
)
@field_option
def patch_command(
    path: str, data: tuple[str, ...], mount: str | None, cas: int, method: str
) -> None:
    """Update some keys of a KV v2 secret, keeping the others."""
    values = parse_data(data)
    if not values:
        raise click.UsageError("missing data: give KEY=VALUE pairs or - for stdin")
    client = current_client()
    kv = resolve(client, path, mount)
    _require_secret(kv)
    _require_v2(kv, "patch")

    if method == "rw":
        response = _patch_by_rewrite(client, kv, values)
    else:
        body: dict[str, Any] = {"data": values}
        if cas >= 0:
            body["options"] = {"cas": cas}
        response = client.request(
            "PATCH",
            kv.api_path("data"),
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )
    _print_written(kv, response, current_output())


def _patch_by_rewrite(
    client: Client, kv: KVPath, values: dict[str, Any]
) -> dict | None:
    current = client.read(kv.api_path("data"))
    body = (current or {}).get("data") or {}
    if not isinstance(body.get("data"), dict):
        raise not_found(kv.api_path("data"))
    merged = {**body["data"], **values}
    version = (body.get("metadata") or {}).get("version", 0)
    return client.request(
        "PUT",
        kv.api_path("data"),
        json={"data": merged, "options": {"cas": version}},
    )


@_kv_command(kv_command, "get")
@click.argument("path")
@click.option(
    "-version",
    "--version",
    type=click.IntRange(min=0),
    default=None,
    help="Version to read (KV v2); the latest by default.",
)
@field_option
def get_command(path: str, mount: str | None, version: int | None) -> None:
    """Read a secret; on KV v2 the latest version unless -version is given."""
    client = current_client()
    kv = resolve(client, path, mount)
    _require_secret(kv)
    output = current_output()

    params = {"version": version} if version and kv.version == 2 else None
    response = client.read(kv.api_path("data"), params)
    if response is None:
        raise not_found(kv.api_path("data"))
    if kv.version == 1:
        print_secret(response, output)
    else:
        _print_v2_secret(kv, response, output)


# -- delete, undelete, destroy, list --------------------------------------------


@_kv_command(kv_command, "delete")
@click.argument("path")
@_versions_option(required=False)
def delete_command(path: str, mount: str | None, versions: tuple[str, ...]) -> None:
    """Delete a secret. On KV v2 this is a soft delete of the latest version
    (or of -versions), which `kv undelete` reverses."""
    client = current_client()
    kv = resolve(client, path, mount)
    _require_secret(kv)
    numbers = _parse_versions(versions)

    if numbers:
        _require_v2(kv, "delete -versions")
        target = kv.api_path("delete")
        client.write(target, {"versions": numbers})
    else:
        target = kv.api_path("data")
        client.delete(target)
    print_success(f"Data deleted (if it existed) at: {target}", current_output())


def _versions_command(name: str, help_text: str) -> None:
    @_kv_command(kv_command, name)
    @click.argument("path")
    @_versions_option(required=True)
    def command(path: str, mount: str | None, versions: tuple[str, ...]) -> None:
        client = current_client()
        kv = resolve(client, path, mount)
        _require_secret(kv)
        _require_v2(kv, name)
        numbers = _parse_versions(versions)
        if not numbers:
            raise click.UsageError(f"kv {name} needs -versions=N[,N...]")
        client.write(kv.api_path(name), {"versions": numbers})
        print_success(f"Data written to: {kv.api_path(name)}", current_output())

    command.help = help_text


_versions_command("undelete", "Restore soft-deleted versions of a KV v2 secret.")
_versions_command(
    "destroy",
    "Remove versions of a KV v2 secret for good; they cannot be undeleted.",
)


@_kv_command(kv_command, "list")
@click.argument("path")
def list_command(path: str, mount: str | None) -> None:
    """List the keys under a path (names ending in / hold more keys)."""
    client = current_client()
    kv = resolve(client, path, mount)
    target = kv.api_path("metadata")
    response = client.list(target)
    keys = ((response or {}).get("data") or {}).get("keys")
    if not keys:
        raise not_found(target)
    print_keys(keys, current_output())


# -- metadata -------------------------------------------------------------------


@kv_command.group("metadata")
def metadata_command() -> None:
    """Read and change the metadata of KV v2 secrets (all versions)."""


@_kv_command(metadata_command, "get")
@click.argument("path")
def metadata_get_command(path: str, mount: str | None) -> None:
    """Print a secret's settings and the state of each version."""
    client = current_client()
    kv = resolve(client, path, mount)
    _require_secret(kv)
    _require_v2(kv, "metadata get")
    response = client.read(kv.api_path("metadata"))
    if response is None:
        raise not_found(kv.api_path("metadata"))
    output = current_output()
    if output.is_json:
        print_json(response)
        return
    _print_metadata(kv, response.get("data") or {})


def _print_metadata(kv: KVPath, metadata: dict[str, Any]) -> None:
    print_section("Metadata Path")
    click.echo(kv.api_path("metadata"))
    click.echo()
    print_section("Metadata")
    rows = sorted((k, v) for k, v in metadata.items() if k != "versions")
    print_table(rows)

    versions = metadata.get("versions") or {}
    for number in sorted(versions, key=_version_key, reverse=True):
        click.echo()
        print_section(f"Version {number}")
        print_table(sorted(versions[number].items()))


def _version_key(number: str) -> int:
    return int(number) if str(number).isdigit() else 0


@_kv_command(metadata_command, "put")
@click.argument("path")
@click.option(
    "-max-versions",
    "--max-versions",
    type=click.IntRange(min=0),
    help="Versions to keep; older ones are removed (0 uses the mount's setting).",
)
@click.option(
    "-cas-required",
    "--cas-required",
    type=click.BOOL,
    default=None,
    help="Whether every write must pass -cas (true or false).",
)
@click.option(
    "-delete-version-after",
    "--delete-version-after",
    metavar="DURATION",
    help="Soft-delete each version this long after it is written, e.g. 720h "
    "(0s turns it off).",
)
@click.option(
    "-custom-metadata",
    "--custom-metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="Custom metadata pair; repeat for more. Replaces all earlier pairs.",
)
def metadata_put_command(
    path: str,
    mount: str | None,
    max_versions: int | None,
    cas_required: bool | None,
    delete_version_after: str | None,
    custom_metadata: tuple[str, ...],
) -> None:
    """Set a secret's metadata; settings not given stay as they are."""
    body: dict[str, Any] = {}
    if max_versions is not None:
        body["max_versions"] = max_versions
    if cas_required is not None:
        body["cas_required"] = cas_required
    if delete_version_after is not None:
        body["delete_version_after"] = delete_version_after
    if custom_metadata:
        body["custom_metadata"] = parse_pairs(custom_metadata, "-custom-metadata")

    client = current_client()
    kv = resolve(client, path, mount)
    _require_secret(kv)
    _require_v2(kv, "metadata put")
    client.write(kv.api_path("metadata"), body)
    print_success(f"Data written to: {kv.api_path('metadata')}", current_output())


@_kv_command(metadata_command, "delete")
@click.argument("path")
def metadata_delete_command(path: str, mount: str | None) -> None:
    """Delete a secret with all its versions and metadata, for good."""
    client = current_client()
    kv = resolve(client, path, mount)
    _require_secret(kv)
    _require_v2(kv, "metadata delete")
    client.delete(kv.api_path("metadata"))
    print_success(
        f"Data deleted (if it existed) at: {kv.api_path('metadata')}",
        current_output(),
    )
