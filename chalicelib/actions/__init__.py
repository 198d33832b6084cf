"""Act: named, idempotent remediations, each with its restore plan. The only package that writes to the
resources we guard.

One module per family of resource (notebook, jobs, vpc, subnet, vpc_endpoint, domain, security_group, tags),
each holding its actions' "do" (the remediation) next to their "undo" (the restore plan); `base` holds what
they are made of and the one executor of their AWS calls. ACTION_SPECS lists every action, explicitly:
importing a module registers nothing.
"""
from __future__ import annotations

from collections.abc import Mapping

from .base import ActionRequest, ActionResult, ActionSpec, Call, Made, Plan, RestoreRequest, execute, make
from .domain import DOMAIN_VPC_ONLY
from .jobs import STOP_JOB
from .notebook import QUARANTINE_NOTEBOOK, QUARANTINE_TAG
from .security_group import REVOKE_RULES
from .subnet import DISABLE_PUBLIC_IP_ON_LAUNCH
from .tags import OWNER_TAG, TAG_OWNER
from .vpc import CREATE_FLOW_LOG_ALL, CREATE_S3_GATEWAY_ENDPOINT, CREATED_BY_TAG, ENABLE_VPC_DNS
from .vpc_endpoint import ENABLE_PRIVATE_DNS

ACTION_SPECS: tuple[ActionSpec, ...] = (
    QUARANTINE_NOTEBOOK,
    STOP_JOB,
    ENABLE_VPC_DNS,
    CREATE_FLOW_LOG_ALL,
    DISABLE_PUBLIC_IP_ON_LAUNCH,
    CREATE_S3_GATEWAY_ENDPOINT,
    ENABLE_PRIVATE_DNS,
    DOMAIN_VPC_ONLY,
    REVOKE_RULES,
    TAG_OWNER,
)
ACTIONS: dict[str, ActionSpec] = {spec.name: spec for spec in ACTION_SPECS}


def acts_on(specs: tuple[ActionSpec, ...] = ACTION_SPECS) -> Mapping[str, tuple[str, ...]]:
    """The resource types each action acts on, by action name."""
    return {spec.name: spec.resource_types for spec in specs}


__all__ = [
    "ACTIONS", "ACTION_SPECS", "CREATED_BY_TAG", "OWNER_TAG", "QUARANTINE_TAG", "ActionRequest", "ActionResult",
    "ActionSpec", "Call", "Made", "Plan", "RestoreRequest", "acts_on", "execute", "make",
]
