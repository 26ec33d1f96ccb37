"""A pure catalog that turns the evidence of a failure into a stable diagnosis.

Each function takes plain evidence (log text, exit code, OOM flag, HTTP status and body) and
returns a frozen :class:`Diagnosis` with a stable ``code``, a one-line summary, the evidence
excerpt (``detail``) and the fix (``hint``). No SDK imports: every case is testable from text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

TAIL_LINES = 30


class Code(StrEnum):
    SPEC_INVALID = "spec_invalid"
    DEPENDENCY_RESOLUTION_FAILED = "dependency_resolution_failed"
    DOCKERFILE_STEP_FAILED = "dockerfile_step_failed"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    REGISTRY_AUTH_DENIED = "registry_auth_denied"
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    DIGEST_MISMATCH = "digest_mismatch"
    TAG_IMMUTABLE = "tag_immutable"
    INIT_FAILED = "init_failed"
    MODEL_PATH_NOT_FOUND = "model_path_not_found"
    MODEL_VERSION_TAKEN = "model_version_taken"
    PATH_IS_A_FOLDER = "path_is_a_folder"
    APP_FILE_NOT_FOUND = "app_file_not_found"
    RUN_FAILED = "run_failed"
    SCORING_TIMEOUT = "scoring_timeout"
    OUT_OF_MEMORY = "out_of_memory"
    PORT_IN_USE = "port_in_use"
    HEALTH_TIMEOUT = "health_timeout"
    BURST_503 = "burst_503"
    SMOKE_MISMATCH = "smoke_mismatch"
    DEPLOY_SLOT_BUSY = "deploy_slot_busy"
    ENDPOINT_UNAVAILABLE = "endpoint_unavailable"
    PREFECT_UNAVAILABLE = "prefect_unavailable"
    IMAGE_NOT_FOUND = "image_not_found"
    UNSCHEDULABLE = "unschedulable"
    CONTAINER_CONFIG_ERROR = "container_config_error"
    CLUSTER_UNAVAILABLE = "cluster_unavailable"
    CLUSTER_ACCESS_DENIED = "cluster_access_denied"
    ROLLOUT_TIMEOUT = "rollout_timeout"
    AZURE_ACCESS_DENIED = "azure_access_denied"
    AZURE_UNAVAILABLE = "azure_unavailable"
    QUOTA_REACHED = "quota_reached"
    CAPACITY_UNAVAILABLE = "capacity_unavailable"
    REQUEST_INVALID = "request_invalid"
    PROVISIONING_FAILED = "provisioning_failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Diagnosis:
    code: Code
    summary: str
    detail: str
    hint: str
    stage: str = ""

    def to_dict(self) -> dict[str, str]:
        data = asdict(self)
        data["code"] = str(self.code)
        return data

    def to_markdown(self) -> str:
        return "\n".join(
            [
                f"## {self.stage + ': ' if self.stage else ''}{self.summary}",
                "",
                f"**Diagnosis code:** `{self.code}`",
                "",
                f"**What to do:** {self.hint}",
                "",
                "**Evidence:**",
                "",
                "```",
                self.detail.rstrip() or "(none)",
                "```",
            ]
        )


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def spec_invalid(spec_path: str, problems: Sequence[str]) -> Diagnosis:
    return Diagnosis(
        Code.SPEC_INVALID,
        f"the service spec has {len(problems)} problem(s)",
        "\n".join(problems),
        f"fix each field named above in {spec_path} (or the file it names); "
        "'mldeploy validate SPEC' checks without deploying",
        "validate",
    )


def model_version_taken(name: str, version: int, registered_from: str, source: str) -> Diagnosis:
    """The spec asks for a model version number that the registry holds with other bytes."""
    return Diagnosis(
        Code.MODEL_VERSION_TAKEN,
        f"version {version} of model {name} holds other bytes than {source}",
        f"{name}:{version} was registered from {registered_from}; versions never change their bytes",
        f"give these bytes another version in the spec (or none: the next free one), or another model name; "
        f"'mldeploy models list' shows what {name} holds",
        "register",
    )


# --- build -----------------------------------------------------------------------------

_PIP_NO_DIST = re.compile(r"No matching distribution found for (?P<req>\S+)")
_PIP_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement (?P<req>\S+)")
_PIP_CONFLICT = re.compile(r"ResolutionImpossible|conflicting dependencies", re.IGNORECASE)
_STEP = re.compile(r"^Step (?P<n>\d+)/(?P<total>\d+) : (?P<instr>.*)$")


def dependency_failure(pip_output: str, file: str = "") -> Diagnosis:
    """pip could not resolve or download a requirement (on the host, while making the wheelhouse)."""
    match = _PIP_NO_DIST.search(pip_output) or _PIP_NO_VERSION.search(pip_output)
    package = match.group("req") if match else None
    if package:
        summary = f"dependency {package} cannot be resolved for the image's Python and platform"
        hint = (
            f"check the name and version of {package} in {file or 'the environment file'}; it needs a wheel "
            "for the base image's Python (manylinux x86_64). Relax the pin or pick a version that has one."
        )
    elif _PIP_CONFLICT.search(pip_output):
        summary = "the environment's requirements conflict with each other"
        hint = f"relax the conflicting pins in {file or 'the environment file'} (see the pip output)"
    else:
        summary = "the environment's dependencies could not be resolved"
        hint = f"read the pip output below and fix {file or 'the environment file'}"
    return Diagnosis(Code.DEPENDENCY_RESOLUTION_FAILED, summary, tail(pip_output), hint, "build")


def unresolvable_requirements(
    failing: Sequence[tuple[str, bool, bool]],
    python: str,
    python_pin: str | None,
    file: str = "",
    *,
    runtime_can_use: bool = True,
) -> Diagnosis:
    """Every requirement without a wheel for the image's Python: (requirement, the pinned Python has one,
    only a source archive that did not build into a pure-Python wheel)."""
    where = file or "the environment file"
    lines, fixes = [], []
    for requirement, pinned_has_one, sdist_only in failing:
        if pinned_has_one and python_pin:
            lines.append(f"{requirement}: no wheel for Python {python}, but there is one for Python {python_pin}")
        elif sdist_only:
            lines.append(
                f"{requirement}: no wheel for Python {python}, and its source archive does not build into a "
                "pure-Python wheel (it needs a compiler)"
            )
        else:
            lines.append(f"{requirement}: no version has a wheel for Python {python} (manylinux x86_64)")
    if any(pinned for _, pinned, _ in failing) and python_pin:
        minor = ".".join(python_pin.split(".")[:2])
        if runtime_can_use:
            fixes.append(
                f"set environment.python: '{minor}' (the Python {where} pins) so the image uses it, or pick "
                f"versions of these packages that support Python {python}"
            )
        else:
            fixes.append(
                f"Python {minor}, which {where} pins, is older than the scoring runtime supports: pick versions "
                f"of these packages that publish wheels for Python {python} (and re-save the model with them)"
            )
    fixes.append(f"relax or update the pins in {where}: each needs a wheel for the image's Python")
    names = ", ".join(requirement for requirement, _, _ in failing)
    return Diagnosis(
        Code.DEPENDENCY_RESOLUTION_FAILED,
        f"{len(failing)} requirement(s) cannot be installed on Python {python}: {names}",
        "\n".join(lines),
        "; ".join(fixes),
        "build",
    )


def build_failure(build_log: str, error_message: str) -> Diagnosis:
    """A Dockerfile step failed: name the step and show its last lines."""
    step_line, step_start = None, 0
    lines = build_log.splitlines()
    for index, line in enumerate(lines):
        if _STEP.match(line.strip()):
            step_line, step_start = line.strip(), index
    step_output = "\n".join(lines[step_start:]) if step_line else build_log
    if _PIP_NO_DIST.search(step_output) or _PIP_NO_VERSION.search(step_output):
        diagnosis = dependency_failure(step_output)
        return Diagnosis(
            diagnosis.code, diagnosis.summary, tail(step_output) + f"\n{error_message}", diagnosis.hint, "build"
        )
    summary = f"Dockerfile step failed: {step_line}" if step_line else "the image build failed"
    hint = (
        "fix the failing step; if it is one of environment.extra_dockerfile_steps, edit that file — "
        "the step runs without network access, so install packages from the wheelhouse (list them in the "
        "environment file) rather than downloading in RUN"
    )
    return Diagnosis(Code.DOCKERFILE_STEP_FAILED, summary, tail(step_output) + f"\n{error_message}", hint, "build")


def engine_unavailable(message: str) -> Diagnosis:
    return Diagnosis(
        Code.ENGINE_UNAVAILABLE,
        "the Docker engine is not reachable",
        message,
        "start the engine ('make setup' starts one; or 'dockerd &'), check DOCKER_HOST and that this user may "
        "use /var/run/docker.sock; rerun — finished stages are not repeated",
    )


# --- registry --------------------------------------------------------------------------


def registry_auth_denied(registry: str, message: str) -> Diagnosis:
    return Diagnosis(
        Code.REGISTRY_AUTH_DENIED,
        f"registry {registry} refused the credentials",
        message,
        "check registry.username and the password in the variable named by registry.password_env; "
        "for ACR, check the identity has AcrPush",
        "push",
    )


def tag_immutable(reference: str, served: str) -> Diagnosis:
    return Diagnosis(
        Code.TAG_IMMUTABLE,
        f"{reference} already points at another image, and registry.immutable_tags forbids moving it",
        f"the registry serves {reference} as {served}; this build has another digest (the same inputs built "
        "elsewhere, or rebuilt without cache)",
        "deploy the image the registry holds (build on the machine that pushed it, or pull it first), or delete "
        "that tag in the registry, or set registry.immutable_tags: false",
        "push",
    )


def registry_unavailable(registry: str, message: str) -> Diagnosis:
    return Diagnosis(
        Code.REGISTRY_UNAVAILABLE,
        f"registry {registry} is not reachable",
        message,
        f"start the registry (make setup starts one on 127.0.0.1:5000) or check registry.url "
        f"({registry}); rerun — finished stages are not repeated",
        "push",
    )


# --- container start -------------------------------------------------------------------

_CANNOT_FIND = re.compile(r"mldeploy-runtime: init\(\) could not find (?P<path>.+)$", re.MULTILINE)
_NO_SUCH_FILE = re.compile(r"No such file or directory: '(?P<path>[^']+)'")
_LISTING = re.compile(r"mldeploy-runtime: AZUREML_MODEL_DIR=(?P<dir>\S+) contains:\n(?P<body>(?:  .*\n?)*)")
_IS_FOLDER = re.compile(r"mldeploy-runtime: (?P<path>.+) is a folder; a file was expected\n(?P<body>(?:  .*\n?)*)")
_OUTSIDE = re.compile(
    r"mldeploy-runtime: (?P<path>.+) is outside the model folder; AML_APP_ROOT=(?P<dir>\S+) contains:\n"
    r"(?P<body>(?:  .*\n?)*)"
)
_ELSEWHERE = re.compile(r"mldeploy-runtime: a file named (?P<name>.+) is at (?P<path>.+)$", re.MULTILINE)
_INSTALLED = re.compile(
    r"mldeploy-runtime: module (?P<name>\S+) is missing although the installed distribution (?P<dist>\S+ \S+) "
)
_IMPORT_FAILED = re.compile(r"mldeploy-runtime: entry script \S+ failed to import")
_NO_MODULE = re.compile(r"ModuleNotFoundError: No module named '(?P<name>[^']+)'")
# Imports that old v1 scripts still carry, from modules their libraries removed long ago.
REMOVED_IMPORTS = {
    r"cannot import name 'joblib' from 'sklearn\.externals'|No module named 'sklearn\.externals\.joblib'": (
        "sklearn.externals.joblib was removed in scikit-learn 0.23",
        "write 'import joblib' (and list joblib in the environment file); pinning an old scikit-learn is no way "
        "out: the versions that had it publish no wheel for current Pythons",
    ),
    r"cannot import name 'six' from 'sklearn\.externals'|No module named 'sklearn\.externals\.six'": (
        "sklearn.externals.six was removed in scikit-learn 0.23",
        "write 'import six' (and list six in the environment file)",
    ),
    r"No module named 'azureml\.core\.webservice'|cannot import name '\w+' from 'azureml\.core\.webservice'": (
        "azureml.core.webservice is the SDK's deployment API, not available inside a service",
        "the service itself never needs it: remove the import from the scoring script",
    ),
}
_TRACEBACK = re.compile(r"Traceback \(most recent call last\):\n(?:[ \t].*\n|\n)*\S.*")


def last_traceback(log: str) -> str:
    found = _TRACEBACK.findall(log)
    return found[-1] if found else tail(log, 15)


def container_exit(exit_code: int | None, oom_killed: bool, log: str, *, memory_limit: str = "") -> Diagnosis:
    """The container exited or restarted before it became healthy."""
    if oom_killed:
        return Diagnosis(
            Code.OUT_OF_MEMORY,
            "the container ran out of memory (OOMKilled, exit 137)",
            tail(log),
            f"raise the memory limit{f' (now {memory_limit})' if memory_limit else ''} or load a "
            "smaller model; check init() does not copy the model needlessly",
            "deploy",
        )
    if exit_code == 137:  # SIGKILL, but not by the memory limit: someone or something killed it
        return Diagnosis(
            Code.INIT_FAILED,
            "the container was killed (SIGKILL, exit 137) while starting — not by its memory limit",
            tail(log),
            "something outside the service stopped it (docker kill, a restart of the engine, the host running "
            "out of memory); read the log above and the engine's events ('docker events'), then rerun",
            "deploy",
        )
    elsewhere = _ELSEWHERE.search(log)
    found_at = f"; a file named {elsewhere.group('name')} is at {elsewhere.group('path')}" if elsewhere else ""
    if opened_folder := _IS_FOLDER.search(log):
        return Diagnosis(
            Code.PATH_IS_A_FOLDER,
            f"init() opened {opened_folder.group('path')} as a file, but it is a folder",
            f"{last_traceback(log)}\n\n{opened_folder.group('path')} contains:\n{opened_folder.group('body').rstrip()}",
            "join the file's name to the folder path (the model was registered as a folder: "
            "os.path.join(os.getenv('AZUREML_MODEL_DIR'), '<folder>', '<file>')); the listing shows what it holds",
            "deploy",
        )
    if outside := _OUTSIDE.search(log):
        return Diagnosis(
            Code.APP_FILE_NOT_FOUND,
            f"init() could not find {outside.group('path')}, a file outside the model folder{found_at}",
            f"{last_traceback(log)}\n\n{outside.group('dir')} (the app folder) contains:\n"
            f"{outside.group('body').rstrip()}",
            "ship the file with the scoring script (inside the script's folder or environment.source_directory) "
            "and open it relative to the script: os.path.join(os.path.dirname(__file__), '<file>'); "
            "a model file belongs under model.path and AZUREML_MODEL_DIR",
            "deploy",
        )
    missing = _CANNOT_FIND.search(log) or _NO_SUCH_FILE.search(log)
    listing = _LISTING.search(log)
    if missing:
        path = missing.group("path").strip()
        folder = listing.group("dir") if listing else "$AZUREML_MODEL_DIR"
        contents = listing.group("body").rstrip() if listing else "  (no listing in the log)"
        return Diagnosis(
            Code.MODEL_PATH_NOT_FOUND,
            f"init() could not find the model at {path}{found_at}",
            f"{last_traceback(log)}\n\n{folder} contains:\n{contents}",
            "build the path from AZUREML_MODEL_DIR and the registered file or folder name, e.g. "
            "os.path.join(os.getenv('AZUREML_MODEL_DIR'), '<model file>'); the listing shows what is there",
            "deploy",
        )
    if _IMPORT_FAILED.search(log):  # the script's top level raised, before init() was called
        module = _NO_MODULE.search(log)
        for pattern, (what, fix) in REMOVED_IMPORTS.items():
            if re.search(pattern, log):
                return Diagnosis(
                    Code.INIT_FAILED, f"the entry script failed to import: {what}", last_traceback(log), fix, "deploy"
                )
        if installed := _INSTALLED.search(log):
            return Diagnosis(
                Code.INIT_FAILED,
                f"the entry script failed to import: {installed.group('name')!r} is missing although "
                f"{installed.group('dist')} is installed",
                last_traceback(log),
                f"the package is installed; something hides it: a file or folder in the app named like "
                f"{installed.group('name').split('.')[0]!r} (rename it), or an older copy of the package vendored "
                "into the source folder",
                "deploy",
            )
        return Diagnosis(
            Code.INIT_FAILED,
            f"the entry script failed to import (code {exit_code})"
            + (f": no module named {module.group('name')!r}" if module else ""),
            last_traceback(log),
            f"add the package that provides {module.group('name')!r} to the environment file (the pip: section "
            "of the conda file, or the requirements file)"
            if module
            else "fix the error at the top level of the scoring script (the traceback is in the evidence); "
            "it runs on import, before init()",
            "deploy",
        )
    if "mldeploy-runtime: init() failed" in log or "Traceback" in log:
        return Diagnosis(
            Code.INIT_FAILED,
            f"init() raised and the container exited (code {exit_code})",
            last_traceback(log),
            "fix the exception in init() of the scoring script (the traceback is in the evidence); "
            "run 'mldeploy logs <service>' for the whole log",
            "deploy",
        )
    return Diagnosis(
        Code.INIT_FAILED,
        f"the container exited during start (code {exit_code})",
        tail(log),
        "read the container log above; the scoring runtime did not start",
        "deploy",
    )


def not_shipped(found: Diagnosis, left_behind: Sequence[str]) -> Diagnosis:
    """A missing app file that sits beside the entry script on the deploying machine: it was not shipped."""
    if found.code is not Code.APP_FILE_NOT_FOUND:
        return found
    path = found.summary.split("could not find ", 1)[-1].split(",", 1)[0]
    name = path.rstrip("/").split("/")[-1]
    if name not in left_behind:
        return found
    return replace(
        found,
        hint=f"{name} is beside the entry script on this machine, but without source_directory only the script "
        "is shipped: set source_directory to the script's folder (source_directory: .) so the files beside it "
        "go into the image, and open them relative to the script (os.path.dirname(__file__))",
    )


def deploy_slot_busy(service: str, message: str) -> Diagnosis:
    return Diagnosis(
        Code.DEPLOY_SLOT_BUSY,
        f"another run of {service} held its deploy slot for longer than this run would wait",
        message,
        "look for a stuck run of this service in the Prefect UI; a crashed holder frees the slot within its "
        "lease (60 s); raise MLDEPLOY_LOCK_WAIT_SECONDS to wait longer",
        "deploy",
    )


def port_in_use(port: int, message: str) -> Diagnosis:
    return Diagnosis(
        Code.PORT_IN_USE,
        f"port {port} on 127.0.0.1 is already in use",
        message,
        f"stop what listens on {port} or set target.port to a free port",
        "deploy",
    )


def health_timeout(seconds: float, log: str) -> Diagnosis:
    return Diagnosis(
        Code.HEALTH_TIMEOUT,
        f"the service did not become healthy within {seconds:g} s",
        tail(log),
        "init() may be slow (large model): raise deploy.health_timeout_seconds; otherwise read the log above",
        "deploy",
    )


# --- Kubernetes: the evidence a pod's status gives (mldeploy.rollout) ---------------------

_PULL_MISSING = re.compile(r"not found|manifest unknown|NotFound|no such manifest|InvalidImageName", re.IGNORECASE)
_PULL_DENIED = re.compile(r"unauthorized|authentication required|denied|forbidden|\b40[13]\b", re.IGNORECASE)
_PULL_UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|dial tcp|server misbehaving|tls: |x509: |timeout", re.IGNORECASE
)


def image_pull_failed(image: str, message: str, pod: str) -> Diagnosis:
    """ErrImagePull / ImagePullBackOff, told apart by the runtime's own message."""
    evidence = f"pod {pod}: {message}"
    if _PULL_DENIED.search(message):
        return Diagnosis(
            Code.REGISTRY_AUTH_DENIED,
            f"the cluster's node may not pull {image}: the registry refused its credentials",
            evidence,
            "give the cluster pull access: registry.username and registry.password_env (mldeploy makes an "
            "image pull secret from them), target.image_pull_secret naming an existing one, or for AKS attach "
            "the registry (az aks update --attach-acr)",
            "deploy",
        )
    if _PULL_MISSING.search(message):
        return Diagnosis(
            Code.IMAGE_NOT_FOUND,
            f"the image {image} does not exist in its registry",
            evidence,
            "the registry does not serve this name or digest: check registry.url is the registry the cluster "
            "pulls from, and rerun from the push stage (mldeploy deploy SPEC --from-stage push)",
            "deploy",
        )
    if _PULL_UNREACHABLE.search(message):
        return Diagnosis(
            Code.REGISTRY_UNAVAILABLE,
            f"the cluster's node cannot reach the registry of {image}",
            evidence,
            "the registry must be reachable from the nodes (not only from this machine): check registry.url, "
            "the nodes' network and DNS, and the registry's certificate",
            "deploy",
        )
    return Diagnosis(
        Code.IMAGE_NOT_FOUND, f"the cluster cannot pull {image}", evidence, "read the message above", "deploy"
    )


_INSUFFICIENT = re.compile(r"Insufficient (?P<what>[\w./-]+)")


def unschedulable(message: str, pod: str, cpu: str, memory: str) -> Diagnosis:
    """The scheduler's own words for a pod no node can take."""
    short = sorted(set(_INSUFFICIENT.findall(message)))
    if short:
        fix = (
            f"no node has the {' and '.join(short)} one replica requests (cpu {cpu}, memory {memory}): lower "
            "target.cpu_cores / target.memory_gb, or add nodes (or let the cluster autoscaler add them)"
        )
    elif "taint" in message:
        fix = "every node carries a taint the pod does not tolerate: use a node pool without it, or untaint one"
    else:
        fix = "read the scheduler's message above: node selectors, affinity, volumes or quotas keep the pod out"
    return Diagnosis(
        Code.UNSCHEDULABLE,
        f"no node can run the service's pod: {short[0] if short else 'Unschedulable'}",
        f"pod {pod}: {message}",
        fix,
        "deploy",
    )


def container_config_error(message: str, pod: str) -> Diagnosis:
    secret = re.search(r'secret "(?P<name>[^"]+)" not found', message)
    key = re.search(r"couldn't find key (?P<key>\S+) in Secret (?P<secret>\S+)", message)
    if secret:
        fix = f"the Secret {secret.group('name')} does not exist in the namespace: create it, or fix the name"
    elif key:
        fix = f"the Secret {key.group('secret')} has no key {key.group('key')}: add it, or fix the reference"
    else:
        fix = "the container's configuration refers to something missing (a Secret, a ConfigMap, a key)"
    return Diagnosis(
        Code.CONTAINER_CONFIG_ERROR,
        "the container cannot be created from its configuration",
        f"pod {pod}: {message}",
        fix,
        "deploy",
    )


def rollout_timeout(name: str, seconds: float, waiting_for: str, log: str) -> Diagnosis:
    return Diagnosis(
        Code.ROLLOUT_TIMEOUT,
        f"the rollout of {name} did not finish within {seconds:g} s ({waiting_for})",
        tail(log) or waiting_for,
        "init() may be slow (large model): raise deploy.health_timeout_seconds; a pod that never gets ready "
        "answers 503 on /readyz: its log above says why",
        "deploy",
    )


def cluster_unavailable(where: str, message: str) -> Diagnosis:
    return Diagnosis(
        Code.CLUSTER_UNAVAILABLE,
        f"the Kubernetes API server at {where} does not answer",
        message,
        "check KUBECONFIG (or --kubeconfig) and target.context name a running cluster; for the test cluster "
        "run 'make cluster-up'; rerun — finished stages are not repeated",
        "deploy",
    )


def cluster_access_denied(where: str, message: str) -> Diagnosis:
    return Diagnosis(
        Code.CLUSTER_ACCESS_DENIED,
        f"the Kubernetes API server at {where} refused the request",
        message,
        "the kubeconfig's user needs to create and patch Deployments, Services, Secrets, autoscalers and "
        "disruption budgets in the namespace, read pods and their logs, and port-forward (pods/portforward)",
        "deploy",
    )


# --- Azure ---------------------------------------------------------------------------------


def azure_access_denied(where: str, message: str) -> Diagnosis:
    return Diagnosis(
        Code.AZURE_ACCESS_DENIED,
        f"Azure refused the credentials or the permission ({where})",
        message,
        "the identity (DefaultAzureCredential: AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, a managed "
        "identity, or az login) needs Contributor on the resource group "
        "(Microsoft.ContainerInstance/containerGroups/*) and AcrPush on the registry; a permanent error: not retried",
        "deploy",
    )


def azure_unavailable(where: str, message: str) -> Diagnosis:
    return Diagnosis(
        Code.AZURE_UNAVAILABLE,
        f"Azure Resource Manager at {where} is busy or does not answer",
        message,
        "another operation on the same container group, throttling (HTTP 429) or an outage; the stage retries "
        "(at least as long as Retry-After asks); rerun later — finished stages are not repeated",
        "deploy",
    )


def aci_quota(message: str) -> Diagnosis:
    return Diagnosis(
        Code.QUOTA_REACHED,
        "the subscription's Azure Container Instances quota is reached",
        message,
        "delete unused container groups in the region, or ask for a quota increase (Azure portal: Usage + quotas)",
        "deploy",
    )


def aci_capacity(message: str) -> Diagnosis:
    return Diagnosis(
        Code.CAPACITY_UNAVAILABLE,
        "the region has no capacity for this container group right now",
        message,
        "lower target.cpu_cores / target.memory_gb, pick another target.location, or rerun later (Azure says the "
        "condition is usually intermittent)",
        "deploy",
    )


def aci_invalid(message: str) -> Diagnosis:
    return Diagnosis(
        Code.REQUEST_INVALID,
        "Azure refused the container group as invalid",
        message,
        "Resource Manager's message above names the field; check target.* against the region's limits",
        "deploy",
    )


def aci_provisioning_failed(group: str, message: str) -> Diagnosis:
    return Diagnosis(
        Code.PROVISIONING_FAILED,
        f"Azure could not provision container group {group}",
        f"container group {group}: {message}",
        "Azure's events above say which part failed (a volume mount, the network, the image); the group is deleted",
        "deploy",
    )


def aci_image_pull_failed(image: str, message: str, group: str) -> Diagnosis:
    """InaccessibleImage / RegistryErrorResponse, or a container Waiting on a pull, told apart by Azure's message."""
    evidence = f"container group {group}: {message}"
    if _PULL_MISSING.search(message) and not _PULL_DENIED.search(message):
        return Diagnosis(
            Code.IMAGE_NOT_FOUND,
            f"the image {image} does not exist in its registry",
            evidence,
            "the registry does not serve this name or digest: check registry.url, and rerun from the push stage "
            "(mldeploy deploy SPEC --from-stage push)",
            "deploy",
        )
    return Diagnosis(
        Code.REGISTRY_AUTH_DENIED,
        f"Azure Container Instances may not pull {image}",
        evidence,
        "ACI pulls with the group's registry credentials: the managed identity in target.registry_identity, or "
        "registry.username and registry.password_env (an ACR token or admin user) — either needs AcrPull on the "
        "registry; also check that the image name and digest exist",
        "deploy",
    )


# --- smoke -----------------------------------------------------------------------------


def run_failed(case: str, status: int, log: str) -> Diagnosis:
    return Diagnosis(
        Code.RUN_FAILED,
        f"run() raised for smoke request {case!r} (HTTP {status})",
        last_traceback(log),
        "fix the exception in run() (the traceback from the container log is in the evidence); set deploy.debug: true "
        "to see error text in responses while debugging",
        "smoke",
    )


def smoke_mismatch(failures: Sequence[str]) -> Diagnosis:
    return Diagnosis(
        Code.SMOKE_MISMATCH,
        f"{len(failures)} smoke request(s) did not match",
        "\n".join(failures),
        "compare the responses with smoke[].expect / expect_status in the spec; the previous version keeps serving",
        "smoke",
    )


def endpoint_unavailable(case: str, what: str, log: str) -> Diagnosis:
    return Diagnosis(
        Code.ENDPOINT_UNAVAILABLE,
        f"the endpoint did not serve smoke request {case!r} ({what})",
        tail(log),
        "the scoring process stopped or is not ready: its log and state are above (a run() that ends the process "
        "- sys.exit, os._exit, a crash in native code - looks like this; step through it with 'mldeploy debug "
        "SPEC'); any previous version keeps serving",
        "smoke",
    )


def scoring_timeout(case: str, seconds: float) -> Diagnosis:
    return Diagnosis(
        Code.SCORING_TIMEOUT,
        f"smoke request {case!r} got no answer within {seconds:g} s",
        f"no response after {seconds:g} s",
        "make run() faster or raise the scoring timeout",
        "smoke",
    )


def replicas_needed(
    target_rps: float, request_seconds: float, target_utilization: float = 0.7, max_concurrent_per_container: int = 1
) -> int:
    """The guide's estimate: ceil(rps × request time / utilization / concurrency per container)."""
    if target_rps <= 0 or request_seconds <= 0:
        return 1
    needed = target_rps * request_seconds / target_utilization / max_concurrent_per_container
    # round first: 7 × 0.1 / 0.7 is 1.0000000000000002 in floating point, which is 1 replica, not 2
    return max(1, math.ceil(round(needed, 9)))


def burst_503(
    observed_rps: float,
    request_seconds: float,
    replicas: int,
    *,
    utilization: float = 0.7,
    concurrency: int = 1,
    refused: int = 0,
    sent: int = 0,
) -> Diagnosis:
    """HTTP 503 under a burst: the replica formula with the measured numbers."""
    needed = replicas_needed(observed_rps, request_seconds, utilization, concurrency)
    return Diagnosis(
        Code.BURST_503,
        f"HTTP 503 under a burst of about {observed_rps:g} req/s" + (f" ({refused} of {sent} refused)" if sent else ""),
        f"replicas now: {replicas}; request time {request_seconds * 1000:.0f} ms (measured); "
        f"concurrent requests per replica: {concurrency}",
        f"raise the fewest replicas (target.replicas or target.autoscale.min_replicas) to at least {needed} "
        f"(ceil({observed_rps:g} × {request_seconds:.3f} / {utilization:g} / {concurrency})), or lower the "
        "autoscaler's target utilization so it scales out sooner",
        "smoke",
    )


def unknown(stage: str, message: str) -> Diagnosis:
    return Diagnosis(
        Code.UNKNOWN,
        f"{stage} failed: {message.splitlines()[0] if message else 'unknown error'}",
        message,
        "read the stage's log in the Prefect UI; rerun resumes at this stage",
        stage,
    )
