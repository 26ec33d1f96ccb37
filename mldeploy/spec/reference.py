"""Derived from the declaration: the JSON Schema of ``service.yaml`` and the README's key reference.

``mldeploy schema`` prints the schema; the packaged copy (``service.schema.json``) is what an
editor reads through a ``# yaml-language-server: $schema=...`` line. Tests fail when either
copy (the packaged schema or the README table) differs from what the models say today.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mldeploy.spec.document import ServiceSpec
from mldeploy.spec.targets import TARGET_SECTIONS

SCHEMA_FILE = Path(__file__).with_name("service.schema.json")


def json_schema() -> dict[str, Any]:
    schema = ServiceSpec.model_json_schema(mode="validation")
    _close_mappings(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "mldeploy service spec"}


def _close_mappings(node: Any) -> None:
    """A mapping with key rules (``patternProperties``) accepts no other key: an editor flags a bad name."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_mappings(value)
    elif isinstance(node, list):
        for value in node:
            _close_mappings(value)


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


# --- the README's key reference ------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin in (tuple, list):
        return "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path"}.get(annotation, "any")


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.get_default(call_default_factory=True)
    if value is None or value == {} or value == () or value == "":
        return ""
    if isinstance(value, BaseModel):
        return ""
    return f"`{json.dumps(value)}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        annotation = typing.Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        key = f"{prefix}{name}"
        rows.append(f"| `{key}` | {_type_name(annotation)} | {_default(info)} | {info.description or ''} |")
        nested = _nested_model(info.annotation)
        if nested is not None and name != "target":
            rows += _rows(nested, f"{key}[]." if _is_list(info.annotation) else f"{key}.")
    return rows


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = typing.get_args(arg)
        if inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
            return inner[0]
    return None


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (tuple, list)


def markdown_reference() -> str:
    """Every key of service.yaml: its type, default and meaning — the README's table."""
    header = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines = ["#### Service", "", *header, *_rows(ServiceSpec, "")]
    for kind, section in TARGET_SECTIONS.items():
        lines += ["", f"#### `target` with `kind: {kind}`", "", (section.__doc__ or "").strip(), "", *header]
        lines += _rows(section, "target.")
    return "\n".join(lines) + "\n"
