"""The service contract, named once: the routes, port and app root of the scoring server and the
environment variables it reads.

The server reads these names; the core sets them (app layout, image, targets), writes them into the
Dockerfile and probes the routes; checks and the profiler send requests to the routes. The module
imports nothing, so the server can use it in an image that holds nothing else of pytest-mldeploy.

The routes are Azure's (azureml-inference-server-http): fixed at the root of the server.
`SERVICE_PATH_PREFIX` does not move them. It names the path a front end serves them under, so it
prefixes only the paths the swagger document lists, as Azure's server does.
"""

#: The module that runs the server: `python -m pytest_mldeploy.server`.
SERVER_MODULE = "pytest_mldeploy.server"

#: GET or HEAD: 200 `Healthy` once init() is done, 503 before (the liveness and readiness probe).
HEALTH_ROUTE = "/"
#: GET or POST: call the entry script's run().
SCORE_ROUTE = "/score"
#: GET: the swagger (OpenAPI) document; `?version=3` for OpenAPI 3.
SWAGGER_ROUTE = "/swagger.json"

#: The port the server listens on unless told otherwise (Azure's server uses it too).
DEFAULT_PORT = 5001
#: The address the server listens on unless told otherwise (images listen on every address).
DEFAULT_HOST = "127.0.0.1"
#: Where a service image holds the app: the models, the source directory and `config.json`.
DEFAULT_APP_ROOT = "/var/azureml-app"
#: The folder under the app root that holds the models, as `NAME/VERSION/<registered file or folder>`.
MODELS_DIRNAME = "azureml-models"
#: Settings in the app root, under the same names as the environment variables (which win over it).
CONFIG_FILENAME = "config.json"

# ---- environment variables: Azure's names ---------------------------------------------------------
#: The app root (default DEFAULT_APP_ROOT).
APP_ROOT_VAR = "AML_APP_ROOT"
#: The source directory, relative to the app root.
SOURCE_DIRECTORY_VAR = "AZUREML_SOURCE_DIRECTORY"
#: The entry script, relative to the source directory.
ENTRY_SCRIPT_VAR = "AZUREML_ENTRY_SCRIPT"
#: The model folder the entry script reads (one model's VERSION folder, or MODELS_DIRNAME for several).
MODEL_DIR_VAR = "AZUREML_MODEL_DIR"
SERVICE_NAME_VAR = "SERVICE_NAME"
SERVICE_VERSION_VAR = "SERVICE_VERSION"
#: The path a front end serves the routes under; only the swagger document's paths carry it.
SERVICE_PATH_PREFIX_VAR = "SERVICE_PATH_PREFIX"
SCORING_TIMEOUT_MS_VAR = "SCORING_TIMEOUT_MS"
LOG_LEVEL_VAR = "AZUREML_LOG_LEVEL"
CORS_ORIGINS_VAR = "CORS_ORIGINS"
WORKER_COUNT_VAR = "WORKER_COUNT"

# ---- environment variables: this server's own -----------------------------------------------------
HOST_VAR = "MLDEPLOY_HOST"
PORT_VAR = "MLDEPLOY_PORT"
MAX_BODY_BYTES_VAR = "MLDEPLOY_MAX_BODY_BYTES"
#: Azure's max_concurrent_requests_per_instance.
MAX_CONCURRENT_REQUESTS_VAR = "MLDEPLOY_MAX_CONCURRENT_REQUESTS"
#: The keys `/score` accepts, comma-separated; none means no key is needed.
AUTH_KEYS_VAR = "MLDEPLOY_AUTH_KEYS"
RUN_INLINE_VAR = "MLDEPLOY_RUN_INLINE"
MAX_REQUEST_LINE_BYTES_VAR = "MLDEPLOY_MAX_REQUEST_LINE_BYTES"
MAX_HEADER_BYTES_VAR = "MLDEPLOY_MAX_HEADER_BYTES"
HEADER_TIMEOUT_MS_VAR = "MLDEPLOY_HEADER_TIMEOUT_MS"
STUCK_GRACE_MS_VAR = "MLDEPLOY_STUCK_GRACE_MS"
#: No entry script: the built-in scorer's description, relative to the app root.
SCORER_VAR = "MLDEPLOY_SCORER"

#: Every setting the environment or `config.json` may give the server.
SETTINGS_VARIABLES = (
    APP_ROOT_VAR,
    SOURCE_DIRECTORY_VAR,
    ENTRY_SCRIPT_VAR,
    MODEL_DIR_VAR,
    SERVICE_NAME_VAR,
    SERVICE_VERSION_VAR,
    SERVICE_PATH_PREFIX_VAR,
    SCORING_TIMEOUT_MS_VAR,
    LOG_LEVEL_VAR,
    CORS_ORIGINS_VAR,
    WORKER_COUNT_VAR,
    HOST_VAR,
    PORT_VAR,
    MAX_BODY_BYTES_VAR,
    MAX_CONCURRENT_REQUESTS_VAR,
    AUTH_KEYS_VAR,
    RUN_INLINE_VAR,
    MAX_REQUEST_LINE_BYTES_VAR,
    MAX_HEADER_BYTES_VAR,
    HEADER_TIMEOUT_MS_VAR,
    STUCK_GRACE_MS_VAR,
    SCORER_VAR,
)
