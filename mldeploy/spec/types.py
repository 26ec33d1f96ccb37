"""The value types of the service spec, each declared once with its rule and its fix.

A type is an ``Annotated`` string or number: its constraints drive validation and the JSON
Schema alike, and its :class:`Fix` is what a user is told when a value breaks the rule. Every
value that could reach a Dockerfile, a shell, a label or a manifest has a strict pattern here,
so the renderers can trust it. Patterns are anchored with ``^…$``, which the validator (Rust
regex) and JSON Schema (ECMA-262) read the same way: ``$`` never accepts a trailing newline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError


@dataclass(frozen=True)
class Fix:
    """What to tell a user whose value breaks this field's rule (kept beside the rule)."""

    text: str


class Section(BaseModel):
    """A mapping of the spec: unknown keys are errors, types are never coerced, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def spec_error(message: str, fix: str, kind: str = "spec") -> PydanticCustomError:
    """A validation error whose message is final and whose fix travels with it (see problems.py)."""
    return PydanticCustomError(kind, "{message}", {"message": message, "fix": fix})


def _no_control_characters(value: str) -> str:
    if any((ord(ch) < 32 and ch not in "\t\n") or ord(ch) == 127 for ch in value):
        raise spec_error(f"{value!r} contains a control character (NUL, escape...)", "remove it")
    return value


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[
    str,
    StringConstraints(pattern=DNS_LABEL, max_length=63),
    Fix("use a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending alphanumeric"),
]
DnsSubdomain = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", max_length=253),
    Fix("use a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'"),
]
Hostname = Annotated[
    str,
    StringConstraints(
        pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", max_length=253
    ),
    Fix("use a host name such as scoring.example.com (lowercase, no scheme, no port)"),
]
ModelName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"),
    Fix("use letters, digits, '.', '_' and '-' (at most 255), starting alphanumeric"),
]
EnvVarName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=255),
    Fix("use letters, digits and '_', not starting with a digit"),
]
PythonVersion = Annotated[
    str,
    StringConstraints(pattern=r"^3\.[0-9]{1,2}$"),
    Fix("use major.minor in quotes, e.g. python: '3.11'"),
]
# host[:port][/path]: no scheme, no whitespace, no shell syntax.
RegistryUrl = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$",
        max_length=255,
    ),
    Fix("use host[:port][/path] without a scheme, e.g. 127.0.0.1:5000 or myacr.azurecr.io"),
]
# [registry[:port]/]path[:tag][@sha256:...]
ImageReference = Annotated[
    str,
    StringConstraints(
        pattern=r"^([A-Za-z0-9.-]+(:[0-9]{1,5})?/)?[a-z0-9]+([._/-][a-z0-9]+)*"
        r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$",
        max_length=512,
    ),
    Fix("use an image reference like python:3.11-slim or registry/repo:tag"),
]
Text = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_no_control_characters)]
Name = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:@/-]*$", max_length=253),
    Fix("use letters, digits, spaces and . _ : @ / -"),
]
Port = Annotated[int, Field(ge=1024, le=65535), Fix("use a port between 1024 and 65535")]
# Kubernetes label keys ([prefix/]name) and values; the same rule holds for annotation keys.
LabelKey = Annotated[
    str,
    StringConstraints(
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",
        max_length=316,
    ),
    Fix("use [prefix/]name: alphanumerics, '-', '_' and '.', at most 63 characters in the name"),
]
LabelValue = Annotated[
    str,
    StringConstraints(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"),
    Fix("use at most 63 alphanumerics, '-', '_' and '.', starting and ending alphanumeric"),
]
HttpsUrl = Annotated[
    str,
    StringConstraints(pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$", max_length=2048),
    Fix("use an https:// URL without query or credentials, e.g. https://management.azure.com/"),
]
