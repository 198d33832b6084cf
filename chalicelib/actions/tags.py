"""Tags: the Owner tag from the CloudTrail principal that made the change (on any resource type); restore
removes it, or puts the previous value back. `tag_call` also serves the notebook's quarantine tag."""
from __future__ import annotations

import unicodedata

from ..model import ALREADY_DONE, SUCCEEDED, ResourceRef
from ..resources import SAGEMAKER as SAGEMAKER_TYPES
from .base import (
    EC2,
    SAGEMAKER,
    ActionRequest,
    ActionResult,
    Call,
    Plan,
    RestoreRequest,
    check,
    make,
)
from .catalog import OWNER_TAG

TAG_VALUE_MAX = 256  # SageMaker and EC2 alike
_SAGEMAKER_TAG_PUNCTUATION = frozenset("_.:/=+-@")


def tag_value(text: str, sagemaker: bool) -> str:
    """`text` as a tag value the service takes: at most 256 characters (the middle of a longer one cut,
    so that an ARN keeps its account and its session name), and for SageMaker only the characters of its
    TagValue pattern (letters, numbers, separators, `_.:/=+-@`; a comma, allowed in role session names,
    is not): the others become `_`."""
    if sagemaker:
        text = "".join(ch if ch.isalpha() or ch.isnumeric() or unicodedata.category(ch).startswith("Z")
                       or ch in _SAGEMAKER_TAG_PUNCTUATION else "_" for ch in text)
    if len(text) > TAG_VALUE_MAX:
        text = text[:120] + "..." + text[-(TAG_VALUE_MAX - 123):]
    return text


def tag_owner(req: ActionRequest) -> ActionResult:
    """Add the Owner tag from the CloudTrail principal that made the change."""
    if req.resource.tags.get(OWNER_TAG):
        return ActionResult(ALREADY_DONE, "Owner tag already present")
    resource = req.resource
    owner = tag_value(str(req.context.principal), resource.ref.resource_type in SAGEMAKER_TYPES)
    says = f"tagged {OWNER_TAG}={owner}"
    if resource.ref.resource_type in SAGEMAKER_TYPES:
        call = SAGEMAKER.add_tags(ResourceArn=resource.arn, Tags=[{"Key": OWNER_TAG, "Value": owner}], says=says)
    else:
        call = EC2.create_tags(Resources=[resource.ref.resource_id], Tags=[{"Key": OWNER_TAG, "Value": owner}],
                               says=says)
    check(make(call, req.client), "AddTags/CreateTags")
    return ActionResult(SUCCEEDED, says)


def tag_call(ref: ResourceRef, arn: str, key: str, value: str | None) -> Call:
    """Put `key`=value back, or delete `key` (value None), on a SageMaker or an EC2 resource."""
    if ref.resource_type in SAGEMAKER_TYPES:
        if value is None:
            return Call("sagemaker", "DeleteTags", {"ResourceArn": arn, "TagKeys": [key]}, f"remove the tag {key}")
        return Call("sagemaker", "AddTags", {"ResourceArn": arn, "Tags": [{"Key": key, "Value": value}]},
                    f"put the tag {key}={value} back")
    if value is None:
        return Call("ec2", "DeleteTags", {"Resources": [ref.resource_id], "Tags": [{"Key": key}]},
                    f"remove the tag {key}")
    return Call("ec2", "CreateTags", {"Resources": [ref.resource_id], "Tags": [{"Key": key, "Value": value}]},
                f"put the tag {key}={value} back")


def plan_owner(req: RestoreRequest) -> Plan:
    """Remove the Owner tag netguard added (or put the previous value back). An Owner someone set
    since netguard's is theirs: left."""
    old, now = req.record.before.get(OWNER_TAG), req.current.tags.get(OWNER_TAG)
    if now == old:
        return Plan(unchanged=(f"{OWNER_TAG} is {'absent' if old is None else repr(old)}, as before",))
    prefix = f"tagged {OWNER_TAG}="
    set_by_netguard = req.record.detail[len(prefix):] if req.record.detail.startswith(prefix) else None
    if now is not None and set_by_netguard is not None and now != set_by_netguard:
        return Plan(unchanged=(f"{OWNER_TAG} is now {now!r}, not netguard's {set_by_netguard!r}: changed since, left",))
    return Plan((tag_call(req.record.ref, req.current.arn, OWNER_TAG, old),))
