"""`mssm policy`: write, read, list, delete and format ACL policies."""

from __future__ import annotations

import os
from typing import Any

import click

from mssm.cli.client import not_found
from mssm.cli.inputs import STDIN, read_file, read_stdin
from mssm.cli.options import Group, command_options, current_client, current_output
from mssm.cli.output import print_json, print_success

_INDENT = "  "

# Markers python-hcl2 adds to the dict it returns; they are not attributes.
_BLOCK_MARKER = "__is_block__"
_COMMENTS = "__comments__"


@click.group("policy", cls=Group)
def policy_command() -> None:
    """Manage ACL policies (Vault's HCL or JSON policy syntax)."""


@policy_command.command("write")
@click.argument("name")
@click.argument("source", metavar="FILE|-")
@command_options
def write_command(name: str, source: str) -> None:
    """Upload policy NAME from FILE, or from stdin with "-"."""
    if source == STDIN:
        text = read_stdin("the policy")
    else:
        text = read_file(source, "the policy")
    current_client().write(f"sys/policies/acl/{name}", {"policy": text})
    print_success(f"Uploaded policy: {name}", current_output())


@policy_command.command("read")
@click.argument("name")
@command_options
def read_command(name: str) -> None:
    """Print the rules of policy NAME."""
    response = current_client().read(f"sys/policies/acl/{name}")
    if response is None:
        raise not_found(f"sys/policies/acl/{name}")
    if current_output().is_json:
        print_json(response)
        return
    fields = {**response, **(response.get("data") or {})}
    click.echo(fields.get("policy") or fields.get("rules") or "")


@policy_command.command("list")
@command_options
def list_command() -> None:
    """List the names of all ACL policies."""
    response = current_client().list("sys/policies/acl")
    fields = {**(response or {}), **((response or {}).get("data") or {})}
    keys = fields.get("keys") or fields.get("policies") or []
    output = current_output()
    if output.is_json:
        print_json(keys)
        return
    for key in keys:
        click.echo(key)


@policy_command.command("delete")
@click.argument("name")
@command_options
def delete_command(name: str) -> None:
    """Delete policy NAME; tokens that have it lose its rules at once."""
    current_client().delete(f"sys/policies/acl/{name}")
    print_success(f"Deleted policy: {name}", current_output())


@policy_command.command("fmt")
@click.argument("path", type=click.Path(dir_okay=False))
def fmt_command(path: str) -> None:
    """Rewrite the HCL policy in FILE in a canonical layout.

    Blocks and attributes keep their order. Comments are kept, but moved to
    the start of the file or of the block they were in, because the parser
    does not report where they stood. No request is sent.
    """
    text = read_file(path, "the policy")
    formatted = format_policy(text, path)
    _replace_file(path, formatted)
    click.echo(f"Success! Formatted policy: {path}")


def format_policy(text: str, source: str) -> str:
    """Parse HCL with python-hcl2 and print it back in a canonical layout."""
    import hcl2
    from lark.exceptions import LarkError

    try:
        document = hcl2.loads(text)
    except (LarkError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise click.ClickException(f"invalid HCL in {source}: {first_line}") from None

    lines = _comment_lines(document.get(_COMMENTS), "")
    blocks = [_format_top_level(key, value) for key, value in _items(document)]
    body = "\n\n".join(block for block in blocks if block)
    if lines and body:
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "") + body + "\n"


def _items(mapping: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in mapping.items() if k not in (_BLOCK_MARKER, _COMMENTS)]


def _format_top_level(key: str, value: Any) -> str:
    if isinstance(value, list) and value and all(_is_block(v) for v in value):
        return "\n\n".join(_format_blocks(key, item, "") for item in value)
    return f"{key} = {_format_value(value, '')}"


def _is_block(value: Any) -> bool:
    return isinstance(value, dict) and (
        value.get(_BLOCK_MARKER) is True
        or (len(value) == 1 and _is_block(next(iter(value.values()))))
    )


def _format_blocks(block_type: str, value: dict[str, Any], indent: str) -> str:
    """Print a block; labels are nested one-key dicts in hcl2's output."""
    labels: list[str] = []
    while value.get(_BLOCK_MARKER) is not True and len(value) == 1:
        label, value = next(iter(value.items()))
        labels.append(label)
    header = " ".join([block_type, *labels])
    lines = [f"{indent}{header} {{"]
    lines += _comment_lines(value.get(_COMMENTS), indent + _INDENT)
    lines += _format_attributes(value, indent + _INDENT)
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def _format_attributes(body: dict[str, Any], indent: str) -> list[str]:
    items = _items(body)
    attributes = [(k, v) for k, v in items if not _is_block_list(v)]
    width = max((len(k) for k, _ in attributes), default=0)
    lines = [
        f"{indent}{k.ljust(width)} = {_format_value(v, indent)}" for k, v in attributes
    ]
    for key, value in items:
        if _is_block_list(value):
            lines += [_format_blocks(key, item, indent) for item in value]
    return lines


def _is_block_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_block(v) for v in value)


def _format_value(value: Any, indent: str) -> str:
    """Print a value; strings from hcl2 already carry their quotes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(item, indent) for item in value) + "]"
    if isinstance(value, dict):
        return _format_object(value, indent)
    return str(value)


def _format_object(value: dict[str, Any], indent: str) -> str:
    items = _items(value)
    if not items:
        return "{}"
    inner = indent + _INDENT
    width = max(len(k) for k, _ in items)
    lines = [f"{inner}{k.ljust(width)} = {_format_value(v, inner)}" for k, v in items]
    return "{\n" + "\n".join(lines) + f"\n{indent}}}"


def _comment_lines(comments: Any, indent: str) -> list[str]:
    lines: list[str] = []
    for comment in comments or []:
        text = comment.get("value", "") if isinstance(comment, dict) else str(comment)
        for line in str(text).splitlines() or [""]:
            lines.append(f"{indent}# {line.strip()}".rstrip())
    return lines


def _replace_file(path: str, text: str) -> None:
    """Write text to path through a temporary file, keeping the file mode."""
    temporary = f"{path}.fmt-tmp"
    try:
        mode = os.stat(path).st_mode & 0o7777
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
