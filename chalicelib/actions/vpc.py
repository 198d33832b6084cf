"""VPCs: turn on their DNS attributes, add an ALL flow log, add the S3 gateway endpoint. Restore sets the
attributes back, and deletes only a flow log or an endpoint that netguard created (named in the action's
detail, tagged `netguard:created-by`)."""
from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import ClientError

from ..aws import error_code, error_message
from ..checks import internet_routes, live_endpoint
from ..errors import RemediationError
from ..model import ALREADY_DONE, FLOW_LOG, SUCCEEDED, ResourceRef, digest, join_ids
from .base import (
    ALREADY,
    EC2,
    ActionRequest,
    ActionResult,
    Call,
    Plan,
    RestoreRequest,
    attribute_plan,
    check,
    execute,
    failure,
    first_failure,
    make,
)
from .catalog import CREATED_BY_TAG

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


def _created(req: RestoreRequest, pattern: str) -> str | None:
    """The one id of that kind the action's detail names (the remediation says what it created)."""
    found = set(re.findall(pattern, req.record.detail))
    return found.pop() if len(found) == 1 else None


# --- DNS attributes ------------------------------------------------------------------------------

def enable_vpc_dns(req: ActionRequest) -> ActionResult:
    """Turn on the DNS attributes the failing controls check (their `field`), one per call, DNS
    support first: DNS hostnames can only be enabled once DNS support is."""
    wanted = {c.params.get("field") for c in req.controls}
    state, vpc_id = req.resource.state, req.resource.ref.resource_id
    calls = []
    if not state.get("EnableDnsSupport") and wanted & {"EnableDnsSupport", "EnableDnsHostnames"}:
        calls.append(EC2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True},
                                              says="enabled DNS support"))
    if not state.get("EnableDnsHostnames") and "EnableDnsHostnames" in wanted:
        calls.append(EC2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True},
                                              says="enabled DNS hostnames"))
    if not calls:
        return ActionResult(ALREADY_DONE, "DNS attributes already enabled")
    made = execute(calls, req.client)
    failed = first_failure(made)
    if failed is not None:
        attribute = next(k for k in failed.call.params if k != "VpcId")
        raise failure(failed, f"ModifyVpcAttribute({attribute})")
    return ActionResult(SUCCEEDED, ", then ".join(m.call.says for m in made))


def plan_vpc_dns(req: RestoreRequest) -> Plan:
    """ModifyVpcAttribute takes one attribute per call. DNS hostnames need DNS support: turning back
    off, hostnames go first; turning back on, support goes first."""
    order = ("EnableDnsSupport", "EnableDnsHostnames")
    if req.record.before.get("EnableDnsSupport") is False:
        order = order[::-1]
    vpc_id = req.record.ref.resource_id
    return attribute_plan(req, order, lambda name, value: Call(
        "ec2", "ModifyVpcAttribute", {"VpcId": vpc_id, name: {"Value": bool(value)}}, f"set {name} back to {value}"),
        read=lambda resource, name: bool(resource.state.get(name)))


# --- flow log ------------------------------------------------------------------------------------

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
    destination = params.get("LogDestination") or params["LogGroupName"]
    created = check(make(EC2.create_flow_logs(**params, says=f"create an ALL flow log to {destination}",
                                              done=("FlowLogAlreadyExists",)), req.client))
    if created.result == ALREADY:
        return ActionResult(ALREADY_DONE, "the flow log already exists")
    ids = created.answer.get("FlowLogIds", [])
    ref = req.resource.ref
    return ActionResult(SUCCEEDED, f"created ALL flow log {', '.join(ids)} to {destination}",
                        created=tuple(ResourceRef(FLOW_LOG, i, ref.account, ref.region) for i in ids))


def plan_flow_log(req: RestoreRequest) -> Plan:
    """Delete the flow log netguard created: named in the action's detail, on this VPC, tagged
    netguard:created-by, and not one of those that existed before. Anything else is refused."""
    vpc_id = req.record.ref.resource_id
    flow_log_id = _created(req, r"\bfl-[0-9a-f]+\b")
    if flow_log_id is None:
        return Plan(refused=f"the record does not name the flow log netguard created ({req.record.detail!r})")
    if flow_log_id in {f.get("FlowLogId") for f in req.record.before.get("FlowLogs") or []}:
        return Plan(refused=f"{flow_log_id} existed before netguard acted: not netguard's to delete")
    found = req.client("ec2").describe_flow_logs(FlowLogIds=[flow_log_id]).get("FlowLogs", [])
    if not found:
        return Plan(unchanged=(f"flow log {flow_log_id} no longer exists",))
    flow_log = found[0]
    tags = {t.get("Key") for t in flow_log.get("Tags", [])}
    if flow_log.get("ResourceId") != vpc_id or CREATED_BY_TAG not in tags:
        return Plan(refused=f"{flow_log_id} is not on {vpc_id} with the {CREATED_BY_TAG} tag: not deleted")
    return Plan((Call("ec2", "DeleteFlowLogs", {"FlowLogIds": [flow_log_id]},
                      f"delete the ALL flow log {flow_log_id} netguard created",
                      done_codes=("InvalidFlowLogId.NotFound",)),),
                notes=("without it the VPC has no record of its traffic",))


# --- S3 gateway endpoint -------------------------------------------------------------------------

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
    vpc_id, ref = req.resource.ref.resource_id, req.resource.ref
    if any(e.get("Service") == "s3" and e.get("VpcEndpointType") == "Gateway" and live_endpoint(e)
           for e in req.resource.state.get("Endpoints", [])):
        return ActionResult(ALREADY_DONE, "an S3 gateway endpoint already exists")
    try:
        ec2 = req.client("ec2")
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    except ClientError as exc:
        raise RemediationError(f"CreateVpcEndpoint: {error_code(exc)}: {error_message(exc)}") from exc
    private = sorted(t["RouteTableId"] for t in tables if not internet_routes(t))
    if not private:
        raise RemediationError(f"CreateVpcEndpoint: {vpc_id} has no private route table to attach S3 to")
    created = check(make(EC2.create_vpc_endpoint(
        VpcEndpointType="Gateway", VpcId=vpc_id, ServiceName=f"com.amazonaws.{ref.region}.s3",
        RouteTableIds=private, PolicyDocument=deliberate_s3_policy(
            ref.account, ref.region, tuple(req.param("aws_owned_buckets", AWS_OWNED_BUCKETS))),
        ClientToken=f"netguard-{digest([vpc_id, 's3', req.context.event_id], 24)}",
        TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": _created_tags(req)}],
        says=f"create the S3 gateway endpoint on {', '.join(private)}"), req.client))
    endpoint_id = created.answer["VpcEndpoint"]["VpcEndpointId"]
    return ActionResult(SUCCEEDED, f"created S3 gateway endpoint {endpoint_id} on {', '.join(private)} "
                                   "(the account's principals, and reading ECR image layers and Amazon Linux "
                                   "repositories; TLS required); interface endpoints cost money: create those "
                                   "yourself")


def plan_s3_endpoint(req: RestoreRequest) -> Plan:
    """Delete the S3 gateway endpoint netguard created, under the same conditions as a flow log."""
    vpc_id = req.record.ref.resource_id
    endpoint_id = _created(req, r"\bvpce-[0-9a-f]+\b")
    if endpoint_id is None:
        return Plan(refused=f"the record does not name the endpoint netguard created ({req.record.detail!r})")
    if endpoint_id in {e.get("VpcEndpointId") for e in req.record.before.get("Endpoints") or []}:
        return Plan(refused=f"{endpoint_id} existed before netguard acted: not netguard's to delete")
    try:
        found = req.client("ec2").describe_vpc_endpoints(VpcEndpointIds=[endpoint_id]).get("VpcEndpoints", [])
    except ClientError as exc:
        if error_code(exc) not in ("InvalidVpcEndpointId.NotFound", "InvalidVpcEndpoint.NotFound"):
            raise
        found = []
    if not found or str(found[0].get("State", "")).lower() in ("deleted", "deleting"):
        return Plan(unchanged=(f"endpoint {endpoint_id} no longer exists",))
    endpoint = found[0]
    tags = {t.get("Key") for t in endpoint.get("Tags", [])}
    if (endpoint.get("VpcId") != vpc_id or endpoint.get("VpcEndpointType") != "Gateway"
            or not str(endpoint.get("ServiceName", "")).endswith(".s3") or CREATED_BY_TAG not in tags):
        return Plan(refused=f"{endpoint_id} is not an S3 gateway endpoint on {vpc_id} with the {CREATED_BY_TAG} tag: "
                            "not deleted")
    return Plan((Call("ec2", "DeleteVpcEndpoints", {"VpcEndpointIds": [endpoint_id]},
                      f"delete the S3 gateway endpoint {endpoint_id} netguard created",
                      done_codes=("InvalidVpcEndpointId.NotFound", "InvalidVpcEndpoint.NotFound")),),
                notes=("S3 traffic from the private subnets then leaves the VPC again (NAT or internet gateway)",))
