"""Flow logs: never evaluated themselves; a deleted one re-evaluates its VPC (VPC.3). The ledger's index
remembers which VPC each flow log belongs to (a deleted flow log can no longer be described)."""
from __future__ import annotations

from ..model import FLOW_LOG, VPC
from .base import ResourceType, ec2_id_re

TYPE = ResourceType(
    type=FLOW_LOG, service="ec2", arn_resource="vpc-flow-log", id_pattern=ec2_id_re("fl"),
    api_calls=("DeleteFlowLogs",), dependents=(VPC,), taggable=False,
)
