"""Password policies in Vault's HCL format, and passwords generated from them.

A policy is a length and charset rules:

    length = 20
    rule "charset" {
      charset   = "abcdefghijklmnopqrstuvwxyz"
      min-chars = 1
    }

A generated password has exactly `length` characters, at least `min-chars`
from each rule's charset, and draws the rest from the union of all charsets,
using the operating system's CSPRNG (os.urandom, through
mssm.crypto.randomness).
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from dataclasses import dataclass

import hcl2
from lark.exceptions import LarkError

from mssm.core.barrier import Barrier, StorageView
from mssm.crypto.randomness import RandomBytes

MIN_LENGTH = 4
MAX_LENGTH = 100
POLICY_STORAGE_PREFIX = "sys/password_policy/"
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)


class PolicyError(ValueError):
    """A password policy document is invalid; the message gives the reason."""


@dataclass(frozen=True)
class CharsetRule:
    charset: str
    min_chars: int = 0


@dataclass(frozen=True)
class PasswordPolicy:
    length: int
    rules: tuple[CharsetRule, ...]

    @property
    def charset(self) -> str:
        """Return every character the policy may use, each once."""
        return "".join(dict.fromkeys("".join(rule.charset for rule in self.rules)))

    def generate(self) -> str:
        source = RandomBytes(2 * self.length + 8)
        chosen = [
            source.choice(rule.charset)
            for rule in self.rules
            for _ in range(rule.min_chars)
        ]
        pool = self.charset
        chosen += [source.choice(pool) for _ in range(self.length - len(chosen))]
        source.shuffle(chosen)
        return "".join(chosen)


# 20 characters of letters, digits and "-", at least one of each class:
# 118 bits of entropy, and nothing that needs quoting inside SQL literals.
DEFAULT_POLICY = PasswordPolicy(
    20,
    (
        CharsetRule(string.ascii_lowercase, 1),
        CharsetRule(string.ascii_uppercase, 1),
        CharsetRule(string.digits, 1),
        CharsetRule("-", 1),
    ),
)


def parse_policy(text: str) -> PasswordPolicy:
    """Parse a policy in HCL, or in base64-encoded HCL; raise PolicyError."""
    try:
        document = _load_hcl(text)
    except PolicyError:
        decoded = _base64_text(text)
        if decoded is None:
            raise
        document = _load_hcl(decoded)
    return _build_policy(document)


def decode_policy_text(text: str) -> str:
    """Return the HCL text of a policy sent either plain or base64-encoded."""
    try:
        _load_hcl(text)
        return text
    except PolicyError:
        decoded = _base64_text(text)
        return text if decoded is None else decoded


def _load_hcl(text: str) -> dict:
    try:
        return hcl2.loads(text)
    except (LarkError, ValueError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PolicyError(
            f"invalid password policy: unable to decode: {first_line}"
        ) from None


def _base64_text(text: str) -> str | None:
    try:
        return base64.b64decode(text.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _build_policy(document: dict) -> PasswordPolicy:
    unknown = sorted(set(document) - {"length", "rule"})
    if unknown:
        raise PolicyError(
            f"invalid password policy: unknown key {unknown[0]!r}; "
            "expected length and rule blocks"
        )
    length = _length(document.get("length"))
    rules = tuple(_rules(document.get("rule") or []))
    if not rules:
        raise PolicyError("invalid password policy: no charset specified")
    required = sum(rule.min_chars for rule in rules)
    if required > length:
        raise PolicyError(
            f"invalid password policy: specified rules require at least {required} "
            f"characters but {length} is specified"
        )
    return PasswordPolicy(length, rules)


def _length(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PolicyError("invalid password policy: length must be an integer")
    if not MIN_LENGTH <= value <= MAX_LENGTH:
        raise PolicyError(
            f"passwords must be between {MIN_LENGTH} and {MAX_LENGTH} characters"
        )
    return value


def _rules(blocks: object) -> list[CharsetRule]:
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise PolicyError(
            'invalid password policy: rule must be a block: rule "charset" { ... }'
        )
    rules = []
    for block in blocks:
        for kind, body in block.items():
            name = _unquote(kind)
            if name != "charset":
                raise PolicyError(
                    f"invalid password policy: unable to parse rules: "
                    f"unrecognized rule type {name}"
                )
            rules.append(_charset_rule(body))
    return rules


def _charset_rule(body: object) -> CharsetRule:
    if not isinstance(body, dict):
        raise PolicyError('invalid password policy: rule "charset" must be a block')
    raw = body.get("charset", "")
    if not isinstance(raw, str):
        raise PolicyError("invalid password policy: charset must be a string")
    charset = _unquote(raw)
    if not charset:
        raise PolicyError("invalid password policy: a charset rule has no charset")
    min_chars = body.get("min-chars", body.get("min_chars", 0))
    if not isinstance(min_chars, int) or isinstance(min_chars, bool) or min_chars < 0:
        raise PolicyError("invalid password policy: min-chars must be an integer >= 0")
    return CharsetRule(charset, min_chars)


def _unquote(value: str) -> str:
    """Turn an HCL string token ("a\\"b") into its value (a"b)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return _ESCAPE.sub(_unescape, value)


def _unescape(match: re.Match) -> str:
    code = match.group(1)
    if code[0] in "uU" and len(code) > 1:
        return chr(int(code[1:], 16))
    return _ESCAPES.get(code, "\\" + code)


async def load_policy(barrier: Barrier, name: str) -> PasswordPolicy | None:
    """Return the stored policy called name, or None if there is none."""
    record = await StorageView(barrier, POLICY_STORAGE_PREFIX).get_json(name)
    if record is None:
        return None
    return parse_policy(record["policy"])
