"""Act: the remediations, by name (ACTIONS). They live in `chalicelib.actions`, one module per family of
resource with each action's restore plan beside it; this module keeps the names other modules import."""
from __future__ import annotations

from .actions import ACTION_SPECS, ACTIONS
from .actions.base import ActionRequest, ActionResult, ActionSpec
from .actions.domain import domain_vpc_only
from .actions.jobs import stop_job
from .actions.notebook import QUARANTINE_TAG, quarantine_notebook
from .actions.security_group import RULE_GONE, revoke_rules
from .actions.subnet import disable_public_ip_on_launch
from .actions.tags import OWNER_TAG, TAG_VALUE_MAX, tag_owner, tag_value
from .actions.vpc import (
    AWS_OWNED_BUCKETS,
    CREATED_BY_TAG,
    EC2_TAGS_MAX,
    KEPT_TAGS,
    create_flow_log_all,
    create_s3_gateway_endpoint,
    deliberate_s3_policy,
    enable_vpc_dns,
)
from .actions.vpc_endpoint import enable_private_dns

__all__ = [
    "ACTIONS", "ACTION_SPECS", "AWS_OWNED_BUCKETS", "CREATED_BY_TAG", "EC2_TAGS_MAX", "KEPT_TAGS", "OWNER_TAG",
    "QUARANTINE_TAG", "RULE_GONE", "TAG_VALUE_MAX", "ActionRequest", "ActionResult", "ActionSpec",
    "create_flow_log_all", "create_s3_gateway_endpoint", "deliberate_s3_policy", "disable_public_ip_on_launch",
    "domain_vpc_only", "enable_private_dns", "enable_vpc_dns", "quarantine_notebook", "revoke_rules", "stop_job",
    "tag_owner", "tag_value",
]
