"""Trigger: every event shape -> resource references (which resources to read), and the EventBridge
patterns, derived from the resource types the controls cover.

The event only says *which* resource to look at; its state is always read afresh (collect.py).
Malformed events raise InvalidEvent; well-formed events that are not ours (another source, a call
that failed, an unsupported call) raise IgnoredEvent. Both are logged with the event id and skipped.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import IgnoredEvent, InvalidEvent
from .model import EventContext, ResourceRef, Trigger
from .resources import BY_TYPE, REGISTRY, SAGEMAKER

API_CALL = "AWS API Call via CloudTrail"
# tagging calls (TAG.1, exemption tags): they name resources of any covered type
EC2_TAGS, SAGEMAKER_TAGS = "tags:ec2", "tags:sagemaker"
TAGS = (EC2_TAGS, SAGEMAKER_TAGS)

# CloudTrail calls that can introduce a violation, per resource type (resources.REGISTRY): a shared
# resource's calls (a changed route table, a deleted flow log) re-evaluate what depends on it.
API_CALLS: dict[str, dict[str, tuple[str, ...]]] = {
    **{t.type: {t.event_source: t.api_calls} for t in REGISTRY if t.api_calls},
    EC2_TAGS: {"aws.ec2": ("CreateTags", "DeleteTags")},
    SAGEMAKER_TAGS: {"aws.sagemaker": ("AddTags", "DeleteTags")},
}
# EventBridge source -> CloudTrail eventSource (aws.ec2 -> ec2.amazonaws.com)
EVENT_SOURCES = {source: f"{source[len('aws.'):]}.amazonaws.com" for calls in API_CALLS.values() for source in calls}

# Native SageMaker state-change events: (resource type, name field, status field, statuses that need work).
STATE_CHANGES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    t.state_change.detail_type: (t.type, t.state_change.name_field, t.state_change.status_field,
                                 t.state_change.statuses)
    for t in REGISTRY if t.state_change is not None}
NOTEBOOK_STATE_CHANGE = "SageMaker Notebook Instance State Change"

# The whole string (\Z: `$` also matches before a final newline), ASCII digits only (`\d` alone also
# matches "１２３..." and other scripts' digits, which no AWS id has).
ACCOUNT_RE = re.compile(r"^\d{12}\Z", re.ASCII)
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d\Z", re.ASCII)
PRINCIPAL_MAX = 2048  # an IAM ARN's limit
# What a change to a shared resource can make non-compliant: watch it when those types are covered.
DEPENDENTS = {t.type: t.dependents for t in REGISTRY if t.dependents}
# Where tagging calls name covered resources: EC2 ids, SageMaker ARNs (arn:...:<arn_resource>/<id>).
_EC2_TAGGABLE = tuple(t for t in REGISTRY if t.taggable and t.evaluated and t.service == "ec2")
ARN_TYPES = {t.arn_resource: t for t in REGISTRY if t.taggable and t.evaluated and t.service == "sagemaker"}


def watched_types(covered: Iterable[str]) -> list[str]:
    """The covered types, and the shared resources whose changes re-evaluate them."""
    covered = set(covered)
    tags = set()
    if covered & {t.type for t in _EC2_TAGGABLE}:
        tags.add(EC2_TAGS)
    if covered & set(SAGEMAKER):
        tags.add(SAGEMAKER_TAGS)
    return sorted(covered | {shared for shared, users in DEPENDENTS.items() if covered & set(users)} | tags)


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
            "eventName": sorted({n for names in sources.values() for n in names}),
            "errorCode": [{"exists": False}],
        },
    }


def state_change_pattern(resource_types: Iterable[str]) -> dict[str, Any]:
    """The pattern of on_state_change: the covered types' native events (statuses are filtered in code:
    one pattern cannot give each detail-type its own status field without $or)."""
    wanted = set(resource_types)
    return {
        "source": ["aws.sagemaker"],
        "detail-type": sorted(dtype for dtype, spec in STATE_CHANGES.items() if spec[0] in wanted),
    }


def _envelope(event: Any, detail_types: Iterable[str]) -> tuple[str, str, str, Mapping[str, Any]]:
    """(event id, account, region, detail) of a valid EventBridge envelope of one of `detail_types`."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"event is a {type(event).__name__}, not an object")
    event_id = clean_text(event.get("id"), 128)
    if event_id is None:
        raise InvalidEvent("missing or invalid 'id'")
    source, dtype = event.get("source"), event.get("detail-type")
    if not isinstance(source, str) or not isinstance(dtype, str):
        raise InvalidEvent("missing 'source' or 'detail-type'", event_id)
    if not source.startswith("aws."):
        raise IgnoredEvent(f"source {source[:64]!r} is not an AWS service", event_id)
    if dtype not in detail_types:
        raise IgnoredEvent(f"detail-type {dtype[:64]!r} is not handled here", event_id)
    account, region, detail = event.get("account"), event.get("region"), event.get("detail")
    if not isinstance(account, str) or not ACCOUNT_RE.match(account):
        raise InvalidEvent("missing or invalid 'account'", event_id)
    if not isinstance(region, str) or not REGION_RE.match(region):
        raise InvalidEvent("missing or invalid 'region'", event_id)
    if not isinstance(detail, Mapping):
        raise InvalidEvent("missing or invalid 'detail'", event_id)
    return event_id, account, region, detail


def clean_text(value: Any, limit: int) -> str | None:
    """`value` when it is a string of 1 to `limit` printable characters, else None. What comes from an
    event and goes on into the ledger, alerts or an AWS call must be printable: a lone surrogate
    ("\\ud800" in the JSON) cannot be encoded as UTF-8, and the call sending it would fail."""
    return value if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable() else None


def _ref(rtype: str, resource_id: Any, account: str, region: str, event_id: str, what: str = "id") -> ResourceRef:
    """A ref to what an event names, when it is an id (`what`: a SageMaker name) of the type's pattern."""
    if not isinstance(resource_id, str) or not BY_TYPE[rtype].id_pattern.match(resource_id):
        raise InvalidEvent(f"missing or invalid {rtype.rsplit('::', 1)[-1]} {what}", event_id)
    return ResourceRef(rtype, resource_id, account, region)


def _ids_in(value: Any, pattern: re.Pattern[str], depth: int = 0) -> list[str]:
    """Every string matching `pattern` anywhere in a CloudTrail request or response (EC2 wraps its
    parameters differently from call to call); bounded in depth."""
    if depth > 8:
        return []
    if isinstance(value, str):
        return [value] if pattern.match(value) else []
    if isinstance(value, Mapping):
        return [i for v in value.values() for i in _ids_in(v, pattern, depth + 1)]
    if isinstance(value, list):
        return [i for v in value[:100] for i in _ids_in(v, pattern, depth + 1)]
    return []


EXEMPT_TAG_PREFIX = "netguard:exempt"  # netguard:exempt, netguard:exempt-until, netguard:exempt-reason
_TAG_KEYS, _TAG_VALUES, _TAG_KEY_LISTS = ("key", "Key"), ("value", "Value"), ("tagKeys", "TagKeys")


def exemption_tags(name: str, request: Any, depth: int = 0) -> list[tuple[str, str | None]]:
    """The netguard:exempt* tags a CloudTrail request sets, (key, value), or removes, (key, None): in a
    tagging call (EC2 tagSet, SageMaker tags / tagKeys) or at creation (tags, tag specifications),
    wherever the request carries them; bounded in depth."""
    if depth > 8:
        return []
    found: list[tuple[str, str | None]] = []
    if isinstance(request, Mapping):
        key = next((request[k] for k in _TAG_KEYS if isinstance(request.get(k), str)), None)
        if key is not None and key.startswith(EXEMPT_TAG_PREFIX):
            value = next((request[v] for v in _TAG_VALUES if isinstance(request.get(v), str)), None)
            found.append((key[:128], None if name == "DeleteTags" else clean_text(value, 256) or ""))
        for k in _TAG_KEY_LISTS:
            if isinstance(request.get(k), list):
                found += [(t[:128], None) for t in request[k][:100] if isinstance(t, str)
                          and t.startswith(EXEMPT_TAG_PREFIX)]
        values: Iterable[Any] = request.values()
    elif isinstance(request, list):
        values = request[:100]
    else:
        return []
    for value in values:
        if isinstance(value, (Mapping, list)):
            found += exemption_tags(name, value, depth + 1)
    return found


def _tagged_refs(request: Mapping[str, Any], account: str, region: str) -> list[ResourceRef]:
    """The covered resources a tagging call names: EC2 ids, or a SageMaker ARN. SageMaker ARNs are
    lower-cased while names keep their case: a name with capitals read from an ARN is not found (reported
    missing, nothing acted on) and the tag change is evaluated at the resource's next event or scan."""
    refs = [ResourceRef(rtype.type, i, account, region) for rtype in _EC2_TAGGABLE
            for i in _ids_in(request, rtype.id_pattern)]
    arn = request.get("resourceArn")
    if isinstance(arn, str) and arn.startswith("arn:aws") and arn.count(":") >= 5:
        kind, _, name = arn.split(":", 5)[5].partition("/")
        if kind in ARN_TYPES and ARN_TYPES[kind].id_pattern.match(name):
            refs.append(ResourceRef(ARN_TYPES[kind].type, name, account, region))
    return refs


def _refs(rtype: str, name: str, request: Mapping[str, Any], response: Mapping[str, Any], account: str,
          region: str, event_id: str) -> list[ResourceRef]:
    """The resources of one type a CloudTrail record names."""
    if rtype in TAGS:
        return _tagged_refs(request, account, region)
    spec = BY_TYPE[rtype]
    if name in spec.name_fields:  # SageMaker calls name the resource in one request field
        return [_ref(rtype, request.get(spec.name_fields[name]), account, region, event_id, "name")]
    if spec.call_refs is not None:  # where the type's own calls put its id; checked here like any other
        ids = spec.call_refs(name, request, response)
    else:  # EC2 (and EFS) calls: the ids are in the request, or in the response of a Create*
        ids = _ids_in(request, spec.id_pattern) or _ids_in(response, spec.id_pattern)
        if not ids:
            raise InvalidEvent(f"no {rtype.rsplit('::', 1)[-1]} id in the {name} record", event_id)
    return [_ref(rtype, i, account, region, event_id) for i in ids]


def from_api_call(event: Any, resource_types: Iterable[str] = tuple(API_CALLS)) -> Trigger:
    """An EventBridge 'AWS API Call via CloudTrail' event -> the resources it created or changed."""
    event_id, account, region, detail = _envelope(event, (API_CALL,))
    if detail.get("errorCode") is not None:
        raise IgnoredEvent(f"the call failed ({str(detail.get('errorCode'))[:64]}): nothing changed", event_id)
    name = detail.get("eventName")
    if not isinstance(name, str):
        raise InvalidEvent("missing 'detail.eventName'", event_id)
    rtypes = [t for t in resource_types if any(name in names for names in API_CALLS.get(t, {}).values())]
    if not rtypes:
        raise IgnoredEvent(f"eventName {name[:64]!r} is not watched", event_id)
    request = detail.get("requestParameters")
    response = detail.get("responseElements")
    request = request if isinstance(request, Mapping) else {}
    response = response if isinstance(response, Mapping) else {}
    refs = [ref for rtype in rtypes for ref in _refs(rtype, name, request, response, account, region, event_id)]
    refs = [r for r in refs if r.resource_type in set(resource_types) | set(DEPENDENTS)]
    if not refs:
        raise IgnoredEvent(f"{name} names no resource netguard covers", event_id)
    identity = detail.get("userIdentity")
    arn = identity.get("arn") if isinstance(identity, Mapping) else None
    principal = clean_text(arn, PRINCIPAL_MAX)
    if isinstance(arn, str) and arn and principal is None:  # it is recorded and alerted, and may become a tag
        raise InvalidEvent("invalid 'detail.userIdentity.arn'", event_id)
    context = EventContext(event_id, "api-call", name, principal, clean_text(detail.get("eventTime"), 64))
    return Trigger(context, tuple(dict.fromkeys(refs)), tuple(dict.fromkeys(exemption_tags(name, request))))


def from_state_change(event: Any) -> Trigger:
    """A native SageMaker state-change event -> the resource (re-read, not trusted), when its new
    status is one where netguard has something to do."""
    event_id, account, region, detail = _envelope(event, STATE_CHANGES)
    rtype, name_field, status_field, statuses = STATE_CHANGES[event["detail-type"]]
    status = detail.get(status_field)
    if not isinstance(status, str):
        raise InvalidEvent(f"missing 'detail.{status_field}'", event_id)
    ref = _ref(rtype, detail.get(name_field), account, region, event_id, "name")
    if status not in statuses:
        raise IgnoredEvent(f"{status_field}={status[:32]} needs nothing", event_id)
    context = EventContext(event_id, "state-change", f"{status_field}={status[:32]}", None,
                           clean_text(event.get("time"), 64))
    return Trigger(context, (ref,))
