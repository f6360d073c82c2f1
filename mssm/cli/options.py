"""Flags shared by every command, spelled as Vault's CLI spells them.

Each long flag is declared with one dash and two ("-format", "--format"),
because click treats a one-dash name of several letters as a long option;
so -format=json, -format json and --format=json all work. The values are
kept in the click context's meta dict, which every subcommand shares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from mssm.cli.client import Client, Settings, env
from mssm.cli.output import FORMATS, Output

F = TypeVar("F", bound=Callable[..., Any])

_META = "mssm.flags"

CONTEXT_SETTINGS = {"help_option_names": ["-h", "-help", "--help"]}


class _FlagErrorMixin:
    """Name the whole flag in unknown-flag errors.

    click reads an unknown "-badflag" as a cluster of short options and
    reports "-b"; this reports "-badflag" instead.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, list(args))  # type: ignore[misc]
        except click.NoSuchOption as exc:
            unknown = _unknown_flag(ctx, args)
            if unknown:
                exc.option_name = unknown
                exc.message = f"unknown flag {unknown}"
            raise


class Command(_FlagErrorMixin, click.Command):
    """A command with Vault-style flag errors."""


class Group(_FlagErrorMixin, click.Group):
    """A group whose commands and subgroups are Command and Group."""

    command_class = Command
    group_class = type


def _unknown_flag(ctx: click.Context, args: list[str]) -> str | None:
    known = set()
    for param in ctx.command.get_params(ctx):
        known.update(param.opts)
        known.update(param.secondary_opts)
    for arg in args:
        if arg == "--":
            return None
        name = arg.split("=", 1)[0]
        if arg.startswith("-") and arg != "-" and name not in known:
            return name
    return None


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.meta.setdefault(_META, {})[name] = value
        return value

    return callback


def _flag(*names: str, dest: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*names, expose_value=False, callback=_remember(dest), **kwargs)


def http_options(func: F) -> F:
    """Add -address, -ca-cert, -tls-skip-verify and -wrap-ttl."""
    decorators = [
        _flag(
            "-address",
            "--address",
            dest="address",
            metavar="URL",
            help="Server address [env MSSM_ADDR, default https://127.0.0.1:8200].",
        ),
        _flag(
            "-ca-cert",
            "--ca-cert",
            dest="ca_cert",
            metavar="FILE",
            help="PEM file of the CA that signed the server certificate "
            "[env MSSM_CACERT].",
        ),
        _flag(
            "-tls-skip-verify",
            "--tls-skip-verify",
            dest="skip_verify",
            is_flag=True,
            default=None,
            help="Do not verify the server certificate (insecure) "
            "[env MSSM_SKIP_VERIFY].",
        ),
        _flag(
            "-wrap-ttl",
            "--wrap-ttl",
            dest="wrap_ttl",
            metavar="DURATION",
            help="Ask the server to wrap the response in a single-use token "
            "that lives this long, e.g. 5m.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def format_option(func: F) -> F:
    return _flag(
        "-format",
        "--format",
        dest="format",
        type=click.Choice(FORMATS),
        help="Output format [env MSSM_FORMAT, default table].",
    )(func)


def field_option(func: F) -> F:
    return _flag(
        "-field",
        "--field",
        dest="field",
        metavar="NAME",
        help="Print only this field, with no trailing newline unless stdout "
        "is a terminal.",
    )(func)


def command_options(func: F) -> F:
    """Add the HTTP flags and -format: what every API command accepts."""
    return http_options(format_option(func))


def flags() -> dict[str, Any]:
    return click.get_current_context().meta.get(_META, {})


def current_client() -> Client:
    # Output settings are checked first, so that a bad MSSM_FORMAT fails
    # before any request changes state on the server.
    current_output()
    return Client(Settings.load(flags()))


def current_output() -> Output:
    chosen = flags().get("format") or env("FORMAT") or "table"
    if chosen not in FORMATS:
        raise click.ClickException(
            f"invalid output format {chosen!r} in MSSM_FORMAT: "
            f"expected one of {', '.join(FORMATS)}"
        )
    return Output(format=chosen, field=flags().get("field"))


def mount_option(default: str | None) -> Callable[[F], F]:
    return click.option(
        "-mount",
        "--mount",
        default=default,
        show_default=True,
        metavar="PATH",
        help="Path where the secrets engine is mounted.",
    )
