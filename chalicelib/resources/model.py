"""SageMaker models: network isolation and the VPC their containers run in (endpoints and transform jobs)."""
from __future__ import annotations

from typing import Any

from ..model import MODEL, Resource, ResourceRef
from ..reads import sagemaker_tags_of
from .base import (
    IN_VPC_FIELDS,
    SAGEMAKER_NAME_RE,
    TAG_FIELDS,
    USED_BY_ENDPOINT,
    Listing,
    ResourceType,
    in_vpc,
    vpc_uses,
)


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    model = lookups.model(ref.resource_id)
    if model is None:
        return None
    vpc_config = model.get("VpcConfig") or None
    state = {"ModelName": model["ModelName"], "EnableNetworkIsolation": bool(model.get("EnableNetworkIsolation")),
             "VpcConfig": vpc_config}
    in_vpc(lookups, state, (vpc_config or {}).get("Subnets", []))
    arn = model["ModelArn"]
    return Resource(ref, arn, state, sagemaker_tags_of(lookups, arn))



TYPE = ResourceType(
    type=MODEL, service="sagemaker", arn_resource="model", id_pattern=SAGEMAKER_NAME_RE,
    api_calls=("CreateModel",), name_fields={"CreateModel": "modelName"},
    listing=Listing(lambda sagemaker: sagemaker.get_paginator("list_models"), "Models", "ModelName"),
    config_recorded=True, reads=("sagemaker:DescribeModel",),
    state_fields=frozenset({"ModelName", "EnableNetworkIsolation", "VpcConfig"}) | IN_VPC_FIELDS | TAG_FIELDS,
    collect=collect, related=lambda resource: vpc_uses(resource, USED_BY_ENDPOINT),
)
