"""SageMaker notebook instances: their internet access, root access, subnet and security groups."""
from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ..model import NOTEBOOK, Resource, ResourceRef
from ..reads import missing, sagemaker_tags_of
from .base import (
    SAGEMAKER_NAME_RE,
    TAG_FIELDS,
    USED_BY_NOTEBOOK,
    USED_BY_SAGEMAKER,
    Listing,
    ResourceType,
    StateChange,
    network_uses,
)


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    try:
        nb = lookups.sagemaker.describe_notebook_instance(NotebookInstanceName=ref.resource_id)
    except ClientError as exc:
        if missing(exc):
            return None
        raise
    arn = nb["NotebookInstanceArn"]
    tags = sagemaker_tags_of(lookups, arn)
    subnet_id = nb.get("SubnetId")
    state: dict[str, Any] = {
        "NotebookInstanceName": nb["NotebookInstanceName"],
        "NotebookInstanceStatus": nb.get("NotebookInstanceStatus"),
        "DirectInternetAccess": nb.get("DirectInternetAccess"),
        "RootAccess": nb.get("RootAccess"),
        "SubnetId": subnet_id,
        "SecurityGroups": list(nb.get("SecurityGroups", [])),
        "InstanceType": nb.get("InstanceType"),
    }
    if subnet_id:
        state["Subnet"] = lookups.subnet_view(subnet_id)
    version = f"{nb.get('NotebookInstanceStatus')}@{nb.get('LastModifiedTime')}"
    return Resource(ref, arn, state, tags, version)


def related(resource: Resource) -> list[tuple[ResourceRef, set[str]]]:
    state = resource.state
    subnets = [state["SubnetId"]] if state.get("SubnetId") else []
    return network_uses(resource.ref, {USED_BY_NOTEBOOK, USED_BY_SAGEMAKER}, state.get("SecurityGroups", []),
                        subnets, (state.get("Subnet") or {}).get("VpcId"))


TYPE = ResourceType(
    type=NOTEBOOK, service="sagemaker", arn_resource="notebook-instance", id_pattern=SAGEMAKER_NAME_RE,
    api_calls=("CreateNotebookInstance", "UpdateNotebookInstance", "StartNotebookInstance"),
    name_fields={"CreateNotebookInstance": "notebookInstanceName", "UpdateNotebookInstance": "notebookInstanceName",
                 "StartNotebookInstance": "notebookInstanceName"},
    # defer (Pending) or stop (InService)
    state_change=StateChange("SageMaker Notebook Instance State Change", "NotebookInstanceName",
                             "NotebookInstanceStatus", ("Pending", "InService")),
    listing=Listing(lambda sagemaker: sagemaker.get_paginator("list_notebook_instances"), "NotebookInstances",
                    "NotebookInstanceName"),
    config_recorded=True,
    reads=("sagemaker:DescribeNotebookInstance",),
    state_fields=frozenset({"NotebookInstanceName", "NotebookInstanceStatus", "DirectInternetAccess", "RootAccess",
                            "SubnetId", "SecurityGroups", "InstanceType", "Subnet"}) | TAG_FIELDS,
    collect=collect, related=related,
)
