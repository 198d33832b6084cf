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
from .model import (
    DOMAIN,
    ENDPOINT,
    ENDPOINT_CONFIG,
    FLOW_LOG,
    MODEL,
    NOTEBOOK,
    PROCESSING_JOB,
    ROUTE_TABLE,
    SAGEMAKER_TYPES,
    SECURITY_GROUP,
    SUBNET,
    TRAINING_JOB,
    TRANSFORM_JOB,
    TUNING_JOB,
    VPC,
    VPC_ENDPOINT,
    EventContext,
    ResourceRef,
    Trigger,
)

API_CALL = "AWS API Call via CloudTrail"
# tagging calls (TAG.1, exemption tags): they name resources of any covered type
EC2_TAGS, SAGEMAKER_TAGS = "tags:ec2", "tags:sagemaker"
TAGS = (EC2_TAGS, SAGEMAKER_TAGS)

# CloudTrail calls that can introduce a violation, per resource type the controls cover.
API_CALLS: dict[str, dict[str, tuple[str, ...]]] = {
    NOTEBOOK: {"aws.sagemaker": ("CreateNotebookInstance", "UpdateNotebookInstance", "StartNotebookInstance")},
    TRAINING_JOB: {"aws.sagemaker": ("CreateTrainingJob",)},
    PROCESSING_JOB: {"aws.sagemaker": ("CreateProcessingJob",)},
    TUNING_JOB: {"aws.sagemaker": ("CreateHyperParameterTuningJob",)},
    TRANSFORM_JOB: {"aws.sagemaker": ("CreateTransformJob",)},
    MODEL: {"aws.sagemaker": ("CreateModel",)},
    ENDPOINT_CONFIG: {"aws.sagemaker": ("CreateEndpointConfig",)},
    ENDPOINT: {"aws.sagemaker": ("CreateEndpoint", "UpdateEndpoint")},
    DOMAIN: {"aws.sagemaker": ("CreateDomain", "UpdateDomain")},
    VPC: {"aws.ec2": ("CreateVpc", "ModifyVpcAttribute", "CreateFlowLogs", "CreateVpcEndpoint")},
    SUBNET: {"aws.ec2": ("CreateSubnet", "ModifySubnetAttribute", "AssociateRouteTable")},
    # an endpoint created in a VPC changes the VPC's essential endpoints (VPC.4) and is itself evaluated
    VPC_ENDPOINT: {"aws.ec2": ("CreateVpcEndpoint", "ModifyVpcEndpoint")},
    # shared resources: a changed route table re-evaluates its subnets and what uses them (NB.3, JOB.2,
    # MD.2, DM.2); a deleted flow log, its VPC (VPC.3)
    # tags (TAG.1, and exemption tags) on any covered resource
    EC2_TAGS: {"aws.ec2": ("CreateTags", "DeleteTags")},
    SAGEMAKER_TAGS: {"aws.sagemaker": ("AddTags", "DeleteTags")},
    ROUTE_TABLE: {"aws.ec2": ("CreateRoute", "ReplaceRoute", "AssociateRouteTable", "ReplaceRouteTableAssociation")},
    FLOW_LOG: {"aws.ec2": ("DeleteFlowLogs",)},
    SECURITY_GROUP: {"aws.ec2": ("CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
                                 "ModifySecurityGroupRules")},
}
EVENT_SOURCES = {"aws.sagemaker": "sagemaker.amazonaws.com", "aws.ec2": "ec2.amazonaws.com"}
# The request field that names the SageMaker resource a Create*/Update*/Start* call is about.
NAME_FIELDS = {
    "CreateNotebookInstance": "notebookInstanceName", "UpdateNotebookInstance": "notebookInstanceName",
    "StartNotebookInstance": "notebookInstanceName", "CreateTrainingJob": "trainingJobName",
    "CreateProcessingJob": "processingJobName", "CreateHyperParameterTuningJob": "hyperParameterTuningJobName",
    "CreateTransformJob": "transformJobName", "CreateModel": "modelName",
    "CreateEndpointConfig": "endpointConfigName", "CreateEndpoint": "endpointName", "UpdateEndpoint": "endpointName",
}

# Native SageMaker state-change events: (resource type, name field, status field, statuses that need work).
# Notebooks: defer (Pending) or stop (InService); jobs: stop while InProgress.
STATE_CHANGES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "SageMaker Notebook Instance State Change": (NOTEBOOK, "NotebookInstanceName", "NotebookInstanceStatus",
                                                 ("Pending", "InService")),
    "SageMaker Training Job State Change": (TRAINING_JOB, "TrainingJobName", "TrainingJobStatus", ("InProgress",)),
    "SageMaker Processing Job State Change": (PROCESSING_JOB, "ProcessingJobName", "ProcessingJobStatus",
                                              ("InProgress",)),
    "SageMaker HyperParameter Tuning Job State Change": (TUNING_JOB, "HyperParameterTuningJobName",
                                                         "HyperParameterTuningJobStatus", ("InProgress",)),
    "SageMaker Transform Job State Change": (TRANSFORM_JOB, "TransformJobName", "TransformJobStatus", ("InProgress",)),
    # the published sample spells the status IN_SERVICE; the API says InService
    "SageMaker Endpoint State Change": (ENDPOINT, "EndpointName", "EndpointStatus", ("IN_SERVICE", "InService")),
}
NOTEBOOK_STATE_CHANGE = "SageMaker Notebook Instance State Change"

# The whole string (\Z: `$` also matches before a final newline), ASCII digits only (`\d` alone also
# matches "１２３..." and other scripts' digits, which no AWS id has).
ACCOUNT_RE = re.compile(r"^\d{12}\Z", re.ASCII)
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d\Z", re.ASCII)
SAGEMAKER_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}\Z")
DOMAIN_ID_RE = re.compile(r"^d-(-*[a-z0-9]){1,61}\Z")
EC2_ID_RE = {SECURITY_GROUP: re.compile(r"^sg-[0-9a-f]{8,17}\Z"), VPC: re.compile(r"^vpc-[0-9a-f]{8,17}\Z"),
             SUBNET: re.compile(r"^subnet-[0-9a-f]{8,17}\Z"), VPC_ENDPOINT: re.compile(r"^vpce-[0-9a-f]{8,17}\Z"),
             ROUTE_TABLE: re.compile(r"^rtb-[0-9a-f]{8,17}\Z"), FLOW_LOG: re.compile(r"^fl-[0-9a-f]{8,17}\Z")}
PRINCIPAL_MAX = 2048  # an IAM ARN's limit
# What a change to a shared resource can make non-compliant: watch it when those types are covered.
DEPENDENTS = {ROUTE_TABLE: (SUBNET, NOTEBOOK, TRAINING_JOB, PROCESSING_JOB, TUNING_JOB, TRANSFORM_JOB, MODEL, DOMAIN),
              FLOW_LOG: (VPC,)}


def watched_types(covered: Iterable[str]) -> list[str]:
    """The covered types, and the shared resources whose changes re-evaluate them."""
    covered = set(covered)
    tags = set()
    if covered & {VPC, SUBNET, VPC_ENDPOINT, SECURITY_GROUP}:
        tags.add(EC2_TAGS)
    if covered & set(SAGEMAKER_TYPES):
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


def _name_ref(rtype: str, name: Any, account: str, region: str, event_id: str) -> ResourceRef:
    if not isinstance(name, str) or not SAGEMAKER_NAME_RE.match(name):
        raise InvalidEvent(f"missing or invalid {rtype.rsplit('::', 1)[-1]} name", event_id)
    return ResourceRef(rtype, name, account, region)


def _id_ref(rtype: str, resource_id: Any, account: str, region: str, event_id: str) -> ResourceRef:
    if not isinstance(resource_id, str) or not EC2_ID_RE[rtype].match(resource_id):
        raise InvalidEvent(f"missing or invalid {rtype.rsplit('::', 1)[-1]} id", event_id)
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


# SageMaker ARN resource types (arn:aws:sagemaker:region:account:<type>/<name>) -> resource types
ARN_TYPES = {"notebook-instance": NOTEBOOK, "training-job": TRAINING_JOB, "processing-job": PROCESSING_JOB,
             "hyper-parameter-tuning-job": TUNING_JOB, "transform-job": TRANSFORM_JOB, "model": MODEL,
             "endpoint-config": ENDPOINT_CONFIG, "endpoint": ENDPOINT, "domain": DOMAIN}


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
        values = request.values()
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
    refs = [ResourceRef(rtype, i, account, region) for rtype in (VPC, SUBNET, VPC_ENDPOINT, SECURITY_GROUP)
            for i in _ids_in(request, EC2_ID_RE[rtype])]
    arn = request.get("resourceArn")
    if isinstance(arn, str) and arn.startswith("arn:aws") and arn.count(":") >= 5:
        kind, _, name = arn.split(":", 5)[5].partition("/")
        valid = DOMAIN_ID_RE.match(name) if kind == "domain" else SAGEMAKER_NAME_RE.match(name)
        if kind in ARN_TYPES and valid:
            refs.append(ResourceRef(ARN_TYPES[kind], name, account, region))
    return refs


def _refs(rtype: str, name: str, request: Mapping[str, Any], response: Mapping[str, Any], account: str,
          region: str, event_id: str) -> list[ResourceRef]:
    """The resources of one type a CloudTrail record names."""
    if rtype in TAGS:
        return _tagged_refs(request, account, region)
    if name in NAME_FIELDS:
        return [_name_ref(rtype, request.get(NAME_FIELDS[name]), account, region, event_id)]
    if rtype == DOMAIN:  # UpdateDomain names it; CreateDomain answers with its ARN
        arn = response.get("domainArn")
        domain_id = request.get("domainId") or (arn.rsplit("/", 1)[-1] if isinstance(arn, str) else None)
        if not isinstance(domain_id, str) or not DOMAIN_ID_RE.match(domain_id):
            raise InvalidEvent("missing or invalid domain id", event_id)
        return [ResourceRef(DOMAIN, domain_id, account, region)]
    if rtype == SECURITY_GROUP:
        return [_id_ref(rtype, g, account, region, event_id) for g in _group_ids_of(name, request, response)]
    # EC2 network calls: the ids are in the request, or in the response of a Create*
    ids = _ids_in(request, EC2_ID_RE[rtype]) or _ids_in(response, EC2_ID_RE[rtype])
    if not ids:
        raise InvalidEvent(f"no {rtype.rsplit('::', 1)[-1]} id in the {name} record", event_id)
    return [_id_ref(rtype, i, account, region, event_id) for i in ids]


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
    refs = [r for r in refs if r.resource_type in set(resource_types) | {ROUTE_TABLE, FLOW_LOG}]
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
    ref = _name_ref(rtype, detail.get(name_field), account, region, event_id)
    if status not in statuses:
        raise IgnoredEvent(f"{status_field}={status[:32]} needs nothing", event_id)
    context = EventContext(event_id, "state-change", f"{status_field}={status[:32]}", None,
                           clean_text(event.get("time"), 64))
    return Trigger(context, (ref,))
