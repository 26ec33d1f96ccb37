"""Read a spec file: bounded YAML in, a validated :class:`ServiceSpec` out, or every problem at once.

The YAML reader refuses what a hostile spec could use against the deploying machine: aliases
(a few hundred bytes of nested aliases expand to gigabytes), duplicate keys (the second silently
wins in PyYAML), deep nesting and oversized files. Then the declared models validate the
document, and a few checks that span sections run on the raw mapping, so their problems are
reported together with the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mldeploy.errors import SpecError, SpecProblem
from mldeploy.spec.document import ServiceSpec
from mldeploy.spec.files import SpecContext, UserLimits
from mldeploy.spec.problems import problems_of
from mldeploy.spec.targets import TARGET_KINDS, keys_of
from mldeploy.spec.types import DNS_LABEL

MAX_SPEC_BYTES = 1024 * 1024
NO_EXTRA_LIMITS = UserLimits()  # the spec's own folder only, the default size limit, the package index only
MAX_DEPTH = 32


class YamlLimit(yaml.YAMLError):
    """A document that is valid YAML but breaks one of our limits."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (the pure-Python one: the C loader would not call these hooks) without
    aliases and duplicate keys, with a nesting limit."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise YamlLimit("aliases (*name) are not allowed in a service spec; write the value out", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimit(
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise YamlLimit("a mapping key must be a plain value", key_node.start_mark)
            if key in seen:
                raise YamlLimit(f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str) -> Any:
    """One YAML document within our limits (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=BoundedLoader)


def _read_document(spec_path: Path) -> Any:
    def fail(field: str, message: str, fix: str) -> SpecError:
        return SpecError(str(spec_path), [SpecProblem(str(spec_path), field, message, fix)])

    if not spec_path.is_file():
        raise fail("(file)", "the spec file does not exist", "pass the path of a service.yaml")
    size = spec_path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise fail("(file)", f"{size} bytes is too large for a spec", f"keep it under {MAX_SPEC_BYTES} bytes")
    try:
        raw = read_yaml(spec_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        raise fail(where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}", "fix the YAML") from None
    except UnicodeDecodeError:
        raise fail("(file)", "not UTF-8 text", "save the spec as UTF-8") from None
    if not isinstance(raw, dict):
        raise fail("(document)", "the spec must be a mapping of keys", "start with 'name: my-service'")
    return raw


def _override_target(raw: dict[str, Any], kind: str, notices: list[str]) -> None:
    """``--target KIND``: the spec's target section for another kind keeps only the keys KIND knows."""
    section = raw.get("target")
    if section is None:
        section = {}
    if not isinstance(section, dict):
        return  # reported as a problem by validation
    if kind not in TARGET_KINDS or section.get("kind", "local") == kind:
        raw["target"] = {**section, "kind": kind}
        return
    dropped = sorted(str(key) for key in section if key != "kind" and key not in keys_of(kind))
    if dropped:
        notices.append(
            f"--target {kind}: target keys of kind {section.get('kind', 'local')!r} do not apply and are ignored: "
            + ", ".join(dropped)
        )
    raw["target"] = {key: value for key, value in section.items() if key != "kind" and key in keys_of(kind)}
    raw["target"]["kind"] = kind


def _cross_section_problems(raw: Mapping[str, Any], spec_file: str) -> list[SpecProblem]:
    """Checks that span sections (models validate each section on its own)."""
    found: list[SpecProblem] = []
    if raw.get("model") is None and not raw.get("models"):
        found.append(
            SpecProblem(
                spec_file,
                "model",
                "missing: the spec names no model",
                "add 'model: {name: ..., path: ...}' (or models:)",
            )
        )
    elif raw.get("model") is not None and raw.get("models"):
        found.append(
            SpecProblem(spec_file, "models", "set together with model", "keep model (one) or models (several)")
        )
    target = raw.get("target") if isinstance(raw.get("target"), dict) else {}
    kind = target.get("kind", "local") if isinstance(target, dict) else "local"
    if kind in TARGET_KINDS and kind != "local" and not raw.get("registry"):
        found.append(
            SpecProblem(
                spec_file,
                "registry.url",
                f"target {kind!r} pulls the image from a registry, but none is set",
                "add 'registry: {url: <your registry>}'",
            )
        )
    secrets = raw.get("secrets") if isinstance(raw.get("secrets"), dict) else {}
    plain: set[Any] = set()
    for section in (raw.get("environment"), target):
        if isinstance(section, dict) and isinstance(section.get("variables"), dict):
            plain |= set(section["variables"])
    for clash in sorted(str(name) for name in set(secrets or {}) & plain):
        found.append(
            SpecProblem(
                spec_file,
                f"secrets.{clash}",
                "is also set as a plain variable",
                "keep it in one place (secrets for secret values)",
            )
        )
    return found


def load_spec(
    path: str | Path,
    *,
    target_override: str | None = None,
    limits: UserLimits = NO_EXTRA_LIMITS,
) -> ServiceSpec:
    """Read and validate a service spec; raise :class:`SpecError` listing every problem.

    ``limits`` come from the user who runs mldeploy (command line or configuration), never from
    the spec: folders outside the spec's own that its paths may name, the largest model or source
    folder, and whether requirements may name a URL or a local path.
    """
    spec_path = Path(path).resolve()
    raw = _read_document(spec_path)
    context = SpecContext(spec_path, limits)
    if target_override is not None:
        _override_target(raw, target_override, context.notices)
    problems = _cross_section_problems(raw, str(spec_path))
    try:
        spec = ServiceSpec.model_validate(raw, context=context)
    except ValidationError as exc:
        problems = problems_of(exc, str(spec_path), ServiceSpec) + problems
    if problems:
        raise SpecError(str(spec_path), problems)
    return spec


def service_name_of(spec_path: str | Path) -> str:
    """The service name a spec declares, for labels before validation (its folder's name otherwise)."""
    import re

    path = Path(spec_path)
    try:
        raw = read_yaml(path.read_text(encoding="utf-8")) if path.stat().st_size <= MAX_SPEC_BYTES else None
        name = raw.get("name") if isinstance(raw, dict) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        name = None
    if isinstance(name, str) and re.fullmatch(DNS_LABEL.strip("^$"), name) and len(name) <= 63:
        return name
    return path.resolve().parent.name
