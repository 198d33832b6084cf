"""Every action netguard may take, declared: what it acts on, from which states, what it needs, what it records
before acting and the IAM it is granted. Pure data and pure functions of a resource's state: policy and decide
read it without importing the code that writes (chalicelib/actions/<family>.py, bound to these declarations in
chalicelib.remediate). ACTION_SPECS lists them explicitly: importing a module registers nothing.

Adding an action: declare it here (with its statements), write its `run` (and `undo`) in the family's module,
bind them in chalicelib.remediate.ACTIONS, then `tools/stack.py write` grants its statements.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import DOMAIN, JOB_TYPES, NOTEBOOK, SECURITY_GROUP, SUBNET, VPC, VPC_ENDPOINT, Resource, split_ids
from ..resources import BY_TYPE, EVALUATED
from ..resources import SAGEMAKER as SAGEMAKER_TYPES
from .spec import ActionSpec, allow, state_before

OWNER_TAG = "Owner"
QUARANTINE_TAG = "netguard:quarantined"
CREATED_BY_TAG = "netguard:created-by"  # on what netguard creates (restore deletes only what carries it)

# --- IAM statements two actions share --------------------------------------------------------------

# The tags netguard writes on what it guards: the only keys its roles may write (with aws:TagKeys), on the
# ARNs of every taggable type of the registry. The notebook quarantine shares the SageMaker statement.
TAG_SAGEMAKER_RESOURCES = allow(
    "TagSageMakerResources", "sagemaker:AddTags",
    sorted(BY_TYPE[t].arn_pattern for t in SAGEMAKER_TYPES if BY_TYPE[t].taggable),
    {"ForAllValues:StringEquals": {"aws:TagKeys": [QUARANTINE_TAG, OWNER_TAG]}})
TAG_OWNER_ON_NETWORK_RESOURCES = allow(
    "TagOwnerOnNetworkResources", "ec2:CreateTags",
    [BY_TYPE[t].arn_pattern for t in EVALUATED if BY_TYPE[t].service == "ec2" and BY_TYPE[t].taggable],
    {"ForAllValues:StringEquals": {"aws:TagKeys": [OWNER_TAG]}})
# What netguard creates carries its created-by tag, written in the create call only (ec2:CreateAction).
TAG_WHAT_NETGUARD_CREATES = allow(
    "TagWhatNetguardCreates", "ec2:CreateTags", ["arn:aws:ec2:*:*:vpc-flow-log/*", "arn:aws:ec2:*:*:vpc-endpoint/*"],
    {"StringEquals": {"ec2:CreateAction": ["CreateFlowLogs", "CreateVpcEndpoint"]}})


# --- notebook instances ----------------------------------------------------------------------------

def _notebook_before(resource: Resource, targets: tuple[str, ...]) -> Mapping[str, Any]:
    return {
        "NotebookInstanceStatus": resource.state.get("NotebookInstanceStatus"),
        QUARANTINE_TAG: resource.tags.get(QUARANTINE_TAG),
    }


def _quarantine_holds(resource: Resource, control_id: str) -> bool:
    """Stopped (or stopping) and tagged for this control."""
    tagged = split_ids(resource.tags.get(QUARANTINE_TAG))
    return resource.state.get("NotebookInstanceStatus") in ("Stopping", "Stopped") and control_id in tagged


QUARANTINE_NOTEBOOK = ActionSpec(
    name="quarantine_notebook",
    resource_types=(NOTEBOOK,),
    permissions=("sagemaker:StopNotebookInstance", "sagemaker:AddTags", "sagemaker:DescribeNotebookInstance"),
    describe=f"stop the notebook instance and tag it {QUARANTINE_TAG}; the owner must recreate it",
    before=_notebook_before,
    state_field="NotebookInstanceStatus",
    act_states=frozenset({"InService"}),
    defer_states=frozenset({"Pending", "Updating"}),
    done_states=frozenset({"Stopping", "Stopped"}),
    holds_for=_quarantine_holds,
    statements=(allow("StopNotebooks", "sagemaker:StopNotebookInstance", "arn:aws:sagemaker:*:*:notebook-instance/*"),
                TAG_SAGEMAKER_RESOURCES),
)

# --- jobs ------------------------------------------------------------------------------------------

STOP_JOB = ActionSpec(
    name="stop_job",
    resource_types=JOB_TYPES,
    permissions=("sagemaker:StopTrainingJob", "sagemaker:StopProcessingJob",
                 "sagemaker:StopHyperParameterTuningJob", "sagemaker:StopTransformJob"),
    describe="stop the job (its network settings cannot be changed); a finished job is left alone",
    before=state_before("JobStatus"),
    state_field="JobStatus",
    act_states=frozenset({"InProgress"}),
    done_states=frozenset({"Stopping", "Stopped"}),
    irreversible="SageMaker cannot restart a stopped job: run it again (a new job, with compliant network settings)",
    statements=tuple(allow(f"Stop{kind}s", f"sagemaker:Stop{operation}", f"arn:aws:sagemaker:*:*:{arn}/*")
                     for kind, operation, arn in (("TrainingJob", "TrainingJob", "training-job"),
                                                  ("ProcessingJob", "ProcessingJob", "processing-job"),
                                                  ("TuningJob", "HyperParameterTuningJob",
                                                   "hyper-parameter-tuning-job"),
                                                  ("TransformJob", "TransformJob", "transform-job"))),
)

# --- VPCs ------------------------------------------------------------------------------------------


def _flow_log_destination(params: Mapping[str, Any]) -> str | None:
    if params.get("destination_type", "cloud-watch-logs") == "s3":
        return None if params.get("s3_bucket_arn") else "set s3_bucket_arn for VPC.3 in policies/vpc.toml"
    if params.get("log_group_name") and params.get("deliver_logs_role_arn"):
        return None
    return "set log_group_name and deliver_logs_role_arn (or destination_type = \"s3\") for VPC.3 in policies/vpc.toml"


ENABLE_VPC_DNS = ActionSpec(
    name="enable_vpc_dns", resource_types=(VPC,), permissions=("ec2:ModifyVpcAttribute",),
    describe="enable DNS support, then DNS hostnames, on the VPC (one attribute per call)",
    before=state_before("EnableDnsSupport", "EnableDnsHostnames"),
    statements=(allow("FixVpcDns", "ec2:ModifyVpcAttribute", "arn:aws:ec2:*:*:vpc/*"),),
)
CREATE_FLOW_LOG_ALL = ActionSpec(
    name="create_flow_log_all", resource_types=(VPC,),
    permissions=("ec2:CreateFlowLogs", "ec2:CreateTags", "iam:PassRole", "logs:CreateLogDelivery"),
    describe="create a flow log with traffic type ALL to the configured destination",
    before=state_before("FlowLogs"), unconfigured=_flow_log_destination,
    params=frozenset({"destination_type", "log_group_name", "deliver_logs_role_arn", "s3_bucket_arn"}),
    statements=(
        allow("CreateFlowLogs", "ec2:CreateFlowLogs", ["arn:aws:ec2:*:*:vpc/*", "arn:aws:ec2:*:*:vpc-flow-log/*"]),
        TAG_WHAT_NETGUARD_CREATES,
        allow("PassFlowLogDeliveryRole", "iam:PassRole", "arn:aws:iam::*:role/netguard-flow-logs*",
              {"StringEquals": {"iam:PassedToService": "vpc-flow-logs.amazonaws.com"}}),
        allow("FlowLogsToS3", "logs:CreateLogDelivery", "*"),  # IAM cannot scope it to a resource
    ),
)
CREATE_S3_GATEWAY_ENDPOINT = ActionSpec(
    name="create_s3_gateway_endpoint", resource_types=(VPC,),
    permissions=("ec2:CreateVpcEndpoint", "ec2:DescribeRouteTables", "ec2:CreateTags"),
    describe="create the S3 gateway endpoint (free) on the VPC's private route tables, with a deliberate policy",
    before=state_before("Endpoints"), handles_targets=frozenset({"s3"}), params=frozenset({"aws_owned_buckets"}),
    statements=(allow("CreateS3GatewayEndpoints", "ec2:CreateVpcEndpoint",
                      ["arn:aws:ec2:*:*:vpc/*", "arn:aws:ec2:*:*:vpc-endpoint/*", "arn:aws:ec2:*:*:route-table/*"]),
                TAG_WHAT_NETGUARD_CREATES),
)

# --- subnets, interface endpoints, Studio domains ---------------------------------------------------

DISABLE_PUBLIC_IP_ON_LAUNCH = ActionSpec(
    name="disable_public_ip_on_launch", resource_types=(SUBNET,), permissions=("ec2:ModifySubnetAttribute",),
    describe="turn off MapPublicIpOnLaunch on the subnet", before=state_before("MapPublicIpOnLaunch"),
    statements=(allow("FixSubnetPublicIps", "ec2:ModifySubnetAttribute", "arn:aws:ec2:*:*:subnet/*"),),
)


def _private_dns_precondition(resource: Resource) -> str | None:
    """AWS refuses private DNS for a name something else in the VPC serves already (another endpoint of
    the service with private DNS, or a private hosted zone associated with the VPC)."""
    conflict = resource.state.get("PrivateDnsConflict")
    return f"{conflict}: remove it (or keep using it) before private DNS can be enabled here" if conflict else None


ENABLE_PRIVATE_DNS = ActionSpec(
    name="enable_private_dns", resource_types=(VPC_ENDPOINT,), permissions=("ec2:ModifyVpcEndpoint",),
    describe="enable private DNS on the interface endpoint",
    before=state_before("PrivateDnsEnabled"), state_field="VpcDns", act_states=frozenset({"ready"}),
    precondition=_private_dns_precondition,
    statements=(allow("FixEndpointPrivateDns", "ec2:ModifyVpcEndpoint", "arn:aws:ec2:*:*:vpc-endpoint/*"),),
)


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


DOMAIN_VPC_ONLY = ActionSpec(
    name="domain_vpc_only", resource_types=(DOMAIN,), permissions=("sagemaker:UpdateDomain",),
    describe="set the domain's AppNetworkAccessType to VpcOnly (only while no app runs)",
    before=state_before("AppNetworkAccessType"), state_field="AppsState", act_states=frozenset({"none"}),
    defer_states=frozenset({"running"}), precondition=_vpc_only_precondition,
    statements=(allow("DomainsVpcOnly", "sagemaker:UpdateDomain", "arn:aws:sagemaker:*:*:domain/*"),),
)

# --- security groups, tags -------------------------------------------------------------------------


def _rules_before(resource: Resource, targets: tuple[str, ...]) -> Mapping[str, Any]:
    wanted = set(targets)
    return {
        "GroupId": resource.ref.resource_id,
        "Rules": [r for r in resource.state.get("Rules", []) if r.get("SecurityGroupRuleId") in wanted],
    }


REVOKE_RULES = ActionSpec(
    name="revoke_rules",
    resource_types=(SECURITY_GROUP,),
    permissions=("ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"),
    statements=(allow("RevokeRules", ["ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"],
                      "arn:aws:ec2:*:*:security-group/*"),),
    describe="revoke exactly the offending rules (by rule id), recorded for restore",
    before=_rules_before,
)
TAG_OWNER = ActionSpec(
    name="tag_owner", resource_types=EVALUATED,
    permissions=("sagemaker:AddTags", "ec2:CreateTags"),
    describe="add the Owner tag from the CloudTrail principal that made the change",
    before=lambda resource, targets: {OWNER_TAG: resource.tags.get(OWNER_TAG)},
    needs_principal=True, handles_targets=frozenset({OWNER_TAG}),
    statements=(TAG_SAGEMAKER_RESOURCES, TAG_OWNER_ON_NETWORK_RESOURCES),
)

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
SPECS: dict[str, ActionSpec] = {spec.name: spec for spec in ACTION_SPECS}


def acts_on(specs: tuple[ActionSpec, ...] = ACTION_SPECS) -> Mapping[str, tuple[str, ...]]:
    """The resource types each action acts on, by action name."""
    return {spec.name: spec.resource_types for spec in specs}
