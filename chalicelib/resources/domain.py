"""SageMaker Studio domains: their app network access, VPC and default security groups, and running apps."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import DOMAIN, Resource, ResourceRef
from ..reads import describe_or_none, sagemaker_tags_of
from .base import (
    DOMAIN_ID_RE,
    IN_VPC_FIELDS,
    TAG_FIELDS,
    USED_BY_STUDIO,
    Listing,
    ResourceType,
    in_vpc,
    vpc_uses,
)

APP_BUSY = ("InService", "Pending", "Deleting")


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    domain = describe_or_none(lambda: lookups.sagemaker.describe_domain(DomainId=ref.resource_id))
    if domain is None:
        return None
    busy = [a.get("AppName") for page in lookups.sagemaker.get_paginator("list_apps").paginate(
                DomainIdEquals=ref.resource_id)
            for a in page.get("Apps", []) if a.get("Status") in APP_BUSY]
    subnets = list(domain.get("SubnetIds", []))
    rstudio = ((domain.get("DomainSettings") or {}).get("RStudioServerProDomainSettings") or {})
    state = {"DomainId": domain["DomainId"], "DomainName": domain.get("DomainName"),
             "AppNetworkAccessType": domain.get("AppNetworkAccessType"), "VpcId": domain.get("VpcId"),
             "VpcConfig": {"Subnets": subnets} if subnets else None, "Status": domain.get("Status"),
             "RunningApps": sorted(busy), "AppsState": "running" if busy else "none",
             "DefaultSecurityGroups": list((domain.get("DefaultUserSettings") or {}).get("SecurityGroups") or []),
             "RStudioDomainExecutionRole": bool(rstudio.get("DomainExecutionRoleArn"))}
    in_vpc(lookups, state, subnets)
    arn = domain["DomainArn"]
    return Resource(ref, arn, state, sagemaker_tags_of(lookups, arn), version=state["AppsState"])



def call_refs(name: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> list[Any]:
    """UpdateDomain names it; CreateDomain answers with its ARN."""
    arn = response.get("domainArn")
    return [request.get("domainId") or (arn.rsplit("/", 1)[-1] if isinstance(arn, str) else None)]


TYPE = ResourceType(
    type=DOMAIN, service="sagemaker", arn_resource="domain", id_pattern=DOMAIN_ID_RE,
    api_calls=("CreateDomain", "UpdateDomain"), call_refs=call_refs,
    listing=Listing(lambda sagemaker: sagemaker.get_paginator("list_domains"), "Domains", "DomainId"),
    config_recorded=True, reads=("sagemaker:DescribeDomain",),
    extra_reads=({"Sid": "ListStudioApps", "Effect": "Allow", "Action": "sagemaker:ListApps", "Resource": "*"},),
    state_fields=frozenset({"DomainId", "DomainName", "AppNetworkAccessType", "VpcId", "VpcConfig", "Status",
                            "RunningApps", "AppsState", "DefaultSecurityGroups", "RStudioDomainExecutionRole"})
    | IN_VPC_FIELDS | TAG_FIELDS,
    collect=collect, related=lambda resource: vpc_uses(resource, USED_BY_STUDIO),
)
