"""Stage 2 — register: put the model into the versioned registry (same bytes, same version)."""

from __future__ import annotations

from prefect import task

from mldeploy.models import ModelRegistry, Registration, Registrations
from mldeploy.orchestration import STAGE_TASK_OPTIONS, artifact_key, attach_markdown, logger, reports_failure
from mldeploy.report import model_card_markdown
from mldeploy.settings import Settings
from mldeploy.spec import ModelSection, ServiceSpec


def _register(registry: ModelRegistry, spec: ServiceSpec, section: ModelSection, force: bool) -> Registration:
    if section.path is None:  # a version registered before: deploy it as it is
        return Registration(registry.get(section.name, section.version), created_new=False, reused=True)
    result = registry.register(
        section.name,
        section.path,
        source_spec=str(spec.path),
        description=section.description,
        force=force,
        roots=spec.roots,
        max_bytes=spec.limits.max_bytes,
        version=section.version,
    )
    return result


@task(name="register", task_run_name="register {spec.name}", **STAGE_TASK_OPTIONS)
@reports_failure("register", lambda spec, *a, **k: spec.name)
def register_model(spec: ServiceSpec, registry: ModelRegistry | None = None, force: bool = False) -> Registrations:
    registry = registry or ModelRegistry(Settings.load().home)
    results = Registrations(tuple(_register(registry, spec, section, force) for section in spec.all_models))
    for result in results.items:
        model = result.model
        logger().info(
            "%s model %s version %d (sha256 %s, %d bytes)",
            "registered" if result.created_new else "unchanged:",
            model.name,
            model.version,
            model.sha256[:12],
            model.size,
        )
        attach_markdown(
            artifact_key(spec.name, "model-card", model.name),
            model_card_markdown(model, result.created_new),
            f"Model {model.label}",
        )
    return results
