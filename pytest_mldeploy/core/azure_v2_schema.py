"""Azure ML v2 online deployment and endpoint YAML as pydantic models of Azure's schema.

Unknown keys are errors, so a typo does not pass silently; documented keys that only matter in the
cloud are accepted (`core/azure_v2.py` names them in a notice). Defaults are Azure's own
(reference-yaml-deployment-managed-online).
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEPLOYMENT_SCHEMAS = ("managedonlinedeployment.schema.json", "kubernetesonlinedeployment.schema.json")
ENDPOINT_SCHEMAS = ("managedonlineendpoint.schema.json", "kubernetesonlineendpoint.schema.json")
MANAGED_DEPLOYMENT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json"
MANAGED_ENDPOINT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json"

#: Azure's defaults for a v2 online deployment (reference-yaml-deployment-managed-online).
DEFAULT_REQUEST_TIMEOUT_MS = 5000
DEFAULT_MAX_CONCURRENT_REQUESTS = 1
DEFAULT_PROBE = {"initial_delay": 10, "period": 10, "timeout": 2, "success_threshold": 1, "failure_threshold": 30}


class _V2(BaseModel):
    """Azure v2 YAML: unknown keys are errors so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _wrap_reference(value: Any) -> Any:
    """`azureml:NAME:VERSION` (a string) becomes `{reference: ...}` so one model holds both forms."""
    return {"reference": value} if isinstance(value, str) else value


class ModelAsset(_V2):
    """`model:` inline (`path`, optional `name`/`version`), or `reference` for `azureml:NAME:VERSION`."""

    reference: Optional[str] = None
    name: Optional[str] = None
    version: Optional[Union[int, str]] = None
    path: Optional[str] = None
    type: Optional[str] = None
    description: Optional[str] = None
    tags: Dict[str, Any] = {}
    properties: Dict[str, Any] = {}
    stage: Optional[str] = None
    flavors: Optional[Dict[str, Any]] = None
    datastore: Optional[str] = None
    schema_: Optional[str] = Field(None, alias="$schema")


class CodeConfiguration(_V2):
    code: Optional[str] = None
    scoring_script: str


class EnvironmentAsset(_V2):
    """`environment:` inline, from a separate environment YAML, or `reference` to one."""

    reference: Optional[str] = None
    name: Optional[str] = None
    version: Optional[Union[int, str]] = None
    description: Optional[str] = None
    tags: Dict[str, Any] = {}
    properties: Dict[str, Any] = {}
    image: Optional[str] = None
    conda_file: Optional[Union[str, Dict[str, Any]]] = None
    build: Optional[Dict[str, Any]] = None
    inference_config: Optional[Dict[str, Any]] = None
    os_type: Optional[str] = None
    datastore: Optional[str] = None
    schema_: Optional[str] = Field(None, alias="$schema")


class RequestSettings(_V2):
    request_timeout_ms: int = Field(DEFAULT_REQUEST_TIMEOUT_MS, ge=1)
    max_concurrent_requests_per_instance: int = Field(DEFAULT_MAX_CONCURRENT_REQUESTS, ge=1)
    max_queue_wait_ms: Optional[int] = Field(None, ge=0)


class Probe(_V2):
    initial_delay: int = Field(DEFAULT_PROBE["initial_delay"], ge=0)
    period: int = Field(DEFAULT_PROBE["period"], ge=1)
    timeout: int = Field(DEFAULT_PROBE["timeout"], ge=1)
    success_threshold: int = Field(DEFAULT_PROBE["success_threshold"], ge=1)
    failure_threshold: int = Field(DEFAULT_PROBE["failure_threshold"], ge=1)


class ScaleSettings(_V2):
    type: str = "default"
    polling_interval: Optional[int] = None
    target_utilization_percentage: Optional[int] = None
    min_instances: Optional[int] = None
    max_instances: Optional[int] = None


class _Quantities(_V2):
    cpu: Optional[Union[str, float]] = None
    memory: Optional[str] = None
    gpu: Optional[Union[str, int]] = None


class KubernetesResources(_V2):
    requests: Optional[_Quantities] = None
    limits: Optional[_Quantities] = None


class OnlineDeploymentFile(_V2):
    """A managed or Kubernetes online deployment YAML, as `az ml online-deployment create -f` reads it."""

    schema_: Optional[str] = Field(None, alias="$schema")
    name: str
    endpoint_name: str
    type: Optional[str] = None
    description: Optional[str] = None
    tags: Dict[str, Any] = {}
    properties: Dict[str, Any] = {}
    id: Optional[str] = None
    provisioning_state: Optional[str] = None
    model: Optional[ModelAsset] = None
    code_configuration: Optional[CodeConfiguration] = None
    environment: Optional[EnvironmentAsset] = None
    environment_variables: Dict[str, Union[str, int, float, bool]] = {}
    instance_type: Optional[str] = None
    instance_count: int = Field(1, ge=1)
    request_settings: RequestSettings = Field(default_factory=RequestSettings)
    liveness_probe: Optional[Probe] = None
    readiness_probe: Optional[Probe] = None
    scale_settings: Optional[ScaleSettings] = None
    resources: Optional[KubernetesResources] = None
    app_insights_enabled: Optional[bool] = None
    data_collector: Optional[Dict[str, Any]] = None
    egress_public_network_access: Optional[str] = None
    private_network_connection: Optional[bool] = None
    model_mount_path: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _references(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("model", "environment"):
                if key in data:
                    data[key] = _wrap_reference(data[key])
        return data

    @field_validator("name", "endpoint_name", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class OnlineEndpointFile(_V2):
    """A managed or Kubernetes online endpoint YAML (`az ml online-endpoint create -f`)."""

    schema_: Optional[str] = Field(None, alias="$schema")
    name: str
    description: Optional[str] = None
    tags: Dict[str, Any] = {}
    properties: Dict[str, Any] = {}
    id: Optional[str] = None
    auth_mode: str = "key"
    traffic: Dict[str, int] = {}
    mirror_traffic: Dict[str, int] = {}
    identity: Optional[Dict[str, Any]] = None
    public_network_access: Optional[str] = None
    compute: Optional[str] = None
    kind: Optional[str] = None
    location: Optional[str] = None
    provisioning_state: Optional[str] = None
    scoring_uri: Optional[str] = None
    openapi_uri: Optional[str] = None

    @field_validator("auth_mode")
    @classmethod
    def _auth_mode(cls, value: str) -> str:
        mode = re.sub(r"(?<!^)(?=[A-Z])", "_", value).lower()  # AMLToken / amlToken -> aml_token, as az ml reads it
        mode = {"a_m_l_token": "aml_token", "a_a_d_token": "aad_token"}.get(mode, mode)
        if mode not in ("key", "aml_token", "aad_token"):
            raise ValueError(f"{value!r} is not an auth mode (key, aml_token or aad_token)")
        return mode
