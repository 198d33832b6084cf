"""SageMaker endpoints: what they serve (their configuration's variants and models) and where."""
from __future__ import annotations

from typing import Any

from ..model import ENDPOINT, ENDPOINT_CONFIG, MODEL, Resource, ResourceRef
from ..reads import describe_or_none, sagemaker_tags_of
from .base import IN_VPC_FIELDS, SAGEMAKER_NAME_RE, TAG_FIELDS, Listing, ResourceType, StateChange, in_vpc
from .endpoint_config import variants as variants_of


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    """An endpoint with its configuration's variants and the subnets of the models they serve."""
    endpoint = describe_or_none(lambda: lookups.sagemaker.describe_endpoint(EndpointName=ref.resource_id))
    if endpoint is None:
        return None
    name = endpoint.get("EndpointConfigName")
    config = describe_or_none(lambda: lookups.sagemaker.describe_endpoint_config(EndpointConfigName=name)) or {}
    variants, shadows = variants_of(config), variants_of(config, "ShadowProductionVariants")
    # what the endpoint runs: its variants' models, its shadow variants' too; in the subnets of its
    # configuration's own VpcConfig (endpoints of inference components) and of those models
    models = sorted({v["ModelName"] for v in variants + shadows if v.get("ModelName")})
    subnets = sorted(set((config.get("VpcConfig") or {}).get("Subnets") or []) | {
        s for m in models for s in ((lookups.model(m) or {}).get("VpcConfig") or {}).get("Subnets", [])})
    state = {"EndpointName": endpoint["EndpointName"], "EndpointStatus": endpoint.get("EndpointStatus"),
             "EndpointConfigName": name, "ProductionVariants": variants, "ShadowProductionVariants": shadows,
             "Models": models, "VpcConfig": {"Subnets": subnets} if subnets else None}
    in_vpc(lookups, state, subnets)
    arn = endpoint["EndpointArn"]
    return Resource(ref, arn, state, sagemaker_tags_of(lookups, arn), version=str(endpoint.get("EndpointStatus")))



def related(resource: Resource) -> list[tuple[ResourceRef, set[str]]]:
    """What it serves: its configuration and models (read with it, evaluated for it)."""
    ref, state = resource.ref, resource.state
    served: list[tuple[ResourceRef, set[str]]] = [(ResourceRef(MODEL, m, ref.account, ref.region), set())
                                                  for m in state.get("Models", [])]
    if state.get("EndpointConfigName"):
        served.append((ResourceRef(ENDPOINT_CONFIG, state["EndpointConfigName"], ref.account, ref.region), set()))
    return served


TYPE = ResourceType(
    type=ENDPOINT, service="sagemaker", arn_resource="endpoint", id_pattern=SAGEMAKER_NAME_RE,
    api_calls=("CreateEndpoint", "UpdateEndpoint"),
    name_fields={"CreateEndpoint": "endpointName", "UpdateEndpoint": "endpointName"},
    # the published sample spells the status IN_SERVICE; the API says InService
    state_change=StateChange("SageMaker Endpoint State Change", "EndpointName", "EndpointStatus",
                             ("IN_SERVICE", "InService")),
    listing=Listing(lambda sagemaker: sagemaker.get_paginator("list_endpoints"), "Endpoints", "EndpointName"),
    reads=("sagemaker:DescribeEndpoint",),  # its configuration and models: their types grant those reads
    state_fields=frozenset({"EndpointName", "EndpointStatus", "EndpointConfigName", "ProductionVariants",
                            "ShadowProductionVariants", "Models", "VpcConfig"}) | IN_VPC_FIELDS | TAG_FIELDS,
    collect=collect, related=related,
)
