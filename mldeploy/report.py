"""Human-readable artifacts: pure markdown renderers for the Prefect UI and the CLI."""

from __future__ import annotations

from mldeploy.models import ModelVersion
from mldeploy.spec import KubernetesTarget, LocalTarget, ServiceSpec


def _target_line(spec: ServiceSpec) -> str:
    target = spec.target
    if isinstance(target, LocalTarget):
        return f"local on 127.0.0.1:{target.port}"
    if isinstance(target, KubernetesTarget):
        return f"kubernetes namespace {target.namespace}" + (f" (context {target.context})" if target.context else "")
    return f"aci resource group {target.resource_group}"


def spec_summary_markdown(spec: ServiceSpec) -> str:
    rows = [
        ("service", spec.name),
        ("spec file", str(spec.path)),
        *[
            ("model", f"{m.name} from {m.path}" if m.path else f"{m.name} version {m.version} (registered)")
            for m in spec.all_models
        ],
        ("entry script", str(spec.entry_script)),
        ("environment", str(spec.environment.file)),
        (
            "base image",
            spec.environment.base_image
            or (f"python:{spec.environment.python}-slim" if spec.environment.python else "(machine default)"),
        ),
        ("registry", spec.registry.url if spec.registry else "(none: local image, push skipped)"),
        ("target", _target_line(spec)),
        ("smoke requests", str(len(spec.smoke))),
    ]
    lines = [f"# Service spec: {spec.name}", "", "| field | value |", "|---|---|"]
    lines += [f"| {key} | `{value}` |" for key, value in rows]
    return "\n".join(lines)


def model_card_markdown(model: ModelVersion, created_new: bool) -> str:
    files = "\n".join(f"- `{name}`" for name in model.files[:50])
    more = f"\n- … and {len(model.files) - 50} more" if len(model.files) > 50 else ""
    return "\n".join(
        [
            f"# Model {model.name} version {model.version}",
            "",
            "New version registered." if created_new else "Same bytes as an existing version: nothing new registered.",
            "",
            "| field | value |",
            "|---|---|",
            f"| sha256 | `{model.sha256}` |",
            f"| size | {model.size} bytes |",
            f"| kind | {'folder' if model.is_folder else 'file'} `{model.basename}` |",
            f"| created | {model.created} |",
            f"| source | `{model.source}` |",
            f"| source spec | `{model.source_spec}` |",
            "",
            "Files:",
            files + more,
        ]
    )
