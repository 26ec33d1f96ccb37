"""Secret values: read from the deploying machine's environment, never from the spec.

The spec names *which* host variable holds each value (``secrets:``, ``registry.password_env``);
the values are read once per run, here, and handed on apart from plain configuration so that
each target can keep them secret in its own way (a Kubernetes Secret, ACI secure variables).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mldeploy.errors import SpecError, SpecProblem
from mldeploy.redaction import MIN_SECRET_LENGTH
from mldeploy.spec.document import ServiceSpec


@dataclass(frozen=True)
class ResolvedSecrets:
    """Secret values read from the deploying machine's environment (never from the spec)."""

    container: Mapping[str, str] = field(default_factory=dict)  # container variable -> value
    registry_password: str | None = None

    def values(self) -> list[str]:
        return [*self.container.values(), *([self.registry_password] if self.registry_password else [])]

    def digest(self, key: bytes) -> str:
        """A keyed digest of the container's secret values (never the values): rotating one changes it.

        Keyed (HMAC), so a digest seen in a label or a fingerprint cannot be used to guess a short
        value offline. The registry password is left out: it does not reach the container.
        """
        if not self.container:
            return ""
        mac = hmac.new(key, digestmod=hashlib.sha256)
        for name in sorted(self.container):
            mac.update(name.encode() + b"\0" + self.container[name].encode() + b"\0")
        return mac.hexdigest()

    def __repr__(self) -> str:  # never the values, whatever prints this object
        password = "***" if self.registry_password else None
        return f"ResolvedSecrets(container={sorted(self.container)}, registry_password={password})"


def _no_blocks(name: str) -> str:
    raise LookupError(f"no Prefect server to read the Secret block {name!r} from")


def resolve_secrets(
    spec: ServiceSpec, environ: Mapping[str, str], read_block: Callable[[str], str] | None = None
) -> ResolvedSecrets:
    """Resolve ``secrets`` and the registry password from the environment (or, for ``password_block``, a
    Prefect Secret block through ``read_block``, which raises LookupError for a missing one); every missing one
    is a problem."""
    problems: list[SpecProblem] = []

    def problem(where: str, message: str, fix: str) -> str:
        problems.append(SpecProblem(str(spec.path), where, message, fix))
        return ""

    def long_enough(where: str, source: str, value: str) -> str:
        if len(value) >= MIN_SECRET_LENGTH:
            return value
        return problem(
            where,
            f"the value of {source} is {len(value)} characters: too short to keep out of logs safely",
            f"use a value of at least {MIN_SECRET_LENGTH} characters (a random token)",
        )

    def read(where: str, source: str) -> str:
        value = environ.get(source, "")
        if not value:
            return problem(
                where,
                f"environment variable {source} is not set",
                f"export {source}=<value> on the machine that deploys",
            )
        return long_enough(where, source, value)

    def read_secret_block(where: str, name: str) -> str:
        try:
            value = (read_block or _no_blocks)(name)
        except LookupError as exc:
            return problem(
                where,
                str(exc),
                f"create it where the flow runs (prefect block create secret, or Secret(value=...).save({name!r})), "
                "or use password_env",
            )
        return long_enough(where, f"the Secret block {name!r}", value)

    container = {name: read(f"secrets.{name}", source) for name, source in spec.secrets.items()}
    password = None
    registry = spec.registry
    if registry is not None and registry.password_env:
        password = read("registry.password_env", registry.password_env)
    elif registry is not None and registry.password_block:
        password = read_secret_block("registry.password_block", registry.password_block)
    if problems:
        raise SpecError(str(spec.path), problems)
    return ResolvedSecrets(container, password or None)
