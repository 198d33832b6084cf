"""The values that flow through the pipeline, all frozen.

trigger -> ResourceRef -> Resource -> Finding -> Decision -> Outcome -> ledger + alerts
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NOTEBOOK = "AWS::SageMaker::NotebookInstance"
# Jobs: AWS Config does not record them (events and scans cover them); the names follow the others.
TRAINING_JOB = "AWS::SageMaker::TrainingJob"
PROCESSING_JOB = "AWS::SageMaker::ProcessingJob"
TUNING_JOB = "AWS::SageMaker::HyperParameterTuningJob"
TRANSFORM_JOB = "AWS::SageMaker::TransformJob"
JOB_TYPES = (TRAINING_JOB, PROCESSING_JOB, TUNING_JOB, TRANSFORM_JOB)
# Statuses a job never leaves (botocore's TrainingJobStatus, ProcessingJobStatus, HyperParameterTuningJobStatus,
# TransformJobStatus): it ran, and cannot be stopped. `Stopping` is not one: the job may still be running.
FINISHED_JOB_STATUSES = frozenset({"Completed", "Failed", "Stopped", "Deleting", "DeleteFailed"})
MODEL = "AWS::SageMaker::Model"
ENDPOINT_CONFIG = "AWS::SageMaker::EndpointConfig"
ENDPOINT = "AWS::SageMaker::Endpoint"
DOMAIN = "AWS::SageMaker::Domain"
SAGEMAKER_TYPES = (NOTEBOOK, *JOB_TYPES, MODEL, ENDPOINT_CONFIG, ENDPOINT, DOMAIN)
VPC = "AWS::EC2::VPC"
SUBNET = "AWS::EC2::Subnet"
VPC_ENDPOINT = "AWS::EC2::VPCEndpoint"
SECURITY_GROUP = "AWS::EC2::SecurityGroup"
RESOURCE_TYPES = (*SAGEMAKER_TYPES, VPC, SUBNET, VPC_ENDPOINT, SECURITY_GROUP)
# Shared resources no control evaluates, whose changes re-evaluate what depends on them.
ROUTE_TABLE = "AWS::EC2::RouteTable"
FLOW_LOG = "AWS::EC2::FlowLog"

SEVERITIES = ("critical", "high", "medium", "low", "informational")  # most severe first

COMPLIANT = "COMPLIANT"
NON_COMPLIANT = "NON_COMPLIANT"
NOT_APPLICABLE = "NOT_APPLICABLE"

# Decision kinds: what netguard chose to do about one NON_COMPLIANT finding.
REMEDIATE = "remediate"
ALERT_ONLY = "alert-only"
DRY_RUN = "dry-run"
EXEMPT = "exempt"
DEFERRED = "deferred"
NOT_ACTIONABLE = "not-actionable"
REPORT_ONLY = "report-only"  # CLI scan without --enforce: read-only, nothing recorded or sent

# Outcome results.
SUCCEEDED = "succeeded"
ALREADY_DONE = "already-done"
FAILED = "failed"
NO_ACTION = "no-action"
DUPLICATE = "duplicate"
LIMITED = "limited"  # the account's enforce actions for the window are spent (blast radius): alerted, not done


_ID_SEPARATORS = re.compile(r"[\s,]+")


def join_ids(ids: Iterable[str]) -> str:
    """Control ids in a tag value (netguard:quarantined, netguard:created-by): space-separated, since
    SageMaker's tag values may not hold commas (TagValue pattern `^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$`)."""
    return " ".join(sorted(set(ids)))


def split_ids(value: str | None) -> set[str]:
    """The ids a tag value lists, separated by spaces or commas (EC2 tags written before may hold commas)."""
    return {i for i in _ID_SEPARATORS.split(value or "") if i}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class ResourceRef:
    """Which resource to look at. `resource_id` is the id AWS Config uses (notebook name, sg-...)."""

    resource_type: str
    resource_id: str
    account: str
    region: str

    @property
    def key(self) -> str:
        return f"{self.account}#{self.region}#{self.resource_type}#{self.resource_id}"


@dataclass(frozen=True)
class EventContext:
    """Where a piece of work came from: carried into the ledger and every alert."""

    event_id: str
    trigger: str  # api-call | state-change | scan
    event_name: str | None = None
    principal: str | None = None
    event_time: str | None = None


@dataclass(frozen=True)
class Trigger:
    context: EventContext
    refs: tuple[ResourceRef, ...]
    # netguard:exempt* tags the call set (key, value) or removed (key, None) on the refs: alerted with
    # who did it, whatever netguard makes of them (anyone who can tag can write them)
    exemption_tags: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Resource:
    """The current state of one resource, as plain data the checks read.

    `version` changes whenever the resource changes in a way that matters for deduplication
    (a notebook's status and last-modified time); two events seeing the same version and the
    same violation are one violation.
    """

    ref: ResourceRef
    arn: str
    state: Mapping[str, Any]
    tags: Mapping[str, str] = field(default_factory=dict)
    version: str = ""
    # When the data behind this state was read (ISO UTC, the start of the reads it came from: a
    # sweep's shared lookups can be minutes old). A fix netguard settled before it was read and a
    # violation seen in it is a violation that came back ("" = unknown: never taken for one).
    read_at: str = ""


def finished_job(resource: Resource) -> str | None:
    """The status of a job that has finished (it ran; nothing can stop it now), else None. Its own settings
    (isolation, VPC config, encryption) are as it ran; what it used (its subnets' routes) is read as it is now."""
    if resource.ref.resource_type not in JOB_TYPES:
        return None
    status = resource.state.get("JobStatus")
    return status if status in FINISHED_JOB_STATUSES else None


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    severity: str
    resource_types: tuple[str, ...]
    mode: str
    check: str
    params: Mapping[str, Any]
    remediation: str | None
    guidance: str
    peers: tuple[str, ...]
    applies_when: Mapping[str, Any] | None
    source: str
    wildcard_exemption: bool = True  # may `netguard:exempt = *` exempt from it (not critical ones by default)


@dataclass(frozen=True)
class CheckResult:
    status: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()  # what a remediation acts on (e.g. security group rule ids)


@dataclass(frozen=True)
class Finding:
    control: Control
    resource: Resource
    status: str
    evidence: Mapping[str, Any]
    targets: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        """Same control, resource and evidence -> same violation (whatever the resource's lifecycle)."""
        return digest([self.control.id, self.resource.ref.key, self.evidence])

    @property
    def versioned_fingerprint(self) -> str:
        """The violation in this version of the resource: a notebook started again is a new case to stop."""
        return digest([self.control.id, self.resource.ref.key, self.resource.version, self.evidence])


@dataclass(frozen=True)
class Decision:
    finding: Finding
    kind: str
    reason: str
    action: str | None = None  # the remediation planned (or that would run, for dry-run)


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    result: str
    detail: str
    action_id: str | None = None
    before: Mapping[str, Any] | None = None  # what the action removed or changed, for restore
