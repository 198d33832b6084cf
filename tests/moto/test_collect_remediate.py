"""Collectors and remediations against moto (notebooks made AWS-like by netguard_testkit.moto_fidelity)."""
from __future__ import annotations

import pytest
from botocore.stub import Stubber

from chalicelib.collect import Collector
from chalicelib.errors import RemediationError
from chalicelib.model import (
    ALREADY_DONE,
    NOTEBOOK,
    SECURITY_GROUP,
    SUBNET,
    SUCCEEDED,
    VPC,
    EventContext,
    ResourceRef,
)
from chalicelib.policy import load_policy
from chalicelib.remediate import ACTIONS, QUARANTINE_TAG, ActionRequest
from netguard_testkit.moto_fidelity import attach_notebook_eni, notebook_status, set_status
from netguard_testkit.world import create_notebook, ingress_rule_ids, tcp


def run_action(aws, name, resource, targets=(), controls=("NB.1",), principal=None):
    policy = load_policy()
    request = ActionRequest(aws.clients, resource, tuple(targets), tuple(policy.control(c) for c in controls),
                            EventContext("evt-test", "api-call", principal=principal))
    return ACTIONS[name].run(request)


def collect_one(aws, rtype, rid):
    collected = Collector(aws.clients).collect([ResourceRef(rtype, rid, aws.account, aws.region)])
    return collected


def test_notebook_in_a_public_subnet_is_read_with_its_route_to_the_internet(aws, net):
    create_notebook(aws.client("sagemaker"), aws.account, "nb-public", net.public_subnet, [net.sg_jupyter],
                    direct_internet="Enabled", root_access="Disabled")
    collected = collect_one(aws, NOTEBOOK, "nb-public")
    notebook = next(r for r in collected.resources if r.ref.resource_type == NOTEBOOK)
    assert notebook.state["DirectInternetAccess"] == "Enabled"
    assert notebook.state["RootAccess"] == "Disabled"
    assert notebook.state["NotebookInstanceStatus"] == "Pending"
    routes = notebook.state["Subnet"]["RouteTable"]["Routes"]
    assert {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": net.igw_id} in [
        {k: r[k] for k in ("DestinationCidrBlock", "GatewayId") if k in r} for r in routes]
    # the notebook's security group comes along, known to be a notebook's group
    group = next(r for r in collected.resources if r.ref.resource_type == SECURITY_GROUP)
    assert group.ref.resource_id == net.sg_jupyter and "notebook" in group.state["AttachedTo"]
    assert group.state["VpcCidrs"] == ["10.0.0.0/16"]


def test_subnet_without_explicit_route_table_uses_the_main_table(aws, net):
    ec2 = aws.client("ec2")
    lonely = ec2.create_subnet(VpcId=net.vpc_id, CidrBlock="10.0.50.0/24")["Subnet"]["SubnetId"]
    create_notebook(aws.client("sagemaker"), aws.account, "nb-main", lonely, [net.sg_notebook_ok],
                    direct_internet="Disabled")
    notebook = collect_one(aws, NOTEBOOK, "nb-main").resources[0]
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [net.vpc_id]},
                                              {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    assert notebook.state["Subnet"]["RouteTable"]["RouteTableId"] == main["RouteTableId"]


@pytest.mark.parametrize("workers", [1, 8])  # 8: an event reads a resource's lookups together
def test_missing_resources_are_reported_missing_not_errors(aws, net, workers):
    gone = [ResourceRef(NOTEBOOK, "gone", aws.account, aws.region),
            ResourceRef(SUBNET, "subnet-0000000000000dead", aws.account, aws.region),
            ResourceRef(VPC, "vpc-0000000000000dead", aws.account, aws.region),
            ResourceRef(SECURITY_GROUP, "sg-0000000000000dead", aws.account, aws.region)]
    collected = Collector(aws.clients, workers=workers).collect(gone)
    assert sorted(r.resource_id for r in collected.missing) == sorted(r.resource_id for r in gone)
    assert not collected.errors and not collected.resources


def test_security_group_users_come_from_its_network_interfaces(aws, net):
    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb-x")
    group = collect_one(aws, SECURITY_GROUP, net.sg_ssh_open).resources[0]
    assert group.state["AttachedTo"] == ["notebook", "sagemaker"]
    unused = collect_one(aws, SECURITY_GROUP, net.sg_notebook_ok).resources[0]
    assert unused.state["AttachedTo"] == []


def test_one_event_reads_only_its_resources_whatever_the_size_of_the_account(aws, net):
    """Per-event work must not grow with the account: the same calls with 1 or 20 other notebooks."""
    sm = aws.client("sagemaker")
    create_notebook(sm, aws.account, "target", net.public_subnet, [net.sg_jupyter])

    def calls_for_one_event():
        aws.calls.calls.clear()
        collect_one(aws, NOTEBOOK, "target")
        return list(aws.calls.ops())

    small = calls_for_one_event()
    for i in range(20):
        create_notebook(sm, aws.account, f"other-{i}", net.private_subnets[0], [net.sg_notebook_ok], "Disabled")
        aws.client("ec2").create_security_group(GroupName=f"g{i}", Description="g", VpcId=net.vpc_id)
    assert calls_for_one_event() == small
    assert "ListNotebookInstances" not in small and small.count("DescribeNotebookInstance") == 1
    assert all(op.startswith(("Describe", "List")) for op in small)
    assert small.count("DescribeVpcs") == 1  # shared lookups are read once per run


# --- remediations -------------------------------------------------------------------------------

def test_quarantine_stops_and_tags_once_and_is_idempotent(aws, net):
    sm = aws.client("sagemaker")
    create_notebook(sm, aws.account, "nb-open", net.private_subnets[0], [net.sg_notebook_ok])
    set_status(aws.account, aws.region, "nb-open", "InService")
    notebook = collect_one(aws, NOTEBOOK, "nb-open").resources[0]
    first = run_action(aws, "quarantine_notebook", notebook)
    assert first.result == SUCCEEDED and "stopped" in first.detail and "recreate" in first.detail
    assert notebook_status(aws.account, aws.region, "nb-open") == "Stopping"
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=notebook.arn)["Tags"]}
    assert tags[QUARANTINE_TAG] == "NB.1"
    # run again on a fresh read: nothing left to do, and no write call
    aws.calls.calls.clear()
    again = run_action(aws, "quarantine_notebook", collect_one(aws, NOTEBOOK, "nb-open").resources[0])
    assert again.result == ALREADY_DONE
    assert aws.calls.writes() == []


def test_quarantine_on_a_stale_read_treats_already_stopping_as_done(aws, net):
    sm = aws.client("sagemaker")
    create_notebook(sm, aws.account, "nb-race", net.private_subnets[0], [net.sg_notebook_ok])
    set_status(aws.account, aws.region, "nb-race", "InService")
    stale = collect_one(aws, NOTEBOOK, "nb-race").resources[0]
    sm.stop_notebook_instance(NotebookInstanceName="nb-race")  # someone else got there first
    result = run_action(aws, "quarantine_notebook", stale)
    assert result.result == SUCCEEDED and "stopped" not in result.detail.split(";")[0]


def test_stop_refused_by_aws_is_a_failure_with_the_error(aws, net):
    """moto cannot refuse a stop for another reason: a botocore Stubber plays SageMaker's answer."""
    sm = aws.client("sagemaker")
    create_notebook(sm, aws.account, "nb-denied", net.private_subnets[0], [net.sg_notebook_ok])
    set_status(aws.account, aws.region, "nb-denied", "InService")
    notebook = collect_one(aws, NOTEBOOK, "nb-denied").resources[0]
    client = aws.clients.client("sagemaker", aws.region, aws.account)
    with Stubber(client) as stub:
        stub.add_client_error("stop_notebook_instance", "AccessDeniedException",
                              "not authorized to StopNotebookInstance")
        stub.add_response("describe_notebook_instance", {"NotebookInstanceStatus": "InService"})
        with pytest.raises(RemediationError, match="AccessDeniedException: not authorized"):
            run_action(aws, "quarantine_notebook", notebook)


def test_revoke_removes_exactly_the_offending_rules_by_id_and_is_idempotent(aws, net):
    ec2 = aws.client("ec2")
    ec2.authorize_security_group_ingress(GroupId=net.sg_ssh_open, IpPermissions=[tcp(443, "10.0.0.0/16"),
                                                                                 tcp(3389, "::/0")])
    group = collect_one(aws, SECURITY_GROUP, net.sg_ssh_open).resources[0]
    open_ids = tuple(r["SecurityGroupRuleId"] for r in group.state["Rules"]
                     if not r["IsEgress"] and (r.get("CidrIpv4") == "0.0.0.0/0" or r.get("CidrIpv6") == "::/0"))
    assert len(open_ids) == 2
    before = ACTIONS["revoke_rules"].before(group, open_ids)
    assert sorted(r["SecurityGroupRuleId"] for r in before["Rules"]) == sorted(open_ids)
    assert run_action(aws, "revoke_rules", group, open_ids, ("SG.1",)).result == SUCCEEDED
    left = ingress_rule_ids(ec2, net.sg_ssh_open)
    assert [r["FromPort"] for r in left.values()] == [443]
    again = run_action(aws, "revoke_rules", group, open_ids, ("SG.1",))
    assert again.result == ALREADY_DONE and "already" in again.detail


def test_revoke_with_one_rule_already_gone_still_revokes_the_rest(aws, net):
    ec2 = aws.client("ec2")
    ec2.authorize_security_group_ingress(GroupId=net.sg_ssh_open, IpPermissions=[tcp(3389, "0.0.0.0/0")])
    group = collect_one(aws, SECURITY_GROUP, net.sg_ssh_open).resources[0]
    ids = tuple(sorted(ingress_rule_ids(ec2, net.sg_ssh_open)))
    ec2.revoke_security_group_ingress(GroupId=net.sg_ssh_open, SecurityGroupRuleIds=[ids[0]])
    result = run_action(aws, "revoke_rules", group, ids, ("SG.1",))
    assert result.result == SUCCEEDED and ids[1] in result.detail and "already gone" in result.detail
    assert ingress_rule_ids(ec2, net.sg_ssh_open) == {}


# AWS's own answers for deleted resources (botocore Stubber: moto words them differently)
GONE_ANSWERS = [
    ("describe_model", {"ModelName": "m-gone"}, "ValidationException",
     'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/m-gone".', "AWS::SageMaker::Model",
     "m-gone"),
    ("describe_endpoint_config", {"EndpointConfigName": "ec-gone"}, "ValidationException",
     'Could not find endpoint configuration "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/ec-gone".',
     "AWS::SageMaker::EndpointConfig", "ec-gone"),
    ("describe_endpoint", {"EndpointName": "ep-gone"}, "ValidationException",
     'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep-gone".',
     "AWS::SageMaker::Endpoint", "ep-gone"),
    ("describe_vpc_endpoints", {"VpcEndpointIds": ["vpce-0123456789abcdef0"]}, "InvalidVpcEndpointId.NotFound",
     "The Vpc Endpoint Id 'vpce-0123456789abcdef0' does not exist", "AWS::EC2::VPCEndpoint",
     "vpce-0123456789abcdef0"),
]


@pytest.mark.parametrize("operation, params, code, message, rtype, rid", GONE_ANSWERS,
                         ids=[g[0] for g in GONE_ANSWERS])
def test_aws_answers_for_deleted_resources_are_missing_not_read_errors(aws, operation, params, code, message,
                                                                       rtype, rid):
    service = "ec2" if operation == "describe_vpc_endpoints" else "sagemaker"
    client = aws.clients.client(service, aws.region, aws.account)
    with Stubber(client) as stub:
        stub.add_client_error(operation, service_error_code=code, service_message=message, http_status_code=400,
                              expected_params=params)
        collected = Collector(aws.clients, {rtype}).collect([ResourceRef(rtype, rid, aws.account, aws.region)])
        stub.assert_no_pending_responses()
    assert [r.resource_id for r in collected.missing] == [rid] and not collected.errors


def test_a_deleted_route_table_in_an_event_is_missing_not_an_error(aws, net):
    from chalicelib.model import ROUTE_TABLE

    client = aws.clients.client("ec2", aws.region, aws.account)
    with Stubber(client) as stub:
        stub.add_client_error("describe_route_tables", service_error_code="InvalidRouteTableID.NotFound",
                              service_message="The routeTable ID 'rtb-0123456789abcdef0' does not exist",
                              http_status_code=400, expected_params={"RouteTableIds": ["rtb-0123456789abcdef0"]})
        collected = Collector(aws.clients).collect([ResourceRef(ROUTE_TABLE, "rtb-0123456789abcdef0", aws.account,
                                                                aws.region)])
    assert not collected.errors and not collected.resources


def test_the_owner_tag_is_a_value_sagemaker_takes_whatever_the_principal(aws, net):
    """Role session names may hold commas and ARNs run to 2,048 characters; SageMaker tag values take
    neither (its TagValue pattern, 256 characters). moto checks nothing: the model's pattern does."""
    import sys

    sys.path.insert(0, "tests")
    from conftest import sagemaker_accepts_tag

    sm = aws.client("sagemaker")
    create_notebook(sm, aws.account, "nb-untagged", net.private_subnets[0], [net.sg_notebook_ok],
                    direct_internet="Disabled")
    arn = sm.describe_notebook_instance(NotebookInstanceName="nb-untagged")["NotebookInstanceArn"]
    sm.delete_tags(ResourceArn=arn, TagKeys=["Owner"])
    notebook = collect_one(aws, NOTEBOOK, "nb-untagged").resources[0]
    principal = f"arn:aws:sts::{aws.account}:assumed-role/{'r' * 64}/alice,bob@example.com" + "x" * 300
    result = run_action(aws, "tag_owner", notebook, targets=("Owner",), controls=("TAG.1",), principal=principal)
    owner = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=notebook.arn)["Tags"]}["Owner"]
    assert result.result == SUCCEEDED and sagemaker_accepts_tag("Owner", owner)
    assert owner.startswith(f"arn:aws:sts::{aws.account}:assumed-role/") and owner.endswith("x" * 100)
    assert result.detail == f"tagged Owner={owner}"  # what restore compares with


def test_what_netguard_creates_in_a_vpc_keeps_within_ec2s_50_tags(aws, net, monkeypatch):
    ec2 = aws.client("ec2")
    present = {t["Key"] for t in ec2.describe_vpcs(VpcIds=[net.vpc_id])["Vpcs"][0].get("Tags", [])}
    many = {"Environment": "prod", "Owner": "ml@example.com"}
    many |= {f"team:{i:02d}": "x" for i in range(50 - len(present | set(many)))}  # EC2's limit: 50 on the VPC
    ec2.create_tags(Resources=[net.vpc_id], Tags=[{"Key": k, "Value": v} for k, v in many.items()])
    ec2.delete_flow_logs(FlowLogIds=[f["FlowLogId"] for f in ec2.describe_flow_logs()["FlowLogs"]])
    vpc = collect_one(aws, VPC, net.vpc_id).resources[0]
    assert len(vpc.tags) == 50  # with netguard:created-by, 51 for the flow log: one must go
    result = run_action(aws, "create_flow_log_all", vpc, controls=("VPC.3",))
    assert result.result == SUCCEEDED
    created = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [net.vpc_id]}])["FlowLogs"][0]
    tags = {t["Key"]: t["Value"] for t in created["Tags"]}
    assert len(tags) == 50 and tags["netguard:created-by"] == "VPC.3"
    assert tags["Environment"] == "prod" and tags["Owner"] == "ml@example.com"
    assert result.created and result.created[0].resource_id == created["FlowLogId"]


def endpoint_policy_allows(policy: dict, account: str, action: str, resource: str, tls: bool = True) -> bool:
    """IAM's evaluation of a gateway endpoint policy for one request (Allow needed, Deny wins), for the
    condition operators the policy uses (StringEquals, Bool)."""
    import fnmatch

    context = {"aws:PrincipalAccount": account, "aws:SecureTransport": "true" if tls else "false"}

    def matches(statement: dict) -> bool:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if not any(fnmatch.fnmatchcase(action, a) for a in actions):
            return False
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            return False
        for operator, pairs in statement.get("Condition", {}).items():
            assert operator in ("StringEquals", "Bool"), operator
            if any(context.get(key) != str(value).lower() if operator == "Bool" else context.get(key) != value
                   for key, value in pairs.items()):
                return False
        return True

    hits = [s["Effect"] for s in policy["Statement"] if matches(s)]
    return "Allow" in hits and "Deny" not in hits


def test_the_s3_gateway_endpoint_netguard_creates_keeps_ecr_pulls_working(aws, net):
    """ECR serves image layers from an S3 bucket it owns, through URLs it signs itself: an endpoint
    policy allowing only the account's principals makes every image pull (so every training job) fail
    with 403. The policy netguard attaches lets them through, and nothing else from other accounts."""
    from chalicelib.checks import endpoint_policy_restrictive

    ec2 = aws.client("ec2")
    for endpoint in ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [net.vpc_id]}])["VpcEndpoints"]:
        if endpoint["VpcEndpointType"] == "Gateway":
            ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])
    attach_notebook_eni(ec2, net.private_subnets[0], [net.sg_notebook_ok], "nb")
    vpc = collect_one(aws, VPC, net.vpc_id).resources[0]
    result = run_action(aws, "create_s3_gateway_endpoint", vpc, targets=("s3",), controls=("VPC.4",))
    assert result.result == SUCCEEDED
    [created] = [e for e in ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [net.vpc_id]}])[
        "VpcEndpoints"] if e["VpcEndpointType"] == "Gateway" and e["State"].lower() not in ("deleted", "deleting")]
    import json

    policy = json.loads(created["PolicyDocument"])
    ecr = "999999999999"  # the account of ECR's own signing credentials, not ours
    layer = f"arn:aws:s3:::prod-{aws.region}-starport-layer-bucket/sha256/abc"
    assert endpoint_policy_allows(policy, ecr, "s3:GetObject", layer)
    assert endpoint_policy_allows(policy, ecr, "s3:GetObject", f"arn:aws:s3:::al2023-repos-{aws.region}-de612dc2/x")
    assert not endpoint_policy_allows(policy, ecr, "s3:PutObject", layer)
    assert not endpoint_policy_allows(policy, ecr, "s3:GetObject", "arn:aws:s3:::someone-elses-bucket/data")
    assert endpoint_policy_allows(policy, aws.account, "s3:PutObject", "arn:aws:s3:::our-training-data/x")
    assert not endpoint_policy_allows(policy, aws.account, "s3:GetObject", layer, tls=False)
    assert endpoint_policy_restrictive({"PolicyDocument": created["PolicyDocument"]}, {}).status == "COMPLIANT"
