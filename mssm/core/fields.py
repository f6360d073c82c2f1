"""Field schemas for request bodies: type coercion as Vault's framework does
it, errors that name the field, and warnings for unknown fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mssm.core.durations import parse_duration
from mssm.core.errors import BadRequest

STRING = "string"
INT = "int"
BOOL = "bool"
DURATION = "duration"
MAP = "map"
STRING_MAP = "string_map"
LIST = "list"
STRING_LIST = "string_list"
COMMA_LIST = "comma_list"
ANY = "any"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Field:
    type: str = STRING
    default: Any = None
    description: str = ""
    required: bool = False


def parse_fields(
    schema: dict[str, Field], raw: dict[str, Any], params: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """Coerce raw into the schema's types; return values and warnings.

    A field sent as JSON null counts as unset. Fields the schema does not
    know are dropped and named in a warning, as Vault does.
    """
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for name, value in raw.items():
        if name in params:
            continue
        spec = schema.get(name)
        if spec is None:
            warnings.append(f"Endpoint ignored these unrecognized parameters: [{name}]")
            continue
        if value is None:
            continue
        values[name] = coerce(name, spec.type, value)
    for name, spec in schema.items():
        if spec.required and name not in values and name not in params:
            raise BadRequest(f"missing required field {name!r}")
    return values, _merge_warnings(warnings)


def _merge_warnings(warnings: list[str]) -> list[str]:
    if len(warnings) <= 1:
        return warnings
    names = [w.split("[", 1)[1].rstrip("]") for w in warnings]
    return [f"Endpoint ignored these unrecognized parameters: [{' '.join(names)}]"]


def coerce(name: str, kind: str, value: Any) -> Any:
    if kind == ANY:
        return value
    converter = _CONVERTERS[kind]
    return converter(name, value)


def _to_string(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise BadRequest(f"field {name!r} must be a string, got {_type_name(value)}")


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise BadRequest(f"field {name!r} must be an integer, got a boolean")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            pass
    if number is None:
        raise BadRequest(f"field {name!r} must be an integer, got {_shorten(value)}")
    return _in_int64(name, number, value)


def _in_int64(name: str, number: int, value: Any) -> int:
    # Storage and JSON carry 64-bit integers, as Vault's Go ints are; a
    # larger number would fail only when the value is stored.
    if not INT64_MIN <= number <= INT64_MAX:
        raise BadRequest(
            f"field {name!r} must be an integer between {INT64_MIN} and "
            f"{INT64_MAX}, got {_shorten(value)}"
        )
    return number


def _shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise BadRequest(f"field {name!r} must be a boolean, got {_shorten(value)}")


def _to_duration(name: str, value: Any) -> int:
    return parse_duration(value, name)


def _to_map(name: str, value: Any) -> dict:
    if isinstance(value, dict):
        return value
    raise BadRequest(f"field {name!r} must be a JSON object, got {_type_name(value)}")


def _to_string_map(name: str, value: Any) -> dict[str, str]:
    mapping = _to_map(name, value)
    for key, item in mapping.items():
        if not isinstance(item, str):
            raise BadRequest(
                f"field {name!r} must map strings to strings; "
                f"key {key!r} has {_type_name(item)}"
            )
    return mapping


def _to_list(name: str, value: Any) -> list:
    if isinstance(value, list):
        return value
    raise BadRequest(f"field {name!r} must be a JSON array, got {_type_name(value)}")


def _to_string_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    items = _to_list(name, value)
    return [_to_string(name, item) for item in items]


_CONVERTERS = {
    STRING: _to_string,
    INT: _to_int,
    BOOL: _to_bool,
    DURATION: _to_duration,
    MAP: _to_map,
    STRING_MAP: _to_string_map,
    LIST: _to_list,
    STRING_LIST: _to_string_list,
    COMMA_LIST: _to_string_list,
}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
