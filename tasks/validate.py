"""Stage 1 — validate: read the spec, check every field and file, report every problem at once."""

from __future__ import annotations

from prefect import task

from mldeploy.errors import SpecError, SpecProblem
from mldeploy.orchestration import STAGE_TASK_OPTIONS, artifact_key, attach_markdown, logger, reports_failure
from mldeploy.report import spec_summary_markdown
from mldeploy.settings import Settings
from mldeploy.spec import ServiceSpec, load_spec, service_name_of
from mldeploy.targets import AVAILABLE


def _service(spec_path: str, *args: object, **kwargs: object) -> str:
    return service_name_of(spec_path)


@task(name="validate", task_run_name="validate {spec_path}", **STAGE_TASK_OPTIONS)
@reports_failure("validate", _service)
def validate_spec(
    spec_path: str, target: str | None = None, allowed_roots: tuple[str, ...] = (), allow_direct_urls: bool = False
) -> ServiceSpec:
    limits = Settings.load().limits(allowed_roots, allow_direct_urls)
    spec = load_spec(spec_path, target_override=target, limits=limits)
    if spec.target.kind not in AVAILABLE:
        problem = SpecProblem(
            str(spec.path),
            "target.kind",
            f"target {spec.target.kind!r} is not available in this version (its section is valid)",
            f"use one of: {', '.join(AVAILABLE)}",
        )
        raise SpecError(str(spec.path), [problem])
    for notice in spec.notices:
        logger().warning(notice)
    logger().info(
        "spec %s is valid: service %s, model(s) %s, target %s",
        spec.path,
        spec.name,
        ", ".join(m.name for m in spec.all_models),
        spec.target.kind,
    )
    attach_markdown(artifact_key(spec.name, "spec"), spec_summary_markdown(spec), "The validated service spec")
    return spec
