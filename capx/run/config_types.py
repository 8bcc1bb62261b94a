"""Keys and types of a config that did not come through Hydra (one saved in a checkpoint, a plain
dict): every key named in its schema, every value of its declared type, each problem said with
the key, what is allowed and, for a misspelled key, a "did you mean". :mod:`capx.run.config`
runs these before its range and plugin checks.
"""

from __future__ import annotations

import difflib
from dataclasses import fields, is_dataclass
from typing import Any, get_args, get_origin, get_type_hints


def check_keys(prefix: str, section: dict, allowed: list[str], problems: list[str]) -> None:
    """A problem for every key of ``section`` not in ``allowed`` (``prefix``: where it is)."""
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{prefix}{key}: unknown key{hint}; allowed keys: "
                            f"{', '.join(sorted(allowed))}")


def check_fields(prefix: str, section: dict, schema: type, problems: list[str]) -> None:
    """A problem for every value of ``section`` not of the type ``schema`` declares for it."""
    hints = get_type_hints(schema)
    for f in fields(schema):
        if f.name in section and not has_type(section[f.name], hints[f.name]):
            problems.append(f"{prefix}{f.name}: expected {type_name(hints[f.name])}, "
                            f"got {section[f.name]!r}")


def has_type(value: Any, annotation: Any) -> bool:
    if annotation is Any:
        return True
    if is_dataclass(annotation):  # a fixed group: its own keys are checked one by one
        return isinstance(value, dict)
    if get_origin(annotation) in (dict, list):
        return isinstance(value, get_origin(annotation))
    if get_origin(annotation) is not None and type(None) in get_args(annotation):
        return value is None or has_type(value, [a for a in get_args(annotation)
                                                  if a is not type(None)][0])
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def type_name(annotation: Any) -> str:
    if is_dataclass(annotation) or get_origin(annotation) is dict:
        return "a mapping"
    if get_origin(annotation) is list:
        return "a list"
    if get_origin(annotation) is not None:
        inner = [a for a in get_args(annotation) if a is not type(None)][0]
        return f"{type_name(inner)} or null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            list: "a list", dict: "a mapping"}.get(annotation, str(annotation))
