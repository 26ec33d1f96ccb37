"""Stage 1 — validate: read the spec, check every field and file, report every problem at once."""

from __future__ import annotations

from prefect import task

from mldeploy.errors import SpecError, SpecProblem
from mldeploy.orchestration import artifact_key, attach_markdown, logger, reports_failure, stage_options
from mldeploy.report import spec_summary_markdown
from mldeploy.spec import ServiceSpec, load_spec, service_name_of
from mldeploy.targets import available_kinds
from tasks.resume import validate_key


def _service(spec_path: str, target: str | None = None) -> str:
    return service_name_of(spec_path)


@task(name="validate", task_run_name="validate {spec_path}", **stage_options(validate_key))
@reports_failure("validate", _service)
def validate_spec(spec_path: str, target: str | None = None) -> ServiceSpec:
    spec = load_spec(spec_path, target_override=target)
    if spec.target.kind not in available_kinds():
        raise SpecError(
            str(spec.path),
            [
                SpecProblem(
                    str(spec.path),
                    "target.kind",
                    f"target {spec.target.kind!r} is not available in this version",
                    f"use one of: {', '.join(available_kinds())}",
                )
            ],
        )
    logger().info(
        "spec %s is valid: service %s, model %s, target %s", spec.path, spec.name, spec.model.name, spec.target.kind
    )
    attach_markdown(artifact_key(spec.name, "spec"), spec_summary_markdown(spec), "The validated service spec")
    return spec
