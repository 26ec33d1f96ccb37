"""The scoring image's contract, in one place: what mldeploy builds, deploys, probes and labels.

Shipped inside every image with the runtime (standard library only), and imported by the
pipeline through ``mldeploy.contract``: the Dockerfile renderer, the targets, the smoke stage
and the runtime's own settings all read these names, and a test checks they agree.
"""

# Where things live inside the image
APP_ROOT = "/var/azureml-app"  # the scoring script and its folder (the classic path)
MODELS_DIR = "azureml-models"  # relative to APP_ROOT, the working directory: AZUREML_MODEL_DIR is relative too
MODELS_ROOT = APP_ROOT + "/" + MODELS_DIR  # <model name>/<version>/<registered file or folder>
RUNTIME_ROOT = "/opt/mldeploy/runtime"
COMPAT_ROOT = RUNTIME_ROOT + "/compat"  # the azureml shim: last on sys.path, after the user's packages
VENV = "/opt/mldeploy/venv"
MIN_PYTHON = (3, 10)  # the oldest Python the runtime's pinned requirements publish wheels for
SERVICE_USER = "mldeploy"
SERVICE_UID = 10001

# How the service answers
CONTAINER_PORT = 5001
LIVENESS_PATH = "/"  # 200 as soon as the port is open, while init() may still load
READINESS_PATH = "/readyz"  # 200 once init() returned: what roll-outs wait for
INFO_PATH = "/info"  # init_seconds and limits, for probe tuning
SCORE_PATH = "/score"
SWAGGER_PATH = "/swagger.json"

# Environment variables the runtime reads
ENV_APP_ROOT = "AML_APP_ROOT"
ENV_MODEL_DIR = "AZUREML_MODEL_DIR"
ENV_ENTRY_SCRIPT = "AZUREML_ENTRY_SCRIPT"  # relative to the app folder
ENV_SOURCE_DIRECTORY = "AZUREML_SOURCE_DIRECTORY"  # the source directory's folder under the app folder
ENV_PORT = "MLDEPLOY_PORT"
ENV_DEBUG = "AZUREML_DEBUG"
# Key auth: the value itself, or ``<name>_FILE`` naming a file that holds it (re-read when it changes)
AUTH_KEY_VARS = ("MLDEPLOY_AUTH_PRIMARY_KEY", "MLDEPLOY_AUTH_SECONDARY_KEY")
AUTH_FILE_SUFFIX = "_FILE"

# Labels on images and containers (and, with a target's own spelling, on remote objects)
LABEL_SERVICE = "mldeploy.service"
LABEL_ROLE = "mldeploy.role"  # local target: front (holds the port) | backend (a version of the service)
LABEL_FINGERPRINT = "mldeploy.fingerprint"  # the deploy fingerprint the instance runs
LABEL_IMAGE_FINGERPRINT = "mldeploy.image-fingerprint"  # everything that went into the image
LABEL_SECRETS_DIGEST = "mldeploy.secrets-digest"  # keyed digest of the secret values (never the values)
LABEL_MODEL = "mldeploy.model"  # <name>:<version>
LABEL_MODEL_SHA256 = "mldeploy.model.sha256"
LABEL_ENVIRONMENT_SHA256 = "mldeploy.environment.sha256"  # the environment file the image was built from
LABEL_IMAGE = "mldeploy.image"  # the reference the instance was started from
