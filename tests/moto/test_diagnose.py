"""`netguard diagnose` against the field guide's secure architecture (netguard_testkit.secure_world): nothing
blocks any of its workloads, and each single breakage of the guide's troubleshooting list comes out as the
first cause, with its evidence and fix. Read-only: no call but Describe*/List*/Get* is made.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chalicelib.cli import build_parser
from chalicelib.diagnose.command import EXIT_CAUSES, EXIT_CLEAN, EXIT_ERROR, EXIT_USAGE, run_with
from netguard_testkit.faults import FaultInjector
from netguard_testkit.secure_world import SecureWorld, build_secure_world
from netguard_testkit.world import remove_default_vpc

READ_PREFIXES = ("Describe", "List", "Get")
_README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
README = _README[_README.index("## Diagnosing a workload that cannot connect"):]
README = README[:README.index("\n## ")]  # that section


@pytest.fixture
def world(aws) -> SecureWorld:
    remove_default_vpc(aws.client("ec2"))
    return build_secure_world(aws.session, aws.account, aws.region)


def diagnose(aws, *argv: str) -> tuple[int, dict[str, Any] | str]:
    args = build_parser().parse_args(["diagnose", *argv])
    out = io.StringIO()
    code = run_with(aws.clients, aws.region, args, out)
    text = out.getvalue()
    return code, (json.loads(text) if "--format" in argv and text else text)


def json_of(aws, resource: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code, report = diagnose(aws, resource, "--format", "json", *extra)
    assert isinstance(report, dict)
    return code, report


def test_nothing_blocks_the_secure_architecture_and_nothing_is_written(aws, world):
    resources = {f"notebook/{world.notebook_name}": {"s3", "sts", "logs", "sagemaker.api", "sagemaker.runtime"},
                 f"training-job/{world.training_job_name}": {"s3", "ecr.api", "ecr.dkr", "sts", "logs"},
                 f"processing-job/{world.processing_job_name}": {"s3", "ecr.api", "ecr.dkr", "sts", "logs"},
                 f"tuning-job/{world.tuning_job_name}": {"s3", "ecr.api", "ecr.dkr", "sts", "logs"},
                 f"transform-job/{world.transform_job_name}": {"s3", "ecr.api", "ecr.dkr", "sts", "logs"},
                 f"endpoint/{world.endpoint_name}": {"s3", "ecr.api", "ecr.dkr", "sts", "logs"},
                 f"domain/{world.domain_id}": {"s3", "sts", "logs", "sagemaker.api", "sagemaker.runtime"},
                 world.training_job_arn: {"s3", "ecr.api", "ecr.dkr", "sts", "logs"}}
    for resource, destinations in resources.items():
        code, report = json_of(aws, resource)
        assert (code, report["causes"]) == (EXIT_CLEAN, []), (resource, report["causes"])
        assert set(report["reachable"]) == destinations, resource
    assert report["reachable"]["s3"].startswith(f"gateway endpoint {world.s3_gateway_endpoint_id}")
    assert world.interface_endpoints["sts"] in report["reachable"]["sts"]
    writes = [op for _, op in aws.calls.calls if not op.startswith(READ_PREFIXES)]
    assert aws.calls.calls and writes == []


def _recreate_sts(aws, world: SecureWorld, **kw: Any) -> str:
    ec2 = aws.client("ec2")
    ec2.delete_vpc_endpoints(VpcEndpointIds=[world.interface_endpoints["sts"]])
    params = {"VpcId": world.vpc_id, "VpcEndpointType": "Interface", "ServiceName": f"com.amazonaws.{aws.region}.sts",
              "SubnetIds": list(world.private_subnet_ids), "SecurityGroupIds": [world.sg_vpc_endpoint],
              "PrivateDnsEnabled": True, **kw}
    return ec2.create_vpc_endpoint(**params)["VpcEndpoint"]["VpcEndpointId"]


def _deny_https_out(aws, world: SecureWorld) -> None:
    aws.client("ec2").create_network_acl_entry(NetworkAclId=world.network_acl_id, RuleNumber=50, Protocol="6",
                                               RuleAction="deny", Egress=True, CidrBlock="0.0.0.0/0",
                                               PortRange={"From": 443, "To": 443})


def _close_training_egress(aws, world: SecureWorld) -> None:
    ec2 = aws.client("ec2")
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [world.sg_training]}])
    ec2.revoke_security_group_egress(GroupId=world.sg_training, SecurityGroupRuleIds=[
        r["SecurityGroupRuleId"] for r in rules["SecurityGroupRules"] if r["IsEgress"]])


def _custom_dns(aws, world: SecureWorld) -> None:
    ec2 = aws.client("ec2")
    dopt = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name-servers", "Values": ["10.20.9.9"]}])
    ec2.associate_dhcp_options(DhcpOptionsId=dopt["DhcpOptions"]["DhcpOptionsId"], VpcId=world.vpc_id)


def _remove_s3_route(aws, world: SecureWorld) -> None:
    ec2 = aws.client("ec2")
    ec2.modify_vpc_endpoint(VpcEndpointId=world.s3_gateway_endpoint_id,
                            RemoveRouteTableIds=[world.private_route_table_id])
    # AWS removes the endpoint's route with the table; moto 5.2.5 keeps it: remove it as AWS would
    ec2.delete_route(RouteTableId=world.private_route_table_id, DestinationPrefixListId=world.s3_prefix_list_id)


DENY_STS = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Principal": "*", "Action": "sts:*", "Resource": "*"},
    {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})

BREAKAGES: dict[str, tuple[Callable[[Any, SecureWorld], Any], str, str, set[str]]] = {
    # name: (break it, expected first cause code, its impact, the destinations it affects)
    "missing sts endpoint": (lambda aws, w: aws.client("ec2").delete_vpc_endpoints(
        VpcEndpointIds=[w.interface_endpoints["sts"]]), "no-path", "blocks", {"sts"}),
    # the endpoints first (four destinations), then S3's prefix list (one): two causes
    "security group egress closed": (_close_training_egress, "sg-egress", "blocks",
                                     {"ecr.api", "ecr.dkr", "sts", "logs"}),
    "sts endpoint in another zone": (lambda aws, w: _recreate_sts(aws, w, SubnetIds=[w.private_subnet_ids[1]]),
                                     "cross-az", "degrades", {"sts"}),
    "DNS support off": (lambda aws, w: aws.client("ec2").modify_vpc_attribute(
        VpcId=w.vpc_id, EnableDnsSupport={"Value": False}), "dns-support-off", "blocks",
        {"s3", "ecr.api", "ecr.dkr", "sts", "logs"}),
    "network ACL denies HTTPS out": (_deny_https_out, "nacl", "blocks", {"s3", "ecr.api", "ecr.dkr", "sts", "logs"}),
    "DHCP options with a custom DNS server": (_custom_dns, "dhcp-custom-dns", "may-block",
                                              {"ecr.api", "ecr.dkr", "sts", "logs"}),
    "endpoint policy denies sts": (lambda aws, w: aws.client("ec2").modify_vpc_endpoint(
        VpcEndpointId=w.interface_endpoints["sts"], PolicyDocument=DENY_STS), "endpoint-policy", "blocks", {"sts"}),
    "private DNS off on sts": (lambda aws, w: aws.client("ec2").modify_vpc_endpoint(
        VpcEndpointId=w.interface_endpoints["sts"], PrivateDnsEnabled=False), "private-dns-off", "blocks", {"sts"}),
    "S3 gateway endpoint off the route table": (_remove_s3_route, "no-path", "blocks", {"s3"}),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_one_breakage_is_the_first_cause(aws, world, name):
    breaks, code, impact, destinations = BREAKAGES[name]
    breaks(aws, world)
    exit_code, report = json_of(aws, f"training-job/{world.training_job_name}")
    first = report["causes"][0]
    assert (first["code"], first["impact"], set(first["destinations"])) == (code, impact, destinations), first
    assert first["fix"] and first["evidence"]
    assert exit_code == (EXIT_CLEAN if impact == "degrades" else EXIT_CAUSES)
    assert not set(report["reachable"]) & (destinations if impact != "degrades" else set())
    # read-only, and every call it made is one README tells the CLI user to allow
    assert [op for _, op in aws.calls.calls if not op.startswith(READ_PREFIXES)] == []
    assert {f"`{svc}:{op}`" for svc, op in aws.calls.calls} <= set(re.findall(r"`[a-z0-9]+:[A-Za-z]+`", README))


def test_evidence_names_the_ids_and_rules(aws, world):
    _deny_https_out(aws, world)
    _, report = json_of(aws, f"training-job/{world.training_job_name}")
    nacl = report["causes"][0]["evidence"]
    assert nacl["NetworkAclId"] == world.network_acl_id
    assert nacl["Rule"] == f"{world.network_acl_id} egress rule 50 deny tcp ports 443-443 0.0.0.0/0"
    assert "--rule-number 49" in report["causes"][0]["fix"]

    aws.client("ec2").delete_vpc_endpoints(VpcEndpointIds=[world.interface_endpoints["logs"]])
    _, report = json_of(aws, f"training-job/{world.training_job_name}", "--to", "logs")
    # only logs asked: with no endpoint and no NAT route there is no path for the NACL to deny
    assert [c["code"] for c in report["causes"]] == ["no-path"]
    missing = report["causes"][0]
    assert missing["evidence"]["RouteTableId"] == world.private_route_table_id
    assert f"--service-name com.amazonaws.{aws.region}.logs" in missing["fix"]


def test_table_output_orders_causes_and_says_how_the_rest_is_reached(aws, world):
    _close_training_egress(aws, world)
    _recreate_sts(aws, world, SubnetIds=[world.private_subnet_ids[1]])
    code, text = diagnose(aws, f"training-job/{world.training_job_name}")
    assert code == EXIT_CAUSES and isinstance(text, str)
    blocks, degrades = text.index("1. [blocks]"), text.index("[degrades]")
    assert blocks < degrades and "fix: aws ec2 authorize-security-group-egress" in text
    assert "--add-subnet-ids" in text


def test_a_notebook_with_direct_internet_uses_sagemakers_network(aws, world):
    sm = aws.client("sagemaker")
    sm.create_notebook_instance(NotebookInstanceName="nb-direct", InstanceType="ml.t3.medium",
                                RoleArn=world.sagemaker_role_arn, SubnetId=world.private_subnet_ids[0],
                                SecurityGroupIds=[world.sg_notebook], DirectInternetAccess="Enabled")
    aws.client("ec2").modify_vpc_attribute(VpcId=world.vpc_id, EnableDnsSupport={"Value": False})
    code, report = json_of(aws, "notebook/nb-direct")
    assert code == EXIT_CLEAN and report["causes"] == []
    assert report["workload"]["sagemaker_network"].startswith("DirectInternetAccess Enabled")
    assert all("SageMaker's own network" in how for how in report["reachable"].values())


@pytest.mark.parametrize("argv, message", [
    (["model/x"], "unknown resource kind 'model'"),
    (["training-job/no_such job"], "not a valid training-job name"),
    (["training-job/does-not-exist"], "training-job/does-not-exist not found"),
    (["arn:aws:s3:::bucket"], "not the ARN of a SageMaker"),
    (["arn:aws:sagemaker:us-east-1:111122223333:training-job/x"], "account 111122223333"),
    (["arn:aws:sagemaker:eu-west-1:123456789012:training-job/x", "--region", "us-east-1"], "the ARN is in eu-west-1"),
    (["training-job/x", "--to", "sts;rm"], "not a service name"),
])
def test_usage_errors_exit_2_with_a_message(aws, world, capsys, argv, message):
    code, out = diagnose(aws, *argv)
    assert (code, out) == (EXIT_USAGE, "")
    assert message in capsys.readouterr().err


def test_a_read_that_fails_exits_3_and_says_which(aws, world, capsys):
    FaultInjector(rate=1.0, kinds=("denied",), services={"ec2"}).install(aws.clients._session)
    code, out = diagnose(aws, f"training-job/{world.training_job_name}")
    assert (code, out) == (EXIT_ERROR, "")
    err = capsys.readouterr().err
    assert "could not read training-job/" in err and "AccessDenied" in err
