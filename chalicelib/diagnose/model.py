"""The values of a diagnosis: the workload (what runs where), a cause (what blocks or slows which
destinations, the evidence and the fix), and the diagnosis itself. Plain, frozen, JSON-ready."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model import (
    DOMAIN,
    ENDPOINT,
    NOTEBOOK,
    PROCESSING_JOB,
    TRAINING_JOB,
    TRANSFORM_JOB,
    TUNING_JOB,
)

# How bad a cause is, most blocking first: BLOCKS (no connection on that path), MAY_BLOCK (blocks
# unless something netguard cannot see says otherwise: a custom DNS server's forwarding, a policy
# condition, some of several addresses), DEGRADES (connects, but across zones: latency, cost, and an
# outage of the other zone cuts it off).
BLOCKS, MAY_BLOCK, DEGRADES = "blocks", "may-block", "degrades"
IMPACT_ORDER = (BLOCKS, MAY_BLOCK, DEGRADES)
# Where on the way a cause sits, in the order a connection meets them: name resolution first.
LAYERS = ("resource", "dns", "route", "security-group", "network-acl", "endpoint", "endpoint-policy", "placement")

# What each kind of workload calls, among the baseline's essential endpoints (policies: VPC.4's
# services): jobs and hosted models pull their image from ECR (ecr.api, ecr.dkr, its layers from S3),
# read and write S3, log to CloudWatch Logs and take their role's credentials (STS); notebooks and
# Studio apps also call the SageMaker API and invoke endpoints (sagemaker.runtime).
NEEDS: Mapping[str, tuple[str, ...]] = {
    NOTEBOOK: ("s3", "sts", "logs", "sagemaker.api", "sagemaker.runtime"),
    DOMAIN: ("s3", "sts", "logs", "sagemaker.api", "sagemaker.runtime"),
    TRAINING_JOB: ("s3", "ecr.api", "ecr.dkr", "sts", "logs"),
    PROCESSING_JOB: ("s3", "ecr.api", "ecr.dkr", "sts", "logs"),
    TUNING_JOB: ("s3", "ecr.api", "ecr.dkr", "sts", "logs"),
    TRANSFORM_JOB: ("s3", "ecr.api", "ecr.dkr", "sts", "logs"),
    ENDPOINT: ("s3", "ecr.api", "ecr.dkr", "sts", "logs"),
}
PULLS_IMAGES = frozenset({TRAINING_JOB, PROCESSING_JOB, TUNING_JOB, TRANSFORM_JOB, ENDPOINT})

# The calls a workload makes through each endpoint, which its policy must let through.
CALLS: Mapping[str, tuple[str, ...]] = {
    "s3": ("s3:GetObject", "s3:PutObject", "s3:ListBucket"),
    "ecr.api": ("ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"),
    "ecr.dkr": ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"),
    "sts": ("sts:AssumeRole",),
    "logs": ("logs:CreateLogStream", "logs:PutLogEvents"),
    "sagemaker.api": ("sagemaker:DescribeTrainingJob", "sagemaker:CreateTrainingJob"),
    "sagemaker.runtime": ("sagemaker:InvokeEndpoint",),
}
# ECR keeps image layers in this AWS-owned bucket: ECR hands out URLs to it, fetched through the S3 path.
ECR_LAYER_BUCKET = "arn:aws:s3:::prod-{region}-starport-layer-bucket/*"


@dataclass(frozen=True)
class Workload:
    """What to diagnose: a SageMaker resource and where its network interfaces are."""

    resource: str  # training-job/name, as the user names it
    resource_type: str
    arn: str
    status: str | None
    vpc_id: str | None
    subnets: tuple[str, ...]
    groups: tuple[str, ...]
    # why SageMaker itself gives it internet, outside the customer's VPC (DirectInternetAccess Enabled,
    # PublicInternetOnly, no VpcConfig); None when its traffic goes through the VPC
    sagemaker_network: str | None = None
    network_isolation: bool = False
    needs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "type": self.resource_type, "arn": self.arn, "status": self.status,
                "vpc": self.vpc_id, "subnets": list(self.subnets), "security_groups": list(self.groups),
                "sagemaker_network": self.sagemaker_network, "network_isolation": self.network_isolation,
                "destinations": list(self.needs)}


@dataclass(frozen=True)
class Cause:
    """One reason traffic to some destinations fails (or crosses zones). `key` identifies the cause:
    the same thing found for several destinations or subnets is one cause."""

    code: str
    key: str
    layer: str
    impact: str
    title: str
    evidence: Mapping[str, Any]
    fix: str
    destinations: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()

    def order(self) -> tuple[int, int, int, str]:
        return (IMPACT_ORDER.index(self.impact), -len(self.destinations), LAYERS.index(self.layer), self.key)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "impact": self.impact, "layer": self.layer, "title": self.title,
                "destinations": list(self.destinations), "subnets": list(self.subnets),
                "evidence": dict(self.evidence), "fix": self.fix}


def _union(first: Any, second: Any) -> Any:
    """Evidence lists of one cause found twice add up (without repeats); other values are the first's."""
    if isinstance(first, list) and isinstance(second, list):
        return first + [v for v in second if v not in first]
    return first


def merge(causes: list[Cause]) -> list[Cause]:
    """One cause per key, with every destination and subnet it was found for and its worst impact;
    ordered most blocking first (then the most destinations, then the layer met first)."""
    merged: dict[tuple[str, str], Cause] = {}
    for cause in causes:
        found = merged.get((cause.code, cause.key))
        if found is None:
            merged[(cause.code, cause.key)] = cause
            continue
        impact = min(found.impact, cause.impact, key=IMPACT_ORDER.index)
        evidence = {k: _union(v, cause.evidence.get(k)) for k, v in found.evidence.items()}
        merged[(cause.code, cause.key)] = Cause(
            found.code, found.key, found.layer, impact, found.title, evidence, found.fix,
            tuple(sorted(set(found.destinations) | set(cause.destinations))),
            tuple(sorted(set(found.subnets) | set(cause.subnets))))
    return sorted(merged.values(), key=Cause.order)


@dataclass(frozen=True)
class Diagnosis:
    workload: Workload
    causes: tuple[Cause, ...]
    reachable: Mapping[str, str]  # destination -> how (only those with no blocking cause)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def blocked(self) -> bool:
        return any(c.impact in (BLOCKS, MAY_BLOCK) for c in self.causes)

    def as_dict(self) -> dict[str, Any]:
        return {"workload": self.workload.as_dict(), "blocked": self.blocked,
                "causes": [{"rank": i + 1, **c.as_dict()} for i, c in enumerate(self.causes)],
                "reachable": dict(self.reachable), "notes": list(self.notes)}
