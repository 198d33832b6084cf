"""Act: named, idempotent remediations. The only module that writes to the resources we guard.

Each action declares the resource types it acts on, the IAM permissions it needs, the resource
states it can act from (and those in which it must be deferred, or is already done), what it
needs to be able to act at all (a configured destination, a CloudTrail principal), and a pure
`before` that says what it is about to change so the ledger can record it first (for restore).
"Already stopped", "already revoked", "already enabled", "already exists" count as success.
"""
from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from botocore.exceptions import ClientError

from .aws import Clients, error_code, error_message
from .checks import internet_routes, live_endpoint
from .errors import RemediationError
from .model import (
    ALREADY_DONE,
    DOMAIN,
    JOB_TYPES,
    NOTEBOOK,
    PROCESSING_JOB,
    RESOURCE_TYPES,
    SAGEMAKER_TYPES,
    SECURITY_GROUP,
    FLOW_LOG,
    SUBNET,
    SUCCEEDED,
    TRAINING_JOB,
    TUNING_JOB,
    VPC,
    VPC_ENDPOINT,
    Control,
    EventContext,
    Resource,
    ResourceRef,
    digest,
    join_ids,
    split_ids,
)

QUARANTINE_TAG = "netguard:quarantined"
CREATED_BY_TAG = "netguard:created-by"  # on what netguard creates (restore deletes only what carries it)
# What EC2 answers when a rule id is no longer in the group (moto says InvalidPermission.NotFound).
RULE_GONE = ("InvalidSecurityGroupRuleId.NotFound", "InvalidPermission.NotFound")


@dataclass(frozen=True)
class ActionRequest:
    """One execution: the resource as read, what to act on, and why (the controls and the event)."""

    clients: Clients
    resource: Resource
    targets: tuple[str, ...]
    controls: tuple[Control, ...]
    context: EventContext

    @property
    def control_ids(self) -> tuple[str, ...]:
        return tuple(sorted(c.id for c in self.controls))

    def param(self, name: str, default: Any = None) -> Any:
        for control in self.controls:
            if control.params.get(name) not in (None, ""):
                return control.params[name]
        return default

    def client(self, service: str) -> Any:
        ref = self.resource.ref
        return self.clients.client(service, ref.region, ref.account)


@dataclass(frozen=True)
class ActionResult:
    result: str  # SUCCEEDED or ALREADY_DONE; failures raise RemediationError
    detail: str
    # What the action created that the resource now uses (a VPC's new flow log): indexed like what
    # collecting it finds, so that deleting it too brings the resource back (ledger `uses#`).
    created: tuple[ResourceRef, ...] = ()


@dataclass(frozen=True)
class ActionSpec:
    name: str
    resource_types: tuple[str, ...]
    permissions: tuple[str, ...]
    describe: str  # what it does, for people (alerts, README)
    run: Callable[[ActionRequest], ActionResult]
    before: Callable[[Resource, tuple[str, ...]], Mapping[str, Any]]
    state_field: str | None = None
    act_states: frozenset[str] = frozenset()  # states it can act from
    defer_states: frozenset[str] = frozenset()  # states that will become actable: wait
    done_states: frozenset[str] = frozenset()  # states where the containment already holds
    # None when the action can run with these control parameters, else what is missing.
    unconfigured: Callable[[Mapping[str, Any]], str | None] = field(default=lambda params: None)
    params: frozenset[str] = frozenset()  # control parameters the action reads
    needs_principal: bool = False  # acts on who made the change (CloudTrail userIdentity)
    handles_targets: frozenset[str] | None = None  # only these targets (None: all)
    # Whether the containment already holds for one control on this resource (actions that contain
    # several controls at once, such as a quarantine tag naming them): such a decision is not acted
    # on again when another control of the resource is.
    holds_for: Callable[[Resource, str], bool] | None = None
    # What AWS requires besides the state for the action to work, read by the collector: None when met,
    # else why not (the decision is "not actionable" with that reason, rather than a failed call).
    precondition: Callable[[Resource], str | None] | None = None

    def readiness(self, resource: Resource) -> str:
        """'act', 'defer', 'done' or 'cannot' for the resource's current state."""
        if self.state_field is None:
            return "act"
        state = resource.state.get(self.state_field)
        if state in self.act_states:
            return "act"
        if state in self.defer_states:
            return "defer"
        if state in self.done_states:
            return "done"
        return "cannot"


def _fail(action: str, exc: ClientError) -> RemediationError:
    return RemediationError(f"{action}: {error_code(exc)}: {error_message(exc)}")


def _state_before(*fields: str) -> Callable[[Resource, tuple[str, ...]], Mapping[str, Any]]:
    def before(resource: Resource, targets: tuple[str, ...]) -> Mapping[str, Any]:
        return {f: resource.state.get(f) for f in fields}
    return before


# --- notebooks ---------------------------------------------------------------------------------

def _notebook_before(resource: Resource, targets: tuple[str, ...]) -> Mapping[str, Any]:
    return {
        "NotebookInstanceStatus": resource.state.get("NotebookInstanceStatus"),
        QUARANTINE_TAG: resource.tags.get(QUARANTINE_TAG),
    }


def quarantine_notebook(req: ActionRequest) -> ActionResult:
    """Stop the notebook if it runs, and tag it `netguard:quarantined` with the failed controls.

    Its network settings cannot be changed: the owner must recreate it (said in the alert).
    """
    resource = req.resource
    sm = req.client("sagemaker")
    done: list[str] = []
    if resource.state.get("NotebookInstanceStatus") == "InService":
        try:
            sm.stop_notebook_instance(NotebookInstanceName=resource.ref.resource_id)
            done.append("stopped")
        except ClientError as exc:
            # Someone (or a concurrent invocation) stopped it between our read and our call.
            current = _notebook_status(sm, resource.ref.resource_id)
            if current not in ("Stopping", "Stopped"):
                raise _fail("StopNotebookInstance", exc) from exc
    # The controls it was quarantined for, with any earlier ones kept (a later run may see fewer).
    tag_value = join_ids(split_ids(resource.tags.get(QUARANTINE_TAG)) | set(req.control_ids))
    if resource.tags.get(QUARANTINE_TAG) != tag_value:
        try:
            sm.add_tags(ResourceArn=resource.arn, Tags=[{"Key": QUARANTINE_TAG, "Value": tag_value}])
        except ClientError as exc:
            raise _fail("AddTags", exc) from exc
        done.append(f"tagged {QUARANTINE_TAG}={tag_value}")
    if not done:
        return ActionResult(ALREADY_DONE, "notebook already stopped and tagged")
    return ActionResult(SUCCEEDED, "; ".join(done) + "; its network settings are immutable: the owner must recreate it")


def _quarantine_holds(resource: Resource, control_id: str) -> bool:
    """Stopped (or stopping) and tagged for this control."""
    tagged = split_ids(resource.tags.get(QUARANTINE_TAG))
    return resource.state.get("NotebookInstanceStatus") in ("Stopping", "Stopped") and control_id in tagged


def _notebook_status(sm: Any, name: str) -> str | None:
    try:
        return sm.describe_notebook_instance(NotebookInstanceName=name).get("NotebookInstanceStatus")
    except ClientError:
        return None


# --- jobs --------------------------------------------------------------------------------------

def _stop_calls(sm: Any, kind: str, name: str) -> tuple[Callable[[], Any], Callable[[], str | None]]:
    """(stop it, read its status) for one kind of job."""
    if kind == TRAINING_JOB:
        return (lambda: sm.stop_training_job(TrainingJobName=name),
                lambda: sm.describe_training_job(TrainingJobName=name).get("TrainingJobStatus"))
    if kind == PROCESSING_JOB:
        return (lambda: sm.stop_processing_job(ProcessingJobName=name),
                lambda: sm.describe_processing_job(ProcessingJobName=name).get("ProcessingJobStatus"))
    if kind == TUNING_JOB:
        return (lambda: sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                lambda: sm.describe_hyper_parameter_tuning_job(
                    HyperParameterTuningJobName=name).get("HyperParameterTuningJobStatus"))
    return (lambda: sm.stop_transform_job(TransformJobName=name),
            lambda: sm.describe_transform_job(TransformJobName=name).get("TransformJobStatus"))


def stop_job(req: ActionRequest) -> ActionResult:
    """Stop a running job: its network settings cannot be changed. A finished job is left alone."""
    if req.resource.state.get("JobStatus") != "InProgress":
        return ActionResult(ALREADY_DONE, f"job is {req.resource.state.get('JobStatus')}: nothing to stop")
    stop, status = _stop_calls(req.client("sagemaker"), req.resource.ref.resource_type, req.resource.ref.resource_id)
    try:
        stop()
    except ClientError as exc:
        try:
            current = status()
        except ClientError:
            current = None
        if current in ("Stopping", "Stopped", "Completed", "Failed"):
            return ActionResult(ALREADY_DONE, f"job already {current}")
        raise _fail("Stop*Job", exc) from exc
    return ActionResult(SUCCEEDED, "stopped the job; its network settings are immutable: run it again compliant")


# --- VPCs and subnets --------------------------------------------------------------------------

def _modify_vpc_attribute(req: ActionRequest, attribute: str) -> None:
    try:
        req.client("ec2").modify_vpc_attribute(VpcId=req.resource.ref.resource_id, **{attribute: {"Value": True}})
    except ClientError as exc:
        raise _fail(f"ModifyVpcAttribute({attribute})", exc) from exc


def enable_vpc_dns(req: ActionRequest) -> ActionResult:
    """Turn on the DNS attributes the failing controls check (their `field`), one per call, DNS
    support first: DNS hostnames can only be enabled once DNS support is."""
    wanted = {c.params.get("field") for c in req.controls}
    state = req.resource.state
    done = []
    if not state.get("EnableDnsSupport") and wanted & {"EnableDnsSupport", "EnableDnsHostnames"}:
        _modify_vpc_attribute(req, "EnableDnsSupport")
        done.append("enabled DNS support")
    if not state.get("EnableDnsHostnames") and "EnableDnsHostnames" in wanted:
        _modify_vpc_attribute(req, "EnableDnsHostnames")
        done.append("enabled DNS hostnames")
    if not done:
        return ActionResult(ALREADY_DONE, "DNS attributes already enabled")
    return ActionResult(SUCCEEDED, ", then ".join(done))


EC2_TAGS_MAX = 50  # user tags per EC2 resource
# Kept first when a VPC has more tags than what netguard creates in it can carry (baseline TAG.1 keys)
KEPT_TAGS = ("Environment", "Project", "Owner", "CostCenter", "Compliance")


def _created_tags(req: ActionRequest) -> list[dict[str, str]]:
    """What netguard creates in a VPC carries the VPC's own tags (TAG.1) and says who created it, within
    EC2's 50 tags: netguard's, then the baseline's keys, then the others by key."""
    copied = {k: v for k, v in req.resource.tags.items() if not k.startswith("aws:") and k != CREATED_BY_TAG}
    order = sorted(copied, key=lambda k: (k not in KEPT_TAGS, KEPT_TAGS.index(k) if k in KEPT_TAGS else 0, k))
    tags = {CREATED_BY_TAG: join_ids(req.control_ids), **{k: copied[k] for k in order[:EC2_TAGS_MAX - 1]}}
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _flow_log_destination(params: Mapping[str, Any]) -> str | None:
    if params.get("destination_type", "cloud-watch-logs") == "s3":
        return None if params.get("s3_bucket_arn") else "set s3_bucket_arn for VPC.3 in policies/vpc.toml"
    if params.get("log_group_name") and params.get("deliver_logs_role_arn"):
        return None
    return "set log_group_name and deliver_logs_role_arn (or destination_type = \"s3\") for VPC.3 in policies/vpc.toml"


def _expand(template: str, req: ActionRequest) -> str:
    ref = req.resource.ref
    return template.format(account=ref.account, region=ref.region, vpc_id=ref.resource_id)


def create_flow_log_all(req: ActionRequest) -> ActionResult:
    """Flow logs cannot be modified: add an ALL flow log to the configured destination."""
    if any(f.get("TrafficType") == "ALL" and f.get("FlowLogStatus", "ACTIVE") == "ACTIVE"
           for f in req.resource.state.get("FlowLogs", [])):
        return ActionResult(ALREADY_DONE, "an ALL flow log already exists")
    vpc_id = req.resource.ref.resource_id
    params: dict[str, Any] = {
        "ResourceIds": [vpc_id], "ResourceType": "VPC", "TrafficType": "ALL",
        # the same violation retried gives the same token: EC2 creates one flow log
        "ClientToken": f"netguard-{digest([vpc_id, req.context.event_id], 24)}",
        "TagSpecifications": [{"ResourceType": "vpc-flow-log", "Tags": _created_tags(req)}],
    }
    if req.param("destination_type", "cloud-watch-logs") == "s3":
        params.update(LogDestinationType="s3", LogDestination=_expand(req.param("s3_bucket_arn"), req))
    else:
        params.update(LogDestinationType="cloud-watch-logs",
                      LogGroupName=_expand(req.param("log_group_name"), req),
                      DeliverLogsPermissionArn=_expand(req.param("deliver_logs_role_arn"), req))
    try:
        answer = req.client("ec2").create_flow_logs(**params)
    except ClientError as exc:
        raise _fail("CreateFlowLogs", exc) from exc
    failed = answer.get("Unsuccessful") or []
    if failed:
        error = (failed[0].get("Error") or {})
        if error.get("Code") == "FlowLogAlreadyExists":
            return ActionResult(ALREADY_DONE, "the flow log already exists")
        raise RemediationError(f"CreateFlowLogs: {error.get('Code')}: {error.get('Message')}")
    ids = answer.get("FlowLogIds", [])
    ref = req.resource.ref
    return ActionResult(SUCCEEDED, f"created ALL flow log {', '.join(ids)} to "
                                   f"{params.get('LogDestination') or params['LogGroupName']}",
                        created=tuple(ResourceRef(FLOW_LOG, i, ref.account, ref.region) for i in ids))


def disable_public_ip_on_launch(req: ActionRequest) -> ActionResult:
    if not req.resource.state.get("MapPublicIpOnLaunch"):
        return ActionResult(ALREADY_DONE, "public IPs on launch already off")
    try:
        req.client("ec2").modify_subnet_attribute(SubnetId=req.resource.ref.resource_id,
                                                 MapPublicIpOnLaunch={"Value": False})
    except ClientError as exc:
        raise _fail("ModifySubnetAttribute", exc) from exc
    return ActionResult(SUCCEEDED, "turned off public IPs on launch")


# --- VPC endpoints -----------------------------------------------------------------------------

# Buckets AWS owns that workloads in a private subnet read through the S3 gateway endpoint with requests
# that are not signed by the account's principals: ECR's image layers (a URL ECR signs: "Minimum
# Amazon S3 bucket permissions for Amazon ECR", ECR user guide) and the Amazon Linux package
# repositories (read anonymously by dnf/yum). VPC.4's `aws_owned_buckets` parameter replaces the list.
AWS_OWNED_BUCKETS = ("prod-{region}-starport-layer-bucket", "al2023-repos-{region}-de612dc2",
                     "amazonlinux-2-repos-{region}", "packages.{region}.amazonaws.com", "repo.{region}.amazonaws.com")


def deliberate_s3_policy(account: str, region: str, aws_owned: tuple[str, ...] = AWS_OWNED_BUCKETS) -> str:
    """What netguard attaches to an S3 gateway endpoint it creates (the default would be full access for
    anyone): S3 for this account's principals, read-only objects of the AWS-owned buckets workloads need
    (without them ECR image pulls get 403 and training jobs do not start), never without TLS."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountPrincipals", "Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalAccount": account}}},
        {"Sid": "AwsOwnedBucketsReadOnly", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": [f"arn:aws:s3:::{bucket.format(region=region)}/*" for bucket in aws_owned]},
        {"Sid": "DenyWithoutTLS", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]})


def create_s3_gateway_endpoint(req: ActionRequest) -> ActionResult:
    """The free S3 gateway endpoint on the VPC's private route tables, with a deliberate policy."""
    ec2 = req.client("ec2")
    vpc_id, ref = req.resource.ref.resource_id, req.resource.ref
    if any(e.get("Service") == "s3" and e.get("VpcEndpointType") == "Gateway" and live_endpoint(e)
           for e in req.resource.state.get("Endpoints", [])):
        return ActionResult(ALREADY_DONE, "an S3 gateway endpoint already exists")
    try:
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
        private = sorted(t["RouteTableId"] for t in tables if not internet_routes(t))
        if not private:
            raise RemediationError(f"CreateVpcEndpoint: {vpc_id} has no private route table to attach S3 to")
        answer = ec2.create_vpc_endpoint(
            VpcEndpointType="Gateway", VpcId=vpc_id, ServiceName=f"com.amazonaws.{ref.region}.s3",
            RouteTableIds=private, PolicyDocument=deliberate_s3_policy(
                ref.account, ref.region, tuple(req.param("aws_owned_buckets", AWS_OWNED_BUCKETS))),
            ClientToken=f"netguard-{digest([vpc_id, 's3', req.context.event_id], 24)}",
            TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": _created_tags(req)}])
    except ClientError as exc:
        raise _fail("CreateVpcEndpoint", exc) from exc
    endpoint_id = answer["VpcEndpoint"]["VpcEndpointId"]
    return ActionResult(SUCCEEDED, f"created S3 gateway endpoint {endpoint_id} on {', '.join(private)} "
                                   "(the account's principals, and reading ECR image layers and Amazon Linux "
                                   "repositories; TLS required); interface endpoints cost money: create those "
                                   "yourself")


def enable_private_dns(req: ActionRequest) -> ActionResult:
    if req.resource.state.get("PrivateDnsEnabled"):
        return ActionResult(ALREADY_DONE, "private DNS already enabled")
    try:
        req.client("ec2").modify_vpc_endpoint(VpcEndpointId=req.resource.ref.resource_id, PrivateDnsEnabled=True)
    except ClientError as exc:
        raise _fail("ModifyVpcEndpoint", exc) from exc
    return ActionResult(SUCCEEDED, "enabled private DNS: the service's default DNS name now resolves to the endpoint")


def _private_dns_precondition(resource: Resource) -> str | None:
    """AWS refuses private DNS for a name something else in the VPC serves already (another endpoint of
    the service with private DNS, or a private hosted zone associated with the VPC)."""
    conflict = resource.state.get("PrivateDnsConflict")
    return f"{conflict}: remove it (or keep using it) before private DNS can be enabled here" if conflict else None


# --- Studio domains ----------------------------------------------------------------------------


def _vpc_only_precondition(resource: Resource) -> str | None:
    """UpdateDomain(VpcOnly) needs security groups in the domain's default user settings, and is refused
    once an RStudio domain execution role is set."""
    state = resource.state
    if state.get("RStudioDomainExecutionRole"):
        return "the domain has an RStudio domain execution role, with which AWS refuses to change AppNetworkAccessType"
    if not state.get("DefaultSecurityGroups"):
        return ("VpcOnly needs security groups in the domain's default user settings (DefaultUserSettings."
                "SecurityGroups): add one that allows what Studio needs, then netguard can switch the domain")
    return None

def domain_vpc_only(req: ActionRequest) -> ActionResult:
    """AppNetworkAccessType=VpcOnly; AWS allows it only while no app is InService, Pending or Deleting."""
    if req.resource.state.get("AppNetworkAccessType") == "VpcOnly":
        return ActionResult(ALREADY_DONE, "domain already VpcOnly")
    try:
        req.client("sagemaker").update_domain(DomainId=req.resource.ref.resource_id, AppNetworkAccessType="VpcOnly")
    except ClientError as exc:
        raise _fail("UpdateDomain", exc) from exc
    return ActionResult(SUCCEEDED, "set AppNetworkAccessType=VpcOnly: Studio apps now reach AWS only through the VPC")


# --- security groups ---------------------------------------------------------------------------

def _rules_before(resource: Resource, targets: tuple[str, ...]) -> Mapping[str, Any]:
    wanted = set(targets)
    return {
        "GroupId": resource.ref.resource_id,
        "Rules": [r for r in resource.state.get("Rules", []) if r.get("SecurityGroupRuleId") in wanted],
    }


def _revoke(ec2: Any, group_id: str, rule_ids: list[str], egress: bool) -> tuple[list[str], list[str]]:
    """(revoked, already gone). The call is all-or-nothing: when a rule is gone, go one by one."""
    def revoke(GroupId: str, SecurityGroupRuleIds: list[str]) -> None:  # noqa: N803 - the API's names
        if egress:
            ec2.revoke_security_group_egress(GroupId=GroupId, SecurityGroupRuleIds=SecurityGroupRuleIds)
        else:
            ec2.revoke_security_group_ingress(GroupId=GroupId, SecurityGroupRuleIds=SecurityGroupRuleIds)

    name = "RevokeSecurityGroupEgress" if egress else "RevokeSecurityGroupIngress"
    if not rule_ids:
        return [], []
    try:
        revoke(GroupId=group_id, SecurityGroupRuleIds=rule_ids)
        return rule_ids, []
    except ClientError as exc:
        code = error_code(exc)
        if code == "InvalidGroup.NotFound":
            return [], rule_ids
        if code not in RULE_GONE:
            raise _fail(name, exc) from exc
    revoked, gone = [], []
    for rule_id in rule_ids:
        try:
            revoke(GroupId=group_id, SecurityGroupRuleIds=[rule_id])
            revoked.append(rule_id)
        except ClientError as exc:
            if error_code(exc) not in RULE_GONE + ("InvalidGroup.NotFound",):
                raise _fail(name, exc) from exc
            gone.append(rule_id)
    return revoked, gone


def revoke_rules(req: ActionRequest) -> ActionResult:
    """Revoke exactly these rules by rule id (ingress or egress); rules already gone count as revoked."""
    wanted = set(req.targets)
    egress = {r["SecurityGroupRuleId"] for r in req.resource.state.get("Rules", []) if r.get("IsEgress")}
    ec2 = req.client("ec2")
    group_id = req.resource.ref.resource_id
    in_revoked, in_gone = _revoke(ec2, group_id, sorted(wanted - egress), egress=False)
    out_revoked, out_gone = _revoke(ec2, group_id, sorted(wanted & egress), egress=True)
    revoked, gone = in_revoked + out_revoked, in_gone + out_gone
    if not revoked:
        return ActionResult(ALREADY_DONE, f"rules already revoked: {', '.join(gone)}" if gone else "no rule to revoke")
    detail = f"revoked rules {', '.join(revoked)}"
    return ActionResult(SUCCEEDED, detail + (f" (already gone: {', '.join(gone)})" if gone else ""))


# --- tags --------------------------------------------------------------------------------------

OWNER_TAG = "Owner"
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
    try:
        if resource.ref.resource_type in SAGEMAKER_TYPES:
            req.client("sagemaker").add_tags(ResourceArn=resource.arn, Tags=[{"Key": OWNER_TAG, "Value": owner}])
        else:
            req.client("ec2").create_tags(Resources=[resource.ref.resource_id],
                                          Tags=[{"Key": OWNER_TAG, "Value": owner}])
    except ClientError as exc:
        raise _fail("AddTags/CreateTags", exc) from exc
    return ActionResult(SUCCEEDED, f"tagged {OWNER_TAG}={owner}")


ACTIONS: dict[str, ActionSpec] = {
    "quarantine_notebook": ActionSpec(
        name="quarantine_notebook",
        resource_types=(NOTEBOOK,),
        permissions=("sagemaker:StopNotebookInstance", "sagemaker:AddTags", "sagemaker:DescribeNotebookInstance"),
        describe=f"stop the notebook instance and tag it {QUARANTINE_TAG}; the owner must recreate it",
        run=quarantine_notebook,
        before=_notebook_before,
        state_field="NotebookInstanceStatus",
        act_states=frozenset({"InService"}),
        defer_states=frozenset({"Pending", "Updating"}),
        done_states=frozenset({"Stopping", "Stopped"}),
        holds_for=_quarantine_holds,
    ),
    "stop_job": ActionSpec(
        name="stop_job",
        resource_types=JOB_TYPES,
        permissions=("sagemaker:StopTrainingJob", "sagemaker:StopProcessingJob",
                     "sagemaker:StopHyperParameterTuningJob", "sagemaker:StopTransformJob"),
        describe="stop the job (its network settings cannot be changed); a finished job is left alone",
        run=stop_job,
        before=_state_before("JobStatus"),
        state_field="JobStatus",
        act_states=frozenset({"InProgress"}),
        done_states=frozenset({"Stopping", "Stopped"}),
    ),
    "enable_vpc_dns": ActionSpec(
        name="enable_vpc_dns", resource_types=(VPC,), permissions=("ec2:ModifyVpcAttribute",),
        describe="enable DNS support, then DNS hostnames, on the VPC (one attribute per call)", run=enable_vpc_dns,
        before=_state_before("EnableDnsSupport", "EnableDnsHostnames"),
    ),
    "create_flow_log_all": ActionSpec(
        name="create_flow_log_all", resource_types=(VPC,),
        permissions=("ec2:CreateFlowLogs", "ec2:CreateTags", "iam:PassRole", "logs:CreateLogDelivery"),
        describe="create a flow log with traffic type ALL to the configured destination",
        run=create_flow_log_all, before=_state_before("FlowLogs"), unconfigured=_flow_log_destination,
        params=frozenset({"destination_type", "log_group_name", "deliver_logs_role_arn", "s3_bucket_arn"}),
    ),
    "disable_public_ip_on_launch": ActionSpec(
        name="disable_public_ip_on_launch", resource_types=(SUBNET,), permissions=("ec2:ModifySubnetAttribute",),
        describe="turn off MapPublicIpOnLaunch on the subnet", run=disable_public_ip_on_launch,
        before=_state_before("MapPublicIpOnLaunch"),
    ),
    "create_s3_gateway_endpoint": ActionSpec(
        name="create_s3_gateway_endpoint", resource_types=(VPC,),
        permissions=("ec2:CreateVpcEndpoint", "ec2:DescribeRouteTables", "ec2:CreateTags"),
        describe="create the S3 gateway endpoint (free) on the VPC's private route tables, with a deliberate policy",
        run=create_s3_gateway_endpoint, before=_state_before("Endpoints"), handles_targets=frozenset({"s3"}),
        params=frozenset({"aws_owned_buckets"}),
    ),
    "enable_private_dns": ActionSpec(
        name="enable_private_dns", resource_types=(VPC_ENDPOINT,), permissions=("ec2:ModifyVpcEndpoint",),
        describe="enable private DNS on the interface endpoint", run=enable_private_dns,
        before=_state_before("PrivateDnsEnabled"), state_field="VpcDns", act_states=frozenset({"ready"}),
        precondition=_private_dns_precondition,
    ),
    "domain_vpc_only": ActionSpec(
        name="domain_vpc_only", resource_types=(DOMAIN,), permissions=("sagemaker:UpdateDomain",),
        describe="set the domain's AppNetworkAccessType to VpcOnly (only while no app runs)", run=domain_vpc_only,
        before=_state_before("AppNetworkAccessType"), state_field="AppsState", act_states=frozenset({"none"}),
        defer_states=frozenset({"running"}), precondition=_vpc_only_precondition,
    ),
    "revoke_rules": ActionSpec(
        name="revoke_rules",
        resource_types=(SECURITY_GROUP,),
        permissions=("ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"),
        describe="revoke exactly the offending rules (by rule id), recorded for restore",
        run=revoke_rules,
        before=_rules_before,
    ),
    "tag_owner": ActionSpec(
        name="tag_owner", resource_types=RESOURCE_TYPES,
        permissions=("sagemaker:AddTags", "ec2:CreateTags"),
        describe="add the Owner tag from the CloudTrail principal that made the change",
        run=tag_owner, before=lambda resource, targets: {OWNER_TAG: resource.tags.get(OWNER_TAG)},
        needs_principal=True, handles_targets=frozenset({OWNER_TAG}),
    ),
}
