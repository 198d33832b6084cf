"""Act: the remediations, by name (ACTIONS): each action declared in chalicelib/actions/catalog.py bound to its
code in the family's module (its "do", and the "undo" restore plans). Only the stages that act import this
module (the pipeline, restore); the pure ones (policy, decide) read the declarations alone."""
from __future__ import annotations

from .actions import catalog
from .actions.base import Action, ActionRequest, ActionResult, bind
from .actions.catalog import CREATED_BY_TAG, OWNER_TAG, QUARANTINE_TAG
from .actions.domain import domain_vpc_only, plan_domain
from .actions.jobs import stop_job
from .actions.notebook import plan_notebook, quarantine_notebook
from .actions.security_group import RULE_GONE, plan_rules, revoke_rules
from .actions.spec import ActionSpec
from .actions.subnet import disable_public_ip_on_launch, plan_public_ip
from .actions.tags import TAG_VALUE_MAX, plan_owner, tag_owner, tag_value
from .actions.vpc import (
    AWS_OWNED_BUCKETS,
    EC2_TAGS_MAX,
    KEPT_TAGS,
    create_flow_log_all,
    create_s3_gateway_endpoint,
    deliberate_s3_policy,
    enable_vpc_dns,
    plan_flow_log,
    plan_s3_endpoint,
    plan_vpc_dns,
)
from .actions.vpc_endpoint import enable_private_dns, plan_private_dns

BOUND: tuple[Action, ...] = (
    bind(catalog.QUARANTINE_NOTEBOOK, quarantine_notebook, plan_notebook),
    bind(catalog.STOP_JOB, stop_job),  # irreversible: restore refuses
    bind(catalog.ENABLE_VPC_DNS, enable_vpc_dns, plan_vpc_dns),
    bind(catalog.CREATE_FLOW_LOG_ALL, create_flow_log_all, plan_flow_log),
    bind(catalog.DISABLE_PUBLIC_IP_ON_LAUNCH, disable_public_ip_on_launch, plan_public_ip),
    bind(catalog.CREATE_S3_GATEWAY_ENDPOINT, create_s3_gateway_endpoint, plan_s3_endpoint),
    bind(catalog.ENABLE_PRIVATE_DNS, enable_private_dns, plan_private_dns),
    bind(catalog.DOMAIN_VPC_ONLY, domain_vpc_only, plan_domain),
    bind(catalog.REVOKE_RULES, revoke_rules, plan_rules),
    bind(catalog.TAG_OWNER, tag_owner, plan_owner),
)
ACTIONS: dict[str, Action] = {action.name: action for action in BOUND}
ACTION_SPECS = catalog.ACTION_SPECS

__all__ = [
    "ACTIONS", "ACTION_SPECS", "AWS_OWNED_BUCKETS", "BOUND", "CREATED_BY_TAG", "EC2_TAGS_MAX", "KEPT_TAGS",
    "OWNER_TAG", "QUARANTINE_TAG", "RULE_GONE", "TAG_VALUE_MAX", "Action", "ActionRequest", "ActionResult",
    "ActionSpec", "create_flow_log_all", "create_s3_gateway_endpoint", "deliberate_s3_policy",
    "disable_public_ip_on_launch", "domain_vpc_only", "enable_private_dns", "enable_vpc_dns", "quarantine_notebook",
    "revoke_rules", "stop_job", "tag_owner", "tag_value",
]
