"""EFS mount targets of SageMaker Studio's home file systems: the subnet and security groups through which
every Studio user's home directory is reached (EFS.1).

Studio creates one EFS file system per domain (its HomeEfsFileSystemId), tagged
ManagedByAmazonSageMakerResource with the domain's ARN, and a mount target in each of the domain's
subnets. A mount target has no ARN or tags of its own: netguard names it by its file system's ARN and
reads whether it is Studio's from that file system's tags. Mount targets of other file systems are read
(an event names them) but not SageMaker's: the controls on them do not apply, and their security groups
are not counted as used by SageMaker.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ..aws import error_code
from ..model import Resource, ResourceRef
from ..reads import tags_from_list
from .base import (
    TAG_FIELDS,
    USED_BY_SAGEMAKER,
    USED_BY_STUDIO,
    Listing,
    ResourceType,
    in_vpc,
    network_uses,
)

MOUNT_TARGET = "AWS::EFS::MountTarget"
STUDIO_TAG = "ManagedByAmazonSageMakerResource"  # on the home file system Studio creates: the domain's ARN
ID_RE = re.compile(r"^fsmt-[0-9a-f]{8,40}\Z")  # botocore's MountTargetId pattern


def _studio_tag(system: Mapping[str, Any]) -> str | None:
    """The Studio domain a file system (DescribeFileSystems item) belongs to, from Studio's tag."""
    return tags_from_list(system.get("Tags")).get(STUDIO_TAG) or None


def _studio_domain(efs: Any, file_system_id: str) -> tuple[str | None, str | None]:
    """(the file system's ARN, the Studio domain ARN it belongs to, if any)."""
    try:
        systems = efs.describe_file_systems(FileSystemId=file_system_id).get("FileSystems") or []
    except ClientError as exc:
        if error_code(exc) == "FileSystemNotFound":
            return None, None
        raise
    system = systems[0] if systems else {}
    return system.get("FileSystemArn"), _studio_tag(system)


def collect(lookups: Any, ref: ResourceRef, hints: frozenset) -> Resource | None:
    efs = lookups.clients.client("efs", lookups.region, lookups.account)
    try:
        found = efs.describe_mount_targets(MountTargetId=ref.resource_id).get("MountTargets") or []
        groups = efs.describe_mount_target_security_groups(MountTargetId=ref.resource_id).get("SecurityGroups", [])
    except ClientError as exc:
        if error_code(exc) == "MountTargetNotFound":
            return None
        raise
    if not found or found[0].get("LifeCycleState") in ("deleting", "deleted"):
        return None
    target = found[0]
    file_system_arn, domain = _studio_domain(efs, target["FileSystemId"])
    subnet_id = target.get("SubnetId")
    state: dict[str, Any] = {
        "MountTargetId": target["MountTargetId"],
        "FileSystemId": target["FileSystemId"],
        "LifeCycleState": target.get("LifeCycleState"),
        "SubnetId": subnet_id,
        "VpcId": target.get("VpcId"),
        "SecurityGroups": sorted(groups),
        "StudioDomain": domain,
        "UsedBySageMaker": domain is not None,
        "Subnet": lookups.subnet_view(subnet_id) if subnet_id else None,
    }
    in_vpc(lookups, state, [subnet_id] if subnet_id else [])
    arn = file_system_arn or TYPE.arn(ref.region, ref.account, target["FileSystemId"])
    return Resource(ref, arn, state, {}, version=str(target.get("LifeCycleState")))


def related(resource: Resource) -> list[tuple[ResourceRef, set[str]]]:
    """A Studio mount target's security groups and subnet are used by Studio (SG.1/SG.2 scope them)."""
    state = resource.state
    if not state.get("UsedBySageMaker"):
        return []
    subnets = [state["SubnetId"]] if state.get("SubnetId") else []
    return network_uses(resource.ref, {USED_BY_STUDIO, USED_BY_SAGEMAKER}, state.get("SecurityGroups", []), subnets,
                        state.get("VpcId"))


def studio_mount_targets(efs: Any, system: Mapping[str, Any]) -> list[str]:
    """The mount targets of a file system Studio manages (its tag says so); none of any other."""
    if _studio_tag(system) is None:
        return []
    return [t["MountTargetId"] for page in efs.get_paginator("describe_mount_targets").paginate(
        FileSystemId=system["FileSystemId"]) for t in page.get("MountTargets", [])]


TYPE = ResourceType(
    type=MOUNT_TARGET, service="efs", namespace="elasticfilesystem", arn_resource="file-system",
    id_pattern=ID_RE,
    # CreateMountTarget answers with the id; ModifyMountTargetSecurityGroups names it
    api_calls=("CreateMountTarget", "ModifyMountTargetSecurityGroups"),
    listing=Listing(lambda efs: efs.get_paginator("describe_file_systems"), "FileSystems", "FileSystemId",
                    expand=studio_mount_targets),
    reads=("elasticfilesystem:DescribeFileSystems", "elasticfilesystem:DescribeMountTargets",
           "elasticfilesystem:DescribeMountTargetSecurityGroups"),
    # DescribeMountTargetSecurityGroups also needs this on the mount target's network interface (IAM
    # cannot scope it to a resource)
    extra_reads=({"Sid": "ReadMountTargetInterfaces", "Effect": "Allow",
                  "Action": "ec2:DescribeNetworkInterfaceAttribute", "Resource": "*"},),
    state_fields=frozenset({"MountTargetId", "FileSystemId", "LifeCycleState", "SubnetId", "VpcId", "SecurityGroups",
                            "StudioDomain", "UsedBySageMaker", "Subnet", "SubnetViews", "AvailabilityZones"})
    | TAG_FIELDS,
    collect=collect, related=related, taggable=False,
)
