"""Validation errors become spec problems: file, field path, what is wrong, and the fix.

One mapping table from pydantic's error types to a message and a fix, decided here and nowhere
else. A field's own :class:`~mldeploy.spec.types.Fix` (declared beside its rule) wins over the
table's generic fix; errors raised by our validators carry their fix in the error's context.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from mldeploy.errors import SpecProblem
from mldeploy.spec.targets import TARGET_KINDS, TARGET_SECTIONS
from mldeploy.spec.types import Fix

Error = Mapping[str, Any]


def _what(value: Any) -> str:
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
        type(None): "nothing (null)",
    }.get(type(value), type(value).__name__)


BOUNDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


def _range(error: Error) -> str:
    ctx = error.get("ctx") or {}
    bound = next((f"{words} {ctx[key]}" for key, words in BOUNDS.items() if key in ctx), "in range")
    return f"{error['input']!r} is out of range (must be {bound})"


# error type -> (message, generic fix); {field} is the dotted field path.
MESSAGES: dict[str, tuple[Callable[[Error], str], str]] = {
    "string_type": (lambda e: f"must be text, got {_what(e['input'])} {e['input']!r}", "quote the value"),
    "int_type": (lambda e: f"must be a whole number, got {_what(e['input'])} {e['input']!r}", "write a number"),
    "float_type": (lambda e: f"must be a number, got {_what(e['input'])} {e['input']!r}", "write a number"),
    "bool_type": (lambda e: f"must be true or false, got {e['input']!r}", "write true or false"),
    "dict_type": (lambda e: f"must be a mapping, got {_what(e['input'])}", "write {field}: with keys below it"),
    "model_type": (lambda e: f"must be a mapping, got {_what(e['input'])}", "write {field}: with keys below it"),
    "model_attributes_type": (lambda e: f"must be a mapping, got {_what(e['input'])}", "write keys below {field}"),
    "tuple_type": (lambda e: f"must be a list, got {_what(e['input'])}", "write '- ...' items under {field}"),
    "list_type": (lambda e: f"must be a list, got {_what(e['input'])}", "write '- ...' items under {field}"),
    "string_pattern_mismatch": (lambda e: f"{e['input']!r} is not allowed", "see the key reference in README"),
    "string_too_long": (lambda e: f"{len(e['input'])} characters is too long", "shorten it"),
    "string_too_short": (lambda e: f"{e['input']!r} is too short", "lengthen it"),
    "greater_than_equal": (_range, "use a value in range"),
    "greater_than": (_range, "use a value in range"),
    "less_than_equal": (_range, "use a value in range"),
    "less_than": (_range, "use a value in range"),
    "literal_error": (
        lambda e: f"{e['input']!r} is not one of {(e.get('ctx') or {}).get('expected', '')}",
        "use one of {expected}",
    ),
    "union_tag_invalid": (
        lambda e: f"unknown target {(e.get('ctx') or {}).get('tag')!r}",
        "use one of " + ", ".join(TARGET_KINDS),
    ),
    "extra_forbidden": (lambda e: "unknown key", "remove it or use one of: {known}"),
}


def _annotation_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> Any:
    """The annotation of the field at ``loc`` inside ``model`` (None when the path leaves the models)."""
    annotation: Any = model
    for part in loc:
        model_class = _model_in(annotation)
        if isinstance(part, str) and model_class is not None:
            if part in TARGET_SECTIONS and part not in model_class.model_fields:
                annotation = TARGET_SECTIONS[part]  # a discriminated union's tag
                continue
            info: FieldInfo | None = model_class.model_fields.get(part)
            if info is None:
                return None
            annotation = typing.Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        else:
            annotation = _item_type(annotation)
    return annotation


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for candidate in _flatten(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _flatten(annotation: Any) -> list[Any]:
    """The annotation, the members of a union and the base of an Annotated, recursively."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return [annotation, *_flatten(typing.get_args(annotation)[0])]
    if origin in (typing.Union, types.UnionType):
        return [item for arg in typing.get_args(annotation) for item in _flatten(arg)]
    return [annotation]


def _item_type(annotation: Any) -> Any:
    for candidate in _flatten(annotation):
        args = typing.get_args(candidate)
        origin = typing.get_origin(candidate)
        if origin in (tuple, list) and args:
            return args[0]
        if origin is dict and args:
            return args[1]
    return None


def _fix_in(annotation: Any, *, key: bool = False) -> str | None:
    if key:  # a dict key's rule is on the dict's key type
        for candidate in _flatten(annotation):
            if typing.get_origin(candidate) is dict:
                return _fix_in(typing.get_args(candidate)[0])
        return None
    for candidate in _flatten(annotation):
        if typing.get_origin(candidate) is typing.Annotated:
            for meta in typing.get_args(candidate)[1:]:
                if isinstance(meta, Fix):
                    return meta.text
    return None


def _description_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> str | None:
    parent = _model_in(_annotation_at(root, loc[:-1])) if len(loc) > 1 else root
    info = parent.model_fields.get(str(loc[-1])) if parent is not None and loc else None
    return info.description if info is not None else None


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _clean(loc: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], bool]:
    """Drop the union tag after ``target`` and the ``[key]`` marker; say whether a dict key failed."""
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "target" and parts[1] in TARGET_SECTIONS:
        del parts[1]
    is_key = bool(parts) and parts[-1] == "[key]"
    if is_key:
        parts.pop()
    return tuple(parts), is_key


def _unknown_key(loc: tuple[str | int, ...], raw_loc: tuple[str | int, ...], root: type[BaseModel]) -> tuple[str, str]:
    """The message and fix for a key that is not declared where it stands."""
    key = str(loc[-1])
    if raw_loc[:1] == ("target",) and len(raw_loc) == 3:
        kind = str(raw_loc[1])
        owners = [k for k, section in TARGET_SECTIONS.items() if key in section.model_fields]
        if owners:
            return (
                f"{key!r} is not a key of target kind {kind!r} (it belongs to {', '.join(owners)})",
                f"remove it, or set target.kind: {owners[0]}",
            )
        known = ", ".join(sorted(TARGET_SECTIONS[kind].model_fields))
        return f"unknown key for target kind {kind!r}", f"remove it or use one of: {known}"
    parent = _model_in(_annotation_at(root, raw_loc[:-1])) if len(raw_loc) > 1 else root
    known = ", ".join(sorted(parent.model_fields)) if parent else "the keys in README"
    return "unknown key", f"remove it or use one of: {known}"


def problems_of(error: ValidationError, spec_file: str, root: type[BaseModel]) -> list[SpecProblem]:
    """Every problem of one validation error, in document order, each with its fix."""
    found: list[SpecProblem] = []
    for item in error.errors(include_url=False):
        raw_loc = tuple(item["loc"])
        loc, is_key = _clean(raw_loc)
        if item["type"] == "union_tag_invalid":
            loc = (*loc, "kind")
        field = _dotted(loc) or "(document)"
        ctx = item.get("ctx") or {}
        if item["type"] == "spec_problems":
            found.extend(ctx["problems"])
            continue
        if item["type"] == "extra_forbidden":
            message, fix = _unknown_key(loc, raw_loc, root)
        elif item["type"] == "missing":
            message = "missing"
            fix = f"set {field}" + (f": {described}" if (described := _description_at(root, raw_loc)) else "")
        elif item["type"] in MESSAGES:
            describe, generic = MESSAGES[item["type"]]
            message = describe(item)
            declared = _fix_in(_annotation_at(root, raw_loc[:-1] if is_key else raw_loc), key=is_key)
            fix = declared or generic.format(field=field, expected=ctx.get("expected", ""), known="")
        else:  # our own validators: the message is final and the fix travels in the context
            message = item["msg"]
            fix = str(ctx.get("fix") or _fix_in(_annotation_at(root, raw_loc)) or f"see {field} in README")
        found.append(SpecProblem(spec_file, field, message, fix))
    return found
