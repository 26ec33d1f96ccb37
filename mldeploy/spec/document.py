"""The service spec (``service.yaml``), declared once.

These models are the one declaration of the spec: validation (with every problem's field path),
the typed frozen objects the pipeline passes around, the defaults, the JSON Schema
(``mldeploy schema``) and the README's key reference all come from them. Paths are resolved
inside the spec's folder while validating, so the pipeline only ever sees absolute paths that
exist and are contained.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from mldeploy.azure_cloud import acr_login_server
from mldeploy.contract import MIN_PYTHON, runtime_supports
from mldeploy.errors import SpecProblem
from mldeploy.spec.files import (
    DockerfileSteps,
    EnvironmentFile,
    SpecContext,
    SpecFileOrFolder,
    SpecFolder,
    UserLimits,
    context_of,
    entry_script_problems,
    problems_error,
    resolve_path,
)
from mldeploy.spec.smoke import SmokeCase
from mldeploy.spec.targets import AciTarget, EnvVars, LocalTarget, TargetSection
from mldeploy.spec.types import (
    DnsLabel,
    EnvVarName,
    Fix,
    ImageReference,
    ModelName,
    PythonVersion,
    RegistryUrl,
    Section,
    Text,
    spec_error,
)

# The entry script's relative path reaches the Dockerfile (AZUREML_ENTRY_SCRIPT): plain names only.
SCRIPT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.py")
SCRIPT_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SecretSource = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=255),
    Fix("name the environment variable that holds the value on the deploying machine, never the value itself"),
]
PrefectBlockName = Annotated[
    str,
    Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=255),
    Fix("use the Secret block's name: lowercase letters, digits and '-' (prefect block ls)"),
]


class ModelSection(Section):
    """A model to register (``path``) or an already registered version (``version``), shipped with the image."""

    name: ModelName = Field(description="Name in the model registry (what Model.get_model_path(name) asks for).")
    path: SpecFileOrFolder | None = Field(
        None, description="The model file or folder, relative to the spec; registered (same bytes, same version)."
    )
    version: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        None, description="A registered version to deploy (with path: the version those bytes must have)."
    )
    description: Text = Field("", description="Free text kept with the model version.")

    @model_validator(mode="after")
    def _path_or_version(self) -> ModelSection:
        if self.path is None and self.version is None:
            raise spec_error("names neither a path nor a version", "set path (the model file or folder) or version")
        return self


class EnvironmentSection(Section):
    """The image's Python environment."""

    conda_file: EnvironmentFile | None = Field(
        None, description="A conda environment YAML; its pip: section (and mapped conda packages) is installed."
    )
    requirements: EnvironmentFile | None = Field(None, description="A pip requirements file (instead of conda_file).")
    python: PythonVersion | None = Field(
        None, description="Python of the image (base image python:VERSION-slim); quote it: '3.11'."
    )
    base_image: ImageReference | None = Field(None, description="Any image with python3 and venv (instead of python).")
    extra_dockerfile_steps: DockerfileSteps | None = Field(
        None, description="A file of extra RUN/ENV/ARG/LABEL lines, run after the packages are installed."
    )
    variables: EnvVars = Field(default_factory=dict, description="Container environment variables (not secret).")

    @field_validator("python", mode="before")
    @classmethod
    def _python_is_quoted(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            # YAML reads an unquoted 3.10 as the number 3.1: never guess which was meant.
            raise spec_error(
                f"{value!r} is not a quoted version string",
                "quote it, e.g. python: '3.11' (unquoted, 3.10 reads as 3.1)",
            )
        too_old = isinstance(value, str) and re.fullmatch(r"3\.[0-9]{1,2}", value) and not runtime_supports(value)
        if too_old:
            oldest = ".".join(map(str, MIN_PYTHON))
            raise spec_error(
                f"Python {value} is older than the scoring runtime supports ({oldest} or later)",
                f"use python: '{oldest}' or later, with package versions that publish wheels for it",
            )
        return value

    @model_validator(mode="after")
    def _one_environment(self) -> EnvironmentSection:
        if self.conda_file is not None and self.requirements is not None:
            raise spec_error("sets both conda_file and requirements", "keep one of the two")
        if self.conda_file is None and self.requirements is None:
            raise spec_error(
                "names no Python environment",
                "set environment.conda_file (conda YAML with a pip: section) or environment.requirements",
            )
        return self

    @property
    def file(self) -> Path:
        """The environment file (conda or requirements)."""
        found = self.conda_file or self.requirements
        assert found is not None  # guaranteed by _one_environment
        return found


class RegistrySection(Section):
    """Where images are pushed (and pulled from by remote targets)."""

    url: RegistryUrl = Field(description="host[:port][/path] of any OCI registry (ACR, Harbor, distribution...).")
    username: Annotated[str, Field(pattern=r"^[^\x00-\x1f\x7f]+$", max_length=255)] | None = Field(
        None, description="User name for the registry."
    )
    password_env: SecretSource | None = Field(
        None, description="Environment variable holding the password (never the password itself)."
    )
    password_block: PrefectBlockName | None = Field(
        None, description="Prefect Secret block holding the password (instead of password_env)."
    )
    insecure: bool = Field(
        False, description="Plain HTTP instead of HTTPS (the engine must list the registry as insecure)."
    )
    kind: Literal["auto", "acr", "oci"] = Field(
        "auto",
        description="acr: Azure Container Registry (HTTPS; without a password, sign in with the Entra ID "
        "identity through ACR's token exchange); oci: any other registry; auto: acr for *.azurecr.io/.cn/.us.",
    )
    immutable_tags: bool = Field(
        False, description="Refuse to move a tag that already points at another digest (as ACR's tag locking)."
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> RegistrySection:
        if self.password_env and self.password_block:
            raise spec_error("sets both password_env and password_block", "keep one of the two")
        if self.is_acr and self.insecure:
            raise spec_error(
                "insecure is set for an Azure Container Registry", "remove insecure: ACR is served over HTTPS only"
            )
        if self.password_block and not self.username:
            raise spec_error("password_block is set without a username", "set username (the token or admin name)")
        return self

    @property
    def is_acr(self) -> bool:
        """An Azure Container Registry: by kind, or (auto) by its login server name."""
        return self.kind == "acr" or (self.kind == "auto" and acr_login_server(self.url) is not None)

    @property
    def signs_in_with_entra(self) -> bool:
        """ACR without a password: the deploying identity's Entra token is exchanged for a registry token."""
        return self.is_acr and not (self.password_env or self.password_block)


class DeploySection(Section):
    """How long a roll-out may take, and debugging."""

    health_timeout_seconds: Annotated[float, Field(ge=1, le=3600), Fix("use seconds between 1 and 3600")] = Field(
        60.0, description="How long init() may take before the service must be ready."
    )
    debug: bool = Field(False, description="500 responses carry the error text (debugging only).")


class ServiceSpec(Section):
    """A scoring service: a model, a scoring script, its environment, where it runs and how it is checked."""

    name: DnsLabel = Field(description="Service name: the container, image and artifact names.")
    description: Text = Field("", description="Free text.")
    model: ModelSection | None = Field(None, description="The model (or use models: for several).")
    models: tuple[ModelSection, ...] = Field(
        (),
        strict=False,
        description="Several models in one service: each under azureml-models/NAME/VERSION, "
        "found with Model.get_model_path(name).",
    )
    source_directory: SpecFolder | None = Field(
        None, description="A folder copied into the app (entry_script is inside it)."
    )
    entry_script: Path = Field(description="The scoring script with init() and run(), relative to the spec.")
    environment: EnvironmentSection = Field(description="The image's Python environment.")
    secrets: dict[EnvVarName, SecretSource] = Field(
        default_factory=dict,
        description="CONTAINER_VARIABLE: HOST_VARIABLE; values come from the deploying machine's environment "
        "and are scrubbed from every log, artifact and summary.",
    )
    registry: RegistrySection | None = Field(None, description="Where to push; optional for the local target.")
    target: TargetSection = Field(default_factory=LocalTarget, description="Where the service runs.")
    deploy: DeploySection = Field(default_factory=DeploySection, description="Roll-out settings.")
    smoke: tuple[SmokeCase, ...] = Field(
        (), strict=False, description="Requests the new version must answer before it serves."
    )

    _path: Path = PrivateAttr()
    _notices: tuple[str, ...] = PrivateAttr(())
    _roots: tuple[Path, ...] = PrivateAttr(())
    _limits: UserLimits = PrivateAttr(default_factory=UserLimits)

    def model_post_init(self, context: Any) -> None:
        if isinstance(context, SpecContext):
            self._path = context.spec_path
            self._notices = tuple(context.notices)
            self._roots = context.roots()
            self._limits = context.limits

    @field_validator("source_directory", mode="after")
    @classmethod
    def _plain_folder_name(cls, folder: Path | None) -> Path | None:
        # its name becomes a folder in the image and AZUREML_SOURCE_DIRECTORY
        if folder is not None and not SCRIPT_FOLDER.fullmatch(folder.name):
            raise spec_error(
                f"the folder name {folder.name!r} cannot be used in the image",
                "name the folder with letters, digits, '_', '.', '-'",
            )
        return folder

    @field_validator("entry_script", mode="before")
    @classmethod
    def _entry_script(cls, value: Any, info: ValidationInfo) -> Path:
        if "source_directory" not in info.data:
            return Path(str(value))  # source_directory itself is wrong: that problem is reported already
        source_dir: Path | None = info.data["source_directory"]
        path = resolve_path(value, info, "file", base=source_dir)
        spec_file = str(context_of(info).spec_path)
        relative = path.relative_to(source_dir) if source_dir and path.is_relative_to(source_dir) else None
        if not SCRIPT_NAME.fullmatch(path.name):
            raise spec_error(
                f"{path.name!r} is not a plain Python file name",
                "name the script like score.py (letters, digits, '_', '.', '-')",
            )
        if source_dir is not None and relative is None:
            raise spec_error("must be inside source_directory", "move the script into source_directory")
        if relative is not None and not all(SCRIPT_FOLDER.fullmatch(part) for part in relative.parts[:-1]):
            raise spec_error(
                f"{relative.as_posix()!r} has an unsafe folder name",
                "use folder names of letters, digits, '_', '.', '-'",
            )
        found = entry_script_problems(path)
        if found:
            raise problems_error([SpecProblem(spec_file, "entry_script", message, fix) for message, fix in found])
        return path

    @field_validator("smoke", mode="after")
    @classmethod
    def _name_smoke_cases(cls, cases: tuple[SmokeCase, ...]) -> tuple[SmokeCase, ...]:
        return tuple(
            case if case.name else case.model_copy(update={"name": f"request {index + 1}"})
            for index, case in enumerate(cases)
        )

    @field_validator("models", mode="after")
    @classmethod
    def _distinct_names(cls, models: tuple[ModelSection, ...]) -> tuple[ModelSection, ...]:
        names = [m.name for m in models]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise spec_error(f"{', '.join(twice)} appears twice", "give each model its own name")
        return models

    @model_validator(mode="after")
    def _aci_can_pull(self) -> ServiceSpec:
        # an exchanged ACR token lasts hours; ACI pulls again whenever it restarts a container
        registry = self.registry
        if (
            isinstance(self.target, AciTarget)
            and registry is not None
            and registry.signs_in_with_entra
            and not self.target.registry_identity
        ):
            raise spec_error(
                "target.registry_identity is not set: ACI cannot pull from the ACR with the deploying identity's "
                "short-lived token",
                "set target.registry_identity to a user-assigned managed identity with AcrPull on the registry, "
                "or give registry.username and password_env (a token with pull scope)",
            )
        return self

    # --- derived -------------------------------------------------------------------------------
    @property
    def all_models(self) -> tuple[ModelSection, ...]:
        """The model, or the models, as one tuple (exactly one of model/models is set: see loading)."""
        return (self.model,) if self.model is not None else self.models

    @property
    def path(self) -> Path:
        """The spec file itself."""
        return self._path

    @property
    def notices(self) -> tuple[str, ...]:
        """What the user should know about how the spec was read (e.g. keys ignored by --target)."""
        return self._notices

    @property
    def root(self) -> Path:
        return self._path.parent

    @property
    def roots(self) -> tuple[Path, ...]:
        """The folders its files may come from: its own, and those the user allowed (never the spec)."""
        return self._roots

    @property
    def limits(self) -> UserLimits:
        """What the deploying user allowed when the spec was read (never the spec itself)."""
        return self._limits

    @property
    def variables(self) -> dict[str, str]:
        """Plain container variables: environment.variables, then the target's (local) variables."""
        target_vars = self.target.variables if isinstance(self.target, LocalTarget) else {}
        return {key: str(value) for key, value in {**self.environment.variables, **target_vars}.items()}

    @property
    def app_source(self) -> Path:
        """What is copied into the app folder: the source directory, or the entry script alone."""
        return self.source_directory or self.entry_script

    @property
    def files_left_behind(self) -> tuple[str, ...]:
        """Names beside the entry script that are not shipped (no source directory: the script goes alone)."""
        if self.source_directory is not None:
            return ()
        try:
            names = sorted(p.name for p in self.entry_script.parent.iterdir() if p != self.entry_script)
        except OSError:
            return ()
        return tuple(names[:500])

    @property
    def entry_script_in_app(self) -> str:
        """The entry script's path inside the app folder (AZUREML_ENTRY_SCRIPT): the classic image kept the
        source directory as a folder of its own name, ``/var/azureml-app/<source dir>/<script>``."""
        if self.source_directory is None:
            return self.entry_script.name
        return f"{self.source_directory.name}/{self.entry_script.relative_to(self.source_directory).as_posix()}"
