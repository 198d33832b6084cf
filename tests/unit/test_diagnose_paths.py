"""`netguard diagnose` on plain data: what a packet meets (security groups, network ACLs both ways,
endpoint policies, DNS servers) and the paths `reach` follows from it, with no AWS at all."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from chalicelib.diagnose.gather import UsageError, destinations, parse_resource
from chalicelib.diagnose.model import Workload
from chalicelib.diagnose.reach import Network, diagnose
from chalicelib.diagnose.rules import (
    DENY,
    EPHEMERAL,
    HTTPS,
    PARTIAL,
    Target,
    custom_dns_servers,
    nacl_verdict,
    policy_verdict,
    sg_allows,
)
from chalicelib.model import DOMAIN, NOTEBOOK, TRAINING_JOB


def acl(*entries: tuple[int, bool, str, str, str, tuple[int, int] | None]) -> list[dict[str, Any]]:
    out = []
    for number, egress, protocol, action, cidr, ports in entries:
        entry: dict[str, Any] = {"RuleNumber": number, "Egress": egress, "Protocol": protocol, "RuleAction": action,
                                 ("Ipv6CidrBlock" if ":" in cidr else "CidrBlock"): cidr}
        if ports:
            entry["PortRange"] = {"From": ports[0], "To": ports[1]}
        out.append(entry)
    return out


@pytest.mark.parametrize("entries, egress, ports, cidr, verdict, rule", [
    (acl((100, True, "-1", "allow", "0.0.0.0/0", None)), True, HTTPS, "52.216.0.0/15", "allow", 100),
    (acl((50, True, "6", "deny", "0.0.0.0/0", (443, 443)), (100, True, "-1", "allow", "0.0.0.0/0", None)),
     True, HTTPS, "52.216.0.0/15", DENY, 50),
    # a deny of part of the addresses, before an allow of all: some connections time out
    (acl((50, True, "6", "deny", "52.216.0.0/16", (443, 443)), (100, True, "-1", "allow", "0.0.0.0/0", None)),
     True, HTTPS, "52.216.0.0/15", PARTIAL, 50),
    # the return traffic: only part of the ephemeral ports allowed back in, the rest hits the implicit deny
    (acl((100, False, "6", "allow", "0.0.0.0/0", (1024, 40000))), False, EPHEMERAL, "10.0.2.0/24", PARTIAL, 100),
    (acl((100, False, "6", "allow", "0.0.0.0/0", (1024, 65535))), False, EPHEMERAL, "10.0.2.0/24", "allow", 100),
    # an ingress rule says nothing about egress; UDP and IPv6 entries say nothing about TCP over IPv4
    (acl((100, False, "-1", "allow", "0.0.0.0/0", None), (110, True, "17", "allow", "0.0.0.0/0", None),
         (120, True, "-1", "allow", "::/0", None)), True, HTTPS, "10.0.2.0/24", DENY, None),
    # AWS's own last rule, listed by DescribeNetworkAcls
    (acl((32767, True, "-1", "deny", "0.0.0.0/0", None)), True, HTTPS, "10.0.2.0/24", DENY, 32767),
])
def test_network_acl_first_match_by_rule_number(entries, egress, ports, cidr, verdict, rule):
    got, entry = nacl_verdict(entries, egress, ports, cidr)
    assert (got, entry and entry["RuleNumber"]) == (verdict, rule)


def sg_rule(rule_id: str, egress: bool, protocol: str = "tcp", ports: tuple[int, int] | None = (443, 443),
            **other: Any) -> dict[str, Any]:
    rule = {"SecurityGroupRuleId": rule_id, "GroupId": "sg-w", "IsEgress": egress, "IpProtocol": protocol, **other}
    if ports:
        rule.update(FromPort=ports[0], ToPort=ports[1])
    return rule


S3 = Target(("52.216.0.0/15", "3.5.0.0/19"), prefix_list="pl-s3")


@pytest.mark.parametrize("rules, target, allowed", [
    ([sg_rule("sgr-1", True, PrefixListId="pl-s3")], S3, True),
    ([sg_rule("sgr-1", True, CidrIpv4="10.0.0.0/16")], S3, False),
    ([sg_rule("sgr-1", True, "-1", None, CidrIpv4="0.0.0.0/0")], S3, True),
    # one rule per block adds up; a block left out is not allowed
    ([sg_rule("sgr-1", True, CidrIpv4="52.216.0.0/15"), sg_rule("sgr-2", True, CidrIpv4="3.5.0.0/16")], S3, True),
    ([sg_rule("sgr-1", True, CidrIpv4="52.216.0.0/15")], S3, False),
    ([sg_rule("sgr-1", True, ports=(80, 80), CidrIpv4="0.0.0.0/0")], S3, False),
    ([sg_rule("sgr-1", False, CidrIpv4="0.0.0.0/0")], S3, False),  # ingress is not egress
    ([sg_rule("sgr-1", True, ReferencedGroupId="sg-endpoints")], Target(("10.0.1.0/24",), ("sg-endpoints",)), True),
    # a customer-managed prefix list, resolved by the security group collector
    ([sg_rule("sgr-1", True, PrefixListId="pl-mine", PrefixListCidrs=["10.0.0.0/16"])], Target(("10.0.1.0/24",)),
     True),
])
def test_security_group_rules_add_up(rules, target, allowed):
    assert sg_allows(rules, True, HTTPS, target)[0] is allowed


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


TLS_ONLY = {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
ACCOUNT_STS = {"Effect": "Allow", "Principal": "*", "Action": ["sts:AssumeRole"], "Resource": "*",
               "Condition": {"StringEquals": {"aws:PrincipalAccount": "123456789012"}}}
LAYERS = "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/*"


@pytest.mark.parametrize("document, action, resource, denied, maybe", [
    (None, "sts:AssumeRole", "*", False, False),  # no policy: AWS's full access
    (policy(TLS_ONLY, ACCOUNT_STS), "sts:AssumeRole", "*", False, False),
    (policy(TLS_ONLY, ACCOUNT_STS), "logs:PutLogEvents", "*", True, False),  # nothing allows it
    (policy({"Effect": "Deny", "Principal": "*", "Action": "sts:*", "Resource": "*"}, ACCOUNT_STS),
     "sts:AssumeRole", "*", True, False),
    (policy({"Effect": "Deny", "Principal": "*", "NotAction": "logs:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}), "sts:AssumeRole", "*", True, False),
    # a Deny under a condition netguard cannot evaluate is not a certain deny
    (policy({"Effect": "Deny", "Principal": "*", "Action": "sts:*", "Resource": "*",
             "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-1"}}}, ACCOUNT_STS),
     "sts:AssumeRole", "*", False, True),
    (policy({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/x"}, "Action": "*",
             "Resource": "*"}), "sts:AssumeRole", "*", False, True),
    # the ECR layer bucket: an S3 policy scoped to the project's buckets blocks image pulls
    (policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::proj-*/*"}),
     "s3:GetObject", LAYERS, True, False),
    (policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": [LAYERS]}),
     "s3:GetObject", LAYERS, False, False),
])
def test_endpoint_policy_verdicts(document, action, resource, denied, maybe):
    verdict = policy_verdict(document, action, resource)
    assert (verdict.denied, verdict.maybe) == (denied, maybe), verdict.reason


def test_the_amazon_dns_server_is_not_a_custom_one():
    assert custom_dns_servers(["AmazonProvidedDNS"], ["10.20.0.0/16"]) == []
    assert custom_dns_servers(["10.20.0.2", "169.254.169.253"], ["10.20.0.0/16"]) == []
    assert custom_dns_servers(["10.20.9.9", "AmazonProvidedDNS"], ["10.20.0.0/16"]) == ["10.20.9.9"]


@pytest.mark.parametrize("spec, expected", [
    ("training-job/Train-1", (TRAINING_JOB, "Train-1", None, None)),
    ("notebook/nb", (NOTEBOOK, "nb", None, None)),
    ("domain/d-abc123", (DOMAIN, "d-abc123", None, None)),
    ("arn:aws:sagemaker:eu-west-1:111122223333:notebook-instance/nb", (NOTEBOOK, "nb", "eu-west-1", "111122223333")),
])
def test_resource_names(spec, expected):
    assert parse_resource(spec) == expected


@pytest.mark.parametrize("spec", ["model/m", "notebook/", "notebook/a b", "domain/abc", "arn:aws:ec2:us-east-1:1:vpc/x",
                                  "training-job/-x", "arn:aws:sagemaker:us-east-1:1:training-job"])
def test_bad_resource_names_are_usage_errors(spec):
    with pytest.raises(UsageError):
        parse_resource(spec)


def test_destinations_are_the_policys_essential_endpoints_this_kind_calls():
    assert destinations(TRAINING_JOB, ["s3", "sts", "logs", "sagemaker.api"], None) == ("s3", "sts", "logs")
    assert destinations(NOTEBOOK, ["s3", "sts"], ["sts", "sts", "ssm"]) == ("sts", "ssm")


# --- reach, over a small plain world ----------------------------------------------------------

OPEN_ACL = {"NetworkAclId": "acl-1", "Entries": acl((100, True, "-1", "allow", "0.0.0.0/0", None),
                                                    (100, False, "-1", "allow", "0.0.0.0/0", None))}


def subnet(sid: str, cidr: str, zone: str, routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"SubnetId": sid, "CidrBlock": cidr, "AvailabilityZone": zone, "NetworkAcl": copy.deepcopy(OPEN_ACL),
            "RouteTable": {"RouteTableId": "rtb-1", "Routes": [{"DestinationCidrBlock": "10.0.0.0/16",
                                                               "GatewayId": "local", "State": "active"}, *routes]}}


def world(routes: list[dict[str, Any]] | None = None, endpoints: bool = True, **vpc: Any) -> Network:
    subnets = {"subnet-a": subnet("subnet-a", "10.0.1.0/24", "az-a", routes or []),
               "subnet-b": subnet("subnet-b", "10.0.2.0/24", "az-b", routes or [])}
    rules = {"sg-w": [sg_rule("sgr-1", True, CidrIpv4="10.0.0.0/16")],
             "sg-e": [sg_rule("sgr-2", False, CidrIpv4="10.0.0.0/16")]}
    sts = {"VpcEndpointId": "vpce-sts", "Service": "sts", "VpcEndpointType": "Interface", "State": "available",
           "PrivateDnsEnabled": True, "PolicyDocument": None, "SubnetIds": ["subnet-a", "subnet-b"],
           "Groups": ["sg-e"], "RouteTableIds": []}
    return Network("us-east-1", {"VpcId": "vpc-1", "CidrBlocks": ["10.0.0.0/16"], "EnableDnsSupport": True,
                                 "EnableDnsHostnames": True, "DhcpOptionsId": "default",
                                 "DomainNameServers": ["AmazonProvidedDNS"], **vpc},
                   subnets, rules, (sts,) if endpoints else (), {})


def job(*needs: str, **kw: Any) -> Workload:
    return Workload("training-job/t", TRAINING_JOB, "arn", "InProgress", "vpc-1", ("subnet-a",), ("sg-w",),
                    needs=needs or ("sts",), **kw)


NAT = {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1", "State": "active"}
IGW = {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1", "State": "active"}


def test_an_interface_endpoint_reached_from_the_vpc():
    found = diagnose(job(), world())
    assert found.causes == () and found.reachable["sts"].startswith("interface endpoint vpce-sts")


def test_without_an_endpoint_a_nat_route_is_a_path_if_egress_allows_the_internet():
    net = world([NAT], endpoints=False)
    found = diagnose(job(), net)
    assert [c.code for c in found.causes] == ["sg-egress"] and found.blocked
    net.rules["sg-w"].append(sg_rule("sgr-9", True, CidrIpv4="0.0.0.0/0"))
    found = diagnose(job(), net)
    assert found.causes == () and found.reachable == {"sts": "the public endpoint through NAT gateway nat-1"}


def test_an_internet_gateway_is_no_way_out_for_sagemaker():
    found = diagnose(job(), world([IGW], endpoints=False))
    assert [c.code for c in found.causes] == ["no-path"]
    assert "no public address" in found.causes[0].evidence["NoInternet"]


def test_dns_hostnames_off_blocks_private_dns_unless_nat_takes_the_public_name():
    found = diagnose(job(), world(EnableDnsHostnames=False))
    assert [c.code for c in found.causes] == ["dns-hostnames-off"]
    net = world([NAT], EnableDnsHostnames=False)
    net.rules["sg-w"].append(sg_rule("sgr-9", True, CidrIpv4="0.0.0.0/0"))
    assert diagnose(job(), net).reachable["sts"].endswith("nat-1")


def test_some_endpoint_addresses_unreachable_may_block():
    net = world()
    net.rules["sg-w"][0]["CidrIpv4"] = "10.0.1.0/24"  # only the endpoint's interface in subnet-a
    found = diagnose(Workload("training-job/t", TRAINING_JOB, "arn", None, "vpc-1", ("subnet-a",), ("sg-w",),
                              needs=("sts",)), net)
    assert [(c.code, c.impact) for c in found.causes] == [("sg-egress", "may-block")]
    assert found.causes[0].evidence["Needs"] == ["tcp/443 -> vpce-sts in subnet-b"]


def test_the_endpoints_group_must_let_the_workload_in():
    net = world()
    net.rules["sg-e"][0]["CidrIpv4"] = "10.0.200.0/24"
    found = diagnose(job(), net)
    assert [(c.code, c.impact) for c in found.causes] == [("endpoint-sg-ingress", "blocks")]
    assert "UserIdGroupPairs=[{GroupId=sg-w}]" in found.causes[0].fix


def test_a_network_acl_that_blocks_return_traffic_between_subnets():
    net = world()
    entries = net.subnets["subnet-b"]["NetworkAcl"]["Entries"]
    entries.insert(0, acl((10, True, "6", "deny", "10.0.1.0/24", (1024, 65535)))[0])  # subnet-b cannot answer a
    found = diagnose(job(), net)
    # the interface in subnet-a is in the workload's own subnet (no ACL between them): some connections work
    assert [(c.code, c.impact) for c in found.causes] == [("nacl", "may-block")]
    assert found.causes[0].evidence["Rule"].startswith("acl-1 egress rule 10 deny")


def test_causes_are_ordered_most_blocking_first():
    net = world(EnableDnsSupport=False)
    net.rules["sg-w"].clear()
    found = diagnose(job("sts"), net)
    assert [c.code for c in found.causes] == ["dns-support-off", "sg-egress"]


def test_a_studio_domain_on_public_internet_uses_sagemakers_network():
    domain = Workload("domain/d-1", DOMAIN, "arn", "InService", "vpc-1", ("subnet-a",), ("sg-w",),
                      "AppNetworkAccessType PublicInternetOnly: internet through SageMaker's VPC", needs=("sts", "s3"))
    found = diagnose(domain, None)
    assert not found.blocked and set(found.reachable) == {"sts", "s3"}


def test_an_endpoint_without_interfaces_is_no_path():
    net = world()
    net.endpoints[0]["SubnetIds"] = []
    found = diagnose(job(), net)
    assert [(c.code, c.impact) for c in found.causes] == [("endpoint-state", "blocks")] and not found.reachable
