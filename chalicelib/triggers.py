"""Trigger: every event shape -> resource references (which resources to read), and the EventBridge
patterns, derived from the resource types the controls cover.

The event only says *which* resource to look at; its state is always read afresh (collect.py).
Malformed events raise InvalidEvent; well-formed events that are not ours (another source, a call
that failed, an unsupported call) raise IgnoredEvent. Both are logged with the event id and skipped.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from .errors import IgnoredEvent, InvalidEvent
from .model import NOTEBOOK, SECURITY_GROUP, EventContext, ResourceRef, Trigger

API_CALL = "AWS API Call via CloudTrail"
NOTEBOOK_STATE_CHANGE = "SageMaker Notebook Instance State Change"

# CloudTrail calls that can introduce a violation, per resource type the controls cover.
API_CALLS: dict[str, dict[str, tuple[str, ...]]] = {
    NOTEBOOK: {"aws.sagemaker": ("CreateNotebookInstance", "UpdateNotebookInstance", "StartNotebookInstance")},
    SECURITY_GROUP: {"aws.ec2": ("CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules")},
}
EVENT_SOURCES = {"aws.sagemaker": "sagemaker.amazonaws.com", "aws.ec2": "ec2.amazonaws.com"}
# Notebook states in which netguard has something to do: defer (Pending) or stop (InService).
NOTEBOOK_STATES = ("Pending", "InService")

ACCOUNT_RE = re.compile(r"^\d{12}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
NOTEBOOK_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
SG_ID_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")


def api_call_pattern(resource_types: Iterable[str]) -> dict[str, Any]:
    """The EventBridge pattern of on_api_call: CloudTrail calls of the covered types that succeeded."""
    sources: dict[str, list[str]] = {}
    for rtype in sorted(set(resource_types)):
        for source, names in API_CALLS.get(rtype, {}).items():
            sources.setdefault(source, []).extend(names)
    return {
        "source": sorted(sources),
        "detail-type": [API_CALL],
        "detail": {
            "eventSource": sorted(EVENT_SOURCES[s] for s in sources),
            "eventName": sorted(n for names in sources.values() for n in names),
            "errorCode": [{"exists": False}],
        },
    }


def state_change_pattern() -> dict[str, Any]:
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [NOTEBOOK_STATE_CHANGE],
        "detail": {"NotebookInstanceStatus": list(NOTEBOOK_STATES)},
    }


def _envelope(event: Any, detail_type: str) -> tuple[str, str, str, Mapping[str, Any]]:
    """(event id, account, region, detail) of a valid EventBridge envelope of `detail_type`."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"event is a {type(event).__name__}, not an object")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 128:
        raise InvalidEvent("missing or invalid 'id'")
    source, dtype = event.get("source"), event.get("detail-type")
    if not isinstance(source, str) or not isinstance(dtype, str):
        raise InvalidEvent("missing 'source' or 'detail-type'", event_id)
    if not source.startswith("aws."):
        raise IgnoredEvent(f"source {source[:64]!r} is not an AWS service", event_id)
    if dtype != detail_type:
        raise IgnoredEvent(f"detail-type {dtype[:64]!r} is not {detail_type!r}", event_id)
    account, region, detail = event.get("account"), event.get("region"), event.get("detail")
    if not isinstance(account, str) or not ACCOUNT_RE.match(account):
        raise InvalidEvent("missing or invalid 'account'", event_id)
    if not isinstance(region, str) or not REGION_RE.match(region):
        raise InvalidEvent("missing or invalid 'region'", event_id)
    if not isinstance(detail, Mapping):
        raise InvalidEvent("missing or invalid 'detail'", event_id)
    return event_id, account, region, detail


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _notebook_ref(name: Any, account: str, region: str, event_id: str) -> ResourceRef:
    if not isinstance(name, str) or not NOTEBOOK_NAME_RE.match(name):
        raise InvalidEvent("missing or invalid notebook instance name", event_id)
    return ResourceRef(NOTEBOOK, name, account, region)


def _sg_ref(group_id: Any, account: str, region: str, event_id: str) -> ResourceRef:
    if not isinstance(group_id, str) or not SG_ID_RE.match(group_id):
        raise InvalidEvent("missing or invalid security group id", event_id)
    return ResourceRef(SECURITY_GROUP, group_id, account, region)


def _group_ids_of(name: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> list[Any]:
    """Security group ids named by a CloudTrail record, in both record formats."""
    if name == "CreateSecurityGroup":
        return [response.get("groupId")]
    if name == "ModifySecurityGroupRules":
        wrapped = request.get("ModifySecurityGroupRulesRequest")
        inner = wrapped if isinstance(wrapped, Mapping) else request
        return [inner.get("GroupId") or inner.get("groupId")]
    ids: list[Any] = []
    rule_set = response.get("securityGroupRuleSet")  # eventVersion >= 1.08 records
    if isinstance(rule_set, Mapping) and isinstance(rule_set.get("items"), list):
        ids = [item.get("groupId") for item in rule_set["items"] if isinstance(item, Mapping)]
    if request.get("groupId") is not None or not ids:
        ids.insert(0, request.get("groupId"))
    return ids


def from_api_call(event: Any, resource_types: Iterable[str] = (NOTEBOOK, SECURITY_GROUP)) -> Trigger:
    """An EventBridge 'AWS API Call via CloudTrail' event -> the resources it created or changed."""
    event_id, account, region, detail = _envelope(event, API_CALL)
    if detail.get("errorCode") is not None:
        raise IgnoredEvent(f"the call failed ({str(detail.get('errorCode'))[:64]}): nothing changed", event_id)
    name = detail.get("eventName")
    if not isinstance(name, str):
        raise InvalidEvent("missing 'detail.eventName'", event_id)
    rtype = next((t for t in resource_types for names in API_CALLS.get(t, {}).values() if name in names), None)
    if rtype is None:
        raise IgnoredEvent(f"eventName {name[:64]!r} is not watched", event_id)
    request = detail.get("requestParameters")
    response = detail.get("responseElements")
    request = request if isinstance(request, Mapping) else {}
    response = response if isinstance(response, Mapping) else {}
    if rtype == NOTEBOOK:
        refs = [_notebook_ref(request.get("notebookInstanceName"), account, region, event_id)]
    else:
        refs = [_sg_ref(g, account, region, event_id) for g in _group_ids_of(name, request, response)]
    identity = detail.get("userIdentity")
    principal = _str(identity.get("arn")) if isinstance(identity, Mapping) else None
    context = EventContext(event_id, "api-call", name, principal, _str(detail.get("eventTime")))
    return Trigger(context, tuple(dict.fromkeys(refs)))


def from_state_change(event: Any) -> Trigger:
    """A 'SageMaker Notebook Instance State Change' event -> the notebook (re-read, not trusted)."""
    event_id, account, region, detail = _envelope(event, NOTEBOOK_STATE_CHANGE)
    status = detail.get("NotebookInstanceStatus")
    if not isinstance(status, str):
        raise InvalidEvent("missing 'detail.NotebookInstanceStatus'", event_id)
    ref = _notebook_ref(detail.get("NotebookInstanceName"), account, region, event_id)
    context = EventContext(event_id, "state-change", f"NotebookInstanceStatus={status[:32]}", None,
                           _str(event.get("time")))
    return Trigger(context, (ref,))
