"""Route tables: never evaluated themselves; a changed one re-evaluates its subnets and what uses them
(NB.3, JOB.2, MD.2, DM.2). They are read through Lookups (a subnet's effective route table)."""
from __future__ import annotations

from ..model import (
    DOMAIN,
    MODEL,
    NOTEBOOK,
    PROCESSING_JOB,
    ROUTE_TABLE,
    SUBNET,
    TRAINING_JOB,
    TRANSFORM_JOB,
    TUNING_JOB,
)
from .base import ResourceType, ec2_id_re

TYPE = ResourceType(
    type=ROUTE_TABLE, service="ec2", arn_resource="route-table", id_pattern=ec2_id_re("rtb"),
    api_calls=("CreateRoute", "ReplaceRoute", "AssociateRouteTable", "ReplaceRouteTableAssociation"),
    dependents=(SUBNET, NOTEBOOK, TRAINING_JOB, PROCESSING_JOB, TUNING_JOB, TRANSFORM_JOB, MODEL, DOMAIN),
    taggable=False,
)
