"""Username templates in the subset of Go's text/template syntax Vault uses.

    {{ printf "v-%s-%s-%s" (.DisplayName | truncate 8) (random 20) (unix_time) }}

Fields: .DisplayName, .RoleName. Functions: printf, random N, truncate N,
unix_time, unix_time_millis, uuid, lowercase, uppercase, replace OLD NEW,
sha256. In a pipeline `a | f x`, the value of `a` is the last argument of
`f`, as in Go.

The values of both fields are folded into the user name alphabet before
the template receives them, and the rendered name is rejected unless it
consists of that alphabet alone, so a name is always safe inside the
quotes an operator writes around {{name}}.
"""

from __future__ import annotations

import hashlib
import re
import string
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mssm.crypto.randomness import random_string

NAME_ALPHABET = string.ascii_letters + string.digits + "-_."
SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_RANDOM_ALPHABET = string.ascii_letters + string.digits
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<number>-?\d+)
    | (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[|()])
    )""",
    re.VERBOSE,
)
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
FIELDS = ("DisplayName", "RoleName")
_TOO_DEEP = (
    "the username template nests parentheses or pipelines too deeply; use fewer levels"
)


class TemplateError(ValueError):
    """A username template is invalid or failed to render."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


Node = Callable[[dict[str, str], Any], Any]


def fold_name(value: str) -> str:
    """Map value into the user name alphabet: "José's db" -> "Jose_s_db"."""
    decomposed = unicodedata.normalize("NFKD", value)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c if c in NAME_ALPHABET else "_" for c in ascii_only)


class UsernameTemplate:
    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._parts = _compile(source)
        except RecursionError:
            raise TemplateError(_TOO_DEEP) from None

    def render(self, display_name: str, role_name: str) -> str:
        values = {
            "DisplayName": fold_name(display_name),
            "RoleName": fold_name(role_name),
        }
        # Parsing and evaluation both recurse once per nested "(" and per
        # pipeline stage, so Python's recursion limit bounds the nesting.
        try:
            parts = [_text(part(values, None)) for part in self._parts]
        except RecursionError:
            raise TemplateError(_TOO_DEEP) from None
        return "".join(parts).strip()


def check_username(name: str, limit: int, plugin: str) -> None:
    """Raise TemplateError unless name is non-empty, safe and short enough."""
    if not name:
        raise TemplateError("the username template rendered an empty name")
    if not SAFE_NAME.fullmatch(name):
        bad = sorted({c for c in name if c not in NAME_ALPHABET})
        raise TemplateError(
            f"the username template rendered a name with characters outside "
            f"letters, digits, '-', '_' and '.': {''.join(bad)!r}"
        )
    if len(name) > limit:
        raise TemplateError(
            f"the username template rendered a {len(name)}-character name; "
            f"{plugin} allows at most {limit}"
        )


# -- parsing -------------------------------------------------------------------


def _compile(source: str) -> list[Node]:
    parts: list[Node] = []
    position = 0
    for match in _ACTION.finditer(source):
        literal = source[position : match.start()]
        if match.group(1):
            literal = literal.rstrip()
        if literal:
            parts.append(_constant(literal))
        tokens = _tokenize(match.group(2))
        node, rest = _pipeline(tokens)
        if rest:
            raise TemplateError(f"unexpected {rest[0].text!r} in {match.group(0)!r}")
        parts.append(node)
        position = match.end()
        if match.group(3):
            while position < len(source) and source[position].isspace():
                position += 1
    tail = source[position:]
    if "{{" in tail or "}}" in tail:
        raise TemplateError("unclosed action: '{{' without a matching '}}'")
    if tail:
        parts.append(_constant(tail))
    return parts


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise TemplateError(f"unexpected character {text[position:].strip()[0]!r}")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind)))
        position = match.end()
    if not tokens:
        raise TemplateError("empty action '{{}}'")
    return tokens


def _pipeline(tokens: list[Token]) -> tuple[Node, list[Token]]:
    node, tokens = _command(tokens)
    while tokens and tokens[0].text == "|":
        piped = node
        following, tokens = _command(tokens[1:])
        node = _pipe(piped, following)
    return node, tokens


def _pipe(first: Node, then: Node) -> Node:
    return lambda values, _: then(values, first(values, None))


def _command(tokens: list[Token]) -> tuple[Node, list[Token]]:
    if not tokens:
        raise TemplateError("missing value or function in a pipeline")
    head = tokens[0]
    if head.kind == "ident":
        function = _function(head.text)
        arguments, tokens = _operands(tokens[1:])
        return _call(head.text, function, arguments), tokens
    operand, tokens = _operand(tokens)
    if tokens and tokens[0].text not in ("|", ")"):
        raise TemplateError(f"unexpected {tokens[0].text!r} after a value")
    return _no_pipe_input(operand), tokens


def _operands(tokens: list[Token]) -> tuple[list[Node], list[Token]]:
    operands = []
    while tokens and tokens[0].text not in ("|", ")"):
        operand, tokens = _operand(tokens)
        operands.append(operand)
    return operands, tokens


def _operand(tokens: list[Token]) -> tuple[Node, list[Token]]:
    head, rest = tokens[0], tokens[1:]
    if head.text == "(":
        node, rest = _pipeline(rest)
        if not rest or rest[0].text != ")":
            raise TemplateError("missing ')' in the username template")
        return node, rest[1:]
    if head.kind == "string":
        return _constant(_go_string(head.text)), rest
    if head.kind == "raw":
        return _constant(head.text[1:-1]), rest
    if head.kind == "number":
        return _constant(int(head.text)), rest
    if head.kind == "field":
        return _field(head.text[1:]), rest
    if head.kind == "ident":
        function = _function(head.text)
        return _call(head.text, function, []), rest
    raise TemplateError(f"unexpected {head.text!r} in the username template")


def _constant(value: Any) -> Node:
    return lambda values, _: value


def _field(name: str) -> Node:
    if name not in FIELDS:
        raise TemplateError(
            f"unknown field .{name} in the username template; "
            f"known fields: {', '.join('.' + f for f in FIELDS)}"
        )
    return lambda values, _: values[name]


def _no_pipe_input(operand: Node) -> Node:
    def evaluate(values: dict[str, str], piped: Any) -> Any:
        if piped is not None:
            raise TemplateError("a value cannot take pipeline input")
        return operand(values, None)

    return evaluate


def _call(name: str, function: Callable[..., Any], arguments: list[Node]) -> Node:
    def evaluate(values: dict[str, str], piped: Any) -> Any:
        args = [argument(values, None) for argument in arguments]
        if piped is not None:
            args.append(piped)
        try:
            return function(*args)
        except TypeError:
            raise TemplateError(
                f"wrong number or type of arguments for {name} ({len(args)} given)"
            ) from None

    return evaluate


def _go_string(literal: str) -> str:
    body = literal[1:-1]
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "r": "\r"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), body)


def _text(value: Any) -> str:
    return str(value)


# -- functions -----------------------------------------------------------------


def _printf(format_string: str, *args: Any) -> str:
    remaining = list(args)

    def substitute(match: re.Match) -> str:
        verb = match.group(1)
        if verb == "%":
            return "%"
        if not remaining:
            return f"%!{verb}(MISSING)"
        return _text(remaining.pop(0))

    return re.sub(r"%([sdv%])", substitute, _expect_str(format_string))


def _random(length: Any) -> str:
    count = _expect_int(length, "random")
    if not 0 < count <= 1024:
        raise TemplateError(f"random takes a length from 1 to 1024, got {count}")
    return random_string(_RANDOM_ALPHABET, count)


def _truncate(length: Any, value: Any) -> str:
    count = _expect_int(length, "truncate")
    if count < 0:
        raise TemplateError(f"truncate takes a length >= 0, got {count}")
    return _text(value)[:count]


def _replace(old: Any, new: Any, value: Any) -> str:
    return _text(value).replace(_expect_str(old), _expect_str(new))


def _sha256(value: Any) -> str:
    return hashlib.sha256(_text(value).encode()).hexdigest()


def _expect_int(value: Any, name: str) -> int:
    if not isinstance(value, int):
        raise TemplateError(f"{name} needs an integer length, got {value!r}")
    return value


def _expect_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "printf": _printf,
    "random": _random,
    "truncate": _truncate,
    "unix_time": lambda: int(time.time()),
    "unix_time_millis": lambda: int(time.time() * 1000),
    "uuid": lambda: str(uuid.uuid4()),
    "lowercase": lambda value: _text(value).lower(),
    "uppercase": lambda value: _text(value).upper(),
    "replace": _replace,
    "sha256": _sha256,
}


def _function(name: str) -> Callable[..., Any]:
    function = FUNCTIONS.get(name)
    if function is None:
        raise TemplateError(
            f"function {name!r} is not defined in username templates; "
            f"known functions: {', '.join(sorted(FUNCTIONS))}"
        )
    return function
