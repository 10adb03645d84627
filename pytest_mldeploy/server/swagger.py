"""The service's Swagger 2.0 and OpenAPI 3.0.3 documents, shaped like Azure ML's.

Azure's documents leave out what the server enforces; ours add `required` and the array bounds
inference_schema checks (see `schema.tighten`), so a request valid against them is one the service
accepts.
"""
from __future__ import annotations

import copy
from typing import Any

from .contract import HEALTH_ROUTE, SCORE_ROUTE, SWAGGER_ROUTE


class SwaggerVersionError(LookupError):
    """The asked-for version cannot be given (unknown, or the schema's types do not fit it)."""


_HEALTH_DESCRIPTION = "Simple health check endpoint to ensure the service is up at any given point."
_HEALTHY = "If service is up and running, this response will be returned with the content 'Healthy'"
_SCORE_DESCRIPTION = "Run web service's model and get the prediction output"
_PAYLOAD_DESCRIPTION = "The input payload for executing the real-time machine learning service."
_OK_DESCRIPTION = "The service processed the input correctly and provided a result prediction, if applicable."
_ERROR_DESCRIPTION = "The service failed to execute due to an error."
_SWAGGER_DESCRIPTION = "The service's API specification: Swagger 2.0 (version=2, default) or OpenAPI 3.0.3 (version=3)."


def error_schema() -> dict[str, Any]:
    """What every error body looks like."""
    return {"type": "object", "properties": {"message": {"type": "string"}}}


def build(
    version: str,
    *,
    title: str,
    service_version: str,
    prefix: str,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any],
    supported: list[str],
) -> dict[str, Any]:
    """The document for `version` ("2" or "3", as in `/swagger.json?version=`)."""
    if version not in ("2", "3"):
        raise SwaggerVersionError(f"Swagger version [{version}] is not valid. Supported versions: 2, 3")
    if version == "2" and "2.0" not in supported:
        raise SwaggerVersionError(
            "Swagger version [2] is not supported by run()'s schema (its samples mix types in an array); "
            "ask for /swagger.json?version=3"
        )
    if version == "2":
        return _swagger2(title, service_version, prefix, input_schema, output_schema)
    return _openapi3(title, service_version, prefix, input_schema, output_schema)


def _info(title: str, service_version: str) -> dict[str, str]:
    return {
        "title": title,
        "description": f"API specification for the Azure Machine Learning service {title}",
        "version": service_version,
    }


def _swagger2(title: str, service_version: str, prefix: str, body: dict, output: dict) -> dict[str, Any]:
    error = {"description": _ERROR_DESCRIPTION, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0",
        "info": _info(title, service_version),
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "Bearer": {"type": "apiKey", "name": "Authorization", "in": "header",
                       "description": "For example: Bearer abc123"}
        },
        "paths": {
            prefix + HEALTH_ROUTE: {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH_DESCRIPTION,
                    "produces": ["text/html"],
                    "responses": {
                        "200": {"description": _HEALTHY, "schema": {"type": "string"},
                                "examples": {"text/html": "Healthy"}},
                        "default": error,
                    },
                }
            },
            prefix + SCORE_ROUTE: {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {"name": "serviceInputPayload", "in": "body", "description": _PAYLOAD_DESCRIPTION,
                         "required": True, "schema": {"$ref": "#/definitions/ServiceInput"}}
                    ],
                    "responses": {
                        "200": {"description": _OK_DESCRIPTION, "schema": {"$ref": "#/definitions/ServiceOutput"}},
                        "default": error,
                    },
                }
            },
            prefix + SWAGGER_ROUTE: {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": _SWAGGER_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {"name": "version", "in": "query", "required": False, "type": "string",
                         "enum": ["2", "3"], "description": "2 for Swagger 2.0, 3 for OpenAPI 3.0.3"}
                    ],
                    "responses": {"200": {"description": "The API specification.", "schema": {"type": "object"}},
                                  "default": error},
                }
            },
        },
        "definitions": {
            "ServiceInput": copy.deepcopy(body),
            "ServiceOutput": copy.deepcopy(output),
            "ErrorResponse": error_schema(),
        },
    }


def _openapi3(title: str, service_version: str, prefix: str, body: dict, output: dict) -> dict[str, Any]:
    def json_content(ref: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}

    error = {"description": _ERROR_DESCRIPTION, "content": json_content("ErrorResponse")}
    return {
        "openapi": "3.0.3",
        "info": _info(title, service_version),
        "security": [{"Bearer": []}],
        "paths": {
            prefix + HEALTH_ROUTE: {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH_DESCRIPTION,
                    "security": [],
                    "responses": {
                        "200": {"description": _HEALTHY,
                                "content": {"text/html": {"schema": {"type": "string"}, "example": "Healthy"}}},
                        "default": error,
                    },
                }
            },
            prefix + SCORE_ROUTE: {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "requestBody": {"description": _PAYLOAD_DESCRIPTION, "required": True,
                                    "content": json_content("ServiceInput")},
                    "responses": {
                        "200": {"description": _OK_DESCRIPTION, "content": json_content("ServiceOutput")},
                        "default": error,
                    },
                }
            },
            prefix + SWAGGER_ROUTE: {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": _SWAGGER_DESCRIPTION,
                    "parameters": [
                        {"name": "version", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": ["2", "3"]},
                         "description": "2 for Swagger 2.0, 3 for OpenAPI 3.0.3"}
                    ],
                    "responses": {
                        "200": {"description": "The API specification.",
                                "content": {"application/json": {"schema": {"type": "object"}}}},
                        "default": error,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "Bearer": {"type": "apiKey", "name": "Authorization", "in": "header",
                           "description": "For example: Bearer abc123"}
            },
            "schemas": {
                "ServiceInput": copy.deepcopy(body),
                "ServiceOutput": copy.deepcopy(output),
                "ErrorResponse": error_schema(),
            },
        },
    }
