"""SageMaker endpoint configurations: the variants (models, instance counts) an endpoint serves."""
from __future__ import annotations

from typing import Any

from ..model import ENDPOINT_CONFIG, Resource, ResourceRef
from ..reads import describe_or_none, sagemaker_tags_of
from .base import SAGEMAKER_NAME_RE, TAG_FIELDS, Listing, ResourceType


def variants(config: dict[str, Any], key: str = "ProductionVariants") -> list[dict[str, Any]]:
    return [{k: v[k] for k in ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType") if k in v}
            | {"Serverless": "ServerlessConfig" in v} for v in config.get(key) or []]


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    config = describe_or_none(lambda: lookups.sagemaker.describe_endpoint_config(EndpointConfigName=ref.resource_id))
    if config is None:
        return None
    state = {"EndpointConfigName": config["EndpointConfigName"], "ProductionVariants": variants(config)}
    arn = config["EndpointConfigArn"]
    return Resource(ref, arn, state, sagemaker_tags_of(lookups, arn))



TYPE = ResourceType(
    type=ENDPOINT_CONFIG, service="sagemaker", arn_resource="endpoint-config", id_pattern=SAGEMAKER_NAME_RE,
    api_calls=("CreateEndpointConfig",), name_fields={"CreateEndpointConfig": "endpointConfigName"},
    listing=Listing(lambda sagemaker: sagemaker.get_paginator("list_endpoint_configs"), "EndpointConfigs",
                    "EndpointConfigName"),
    config_recorded=True, reads=("sagemaker:DescribeEndpointConfig",),
    state_fields=frozenset({"EndpointConfigName", "ProductionVariants"}) | TAG_FIELDS,
    collect=collect,
)
