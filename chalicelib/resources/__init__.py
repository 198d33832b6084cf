"""The resource types netguard knows, one module each (see base.ResourceType), in one explicit registry.

Order matters: users come before what they use (a notebook before its subnet and security groups), so
that when the Collector reads a network resource it already knows what kind of users it has. Shared
resources that are never evaluated (route tables, flow logs) come last. Importing this package has no
side effect beyond building the tuple.
"""
from __future__ import annotations

from . import (
    domain,
    efs_mount_target,
    endpoint,
    endpoint_config,
    flow_log,
    jobs,
    model,
    notebook,
    route_table,
    security_group,
    subnet,
    vpc,
    vpc_endpoint,
)
from .base import ResourceType

REGISTRY: tuple[ResourceType, ...] = (
    notebook.TYPE,
    jobs.TRAINING,
    jobs.PROCESSING,
    jobs.TUNING,
    jobs.TRANSFORM,
    endpoint.TYPE,
    endpoint_config.TYPE,
    model.TYPE,
    domain.TYPE,
    efs_mount_target.TYPE,
    subnet.TYPE,
    vpc.TYPE,
    vpc_endpoint.TYPE,
    security_group.TYPE,
    route_table.TYPE,
    flow_log.TYPE,
)

BY_TYPE: dict[str, ResourceType] = {t.type: t for t in REGISTRY}
# What controls can cover (evaluated types), and those read from SageMaker.
EVALUATED: tuple[str, ...] = tuple(t.type for t in REGISTRY if t.evaluated)
SAGEMAKER: tuple[str, ...] = tuple(t.type for t in REGISTRY if t.evaluated and t.service == "sagemaker")
NETWORK: tuple[str, ...] = tuple(t.type for t in REGISTRY if t.evaluated and t.service == "ec2")
CONFIG_RECORDED: tuple[str, ...] = tuple(t.type for t in REGISTRY if t.config_recorded)


def get(resource_type: str) -> ResourceType | None:
    return BY_TYPE.get(resource_type)
