"""Declared network resources as the collectors' states: subnet views (their effective route table, through
the associations the file declares, else the VPC's main table), network ACLs, VPCs, security groups and
their rules, VPC endpoints. Field names and meanings are those of chalicelib/resources and Lookups.

Where AWS fills something in at creation, the state says what AWS does: a new VPC's main route table has
only the local route and its default network ACL allows everything; a CloudFormation security group without
SecurityGroupEgress keeps AWS's allow-all egress rule; an endpoint without a policy has the full-access one.
Property defaults are those of the AWS resource schemas (cfn-lint ships them): an endpoint is a Gateway one,
without private DNS; a VPC has DNS support and no DNS hostnames.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..reads import endpoint_service
from .index import Index, boolean, number, pick
from .model import Declared, Ref
from .unknown import Unknown, is_unknown, reason_of

VPC, SUBNET, ROUTE_TABLE = "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::RouteTable"
SECURITY_GROUP, VPC_ENDPOINT = "AWS::EC2::SecurityGroup", "AWS::EC2::VPCEndpoint"
FULL_ACCESS_POLICY = json.dumps({"Version": "2008-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})
ALLOW_ALL_ACL = [{"RuleNumber": number, "Egress": egress, "Protocol": "-1", "RuleAction": action,
                  "CidrBlock": "0.0.0.0/0"} for egress in (False, True)
                 for number, action in ((100, "allow"), (32767, "deny"))]
_PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1", "-1": "-1"}


def vpc_of(ix: Index, decl: Declared) -> Declared | None:
    return ix.follow(decl.properties.get("VpcId"), VPC)


def no_vpc(ix: Index, decl: Declared, what: str) -> Unknown:
    """Why `what` of a resource's VPC is unknown: its VpcId is, or the VPC is not declared in the file."""
    value = ix.resolve_attribute(decl.properties.get("VpcId"))
    if is_unknown(value):
        return Unknown(f"{decl.id}.VpcId: {reason_of(value)}")
    return Unknown(f"{decl.id}: {what} of a VPC not declared in the file")


def vpc_cidrs(ix: Index, vpc: Declared) -> Any:
    cidrs = [ix.resolve_attribute(vpc.properties.get("CidrBlock"))]
    extra, unsure = ix.pointing_at("AWS::EC2::VPCCidrBlock", "VpcId", vpc)
    cidrs += [ix.resolve_attribute(pick(d.properties, "CidrBlock", "Ipv6CidrBlock")) for d in extra]
    unknown = unsure if unsure is not None else next((c for c in cidrs if is_unknown(c) or not isinstance(c, str)),
                                                     None)
    if unknown is not None:
        return unknown if is_unknown(unknown) else Unknown(f"{vpc.id}: a CIDR block AWS allocates (IPAM, Amazon IPv6)")
    return sorted(set(cidrs))


def _route(ix: Index, decl: Declared) -> dict[str, Any]:
    props, out = decl.properties, {"State": "active"}
    for key in ("DestinationCidrBlock", "DestinationIpv6CidrBlock"):
        if key in props:
            out[key] = ix.resolve_attribute(props[key])
    for key in ("GatewayId", "NatGatewayId", "VpcEndpointId", "TransitGatewayId", "VpcPeeringConnectionId",
                "EgressOnlyInternetGatewayId", "NetworkInterfaceId", "InstanceId"):
        if props.get(key) is not None:
            out["GatewayId" if key in ("VpcEndpointId", "EgressOnlyInternetGatewayId") else key] = ix.ident(
                props[key], f"{decl.id}.{key}")
    return out


def route_table(ix: Index, subnet: Declared) -> Any:
    """The subnet's effective route table: its declared association, else its VPC's main table."""
    associated, unsure = ix.pointing_at("AWS::EC2::SubnetRouteTableAssociation", "SubnetId", subnet)
    if unsure is not None:
        return unsure
    if len(associated) > 1:
        return Unknown(f"{subnet.id} has {len(associated)} route table associations (AWS allows one)")
    if associated:
        chosen = ix.resolve_attribute(associated[0].properties.get("RouteTableId"))
        if is_unknown(chosen):
            return Unknown(f"{associated[0].id}.RouteTableId: {reason_of(chosen)}")
        table = ix.follow(chosen, ROUTE_TABLE)
        if table is None:
            return Unknown(f"{associated[0].id}.RouteTableId is not a route table declared in the file")
    else:
        vpc = vpc_of(ix, subnet)
        if vpc is None:
            return no_vpc(ix, subnet, "the main route table")
        table = next((t for t in ix.of_type(ROUTE_TABLE) if t.properties.get("netguard:main") and ix.follow(
            t.properties.get("VpcId"), VPC) is vpc), None)
        if table is None:  # AWS's main table of a new VPC: the local route only
            cidrs = vpc_cidrs(ix, vpc)
            local = cidrs if is_unknown(cidrs) else [{"DestinationCidrBlock": c, "GatewayId": "local",
                                                      "State": "active"} for c in cidrs]
            return {"RouteTableId": f"{vpc.id} main route table", "Routes": local}
    routes, unsure = ix.pointing_at("AWS::EC2::Route", "RouteTableId", table)
    vpc = vpc_of(ix, table)
    local_cidrs = vpc_cidrs(ix, vpc) if vpc is not None else no_vpc(ix, table, "the CIDRs")
    listed: list[Any] = [] if is_unknown(local_cidrs) else [
        {"DestinationCidrBlock": c, "GatewayId": "local", "State": "active"} for c in local_cidrs]
    listed += [_route(ix, r) for r in routes]
    if unsure is not None:
        listed.append(unsure)  # read after the known routes: a check that finds an internet route first decides
    return {"RouteTableId": table.id, "Routes": listed}


def subnet_view(ix: Index, value: Any, path: str) -> Any:
    """Lookups.subnet_view of a subnet the file declares; unknown for one it only names."""
    value = ix.resolve_attribute(value)
    if is_unknown(value):
        return value
    subnet = ix.follow(value, SUBNET)
    if subnet is None:
        return Unknown(f"{path}: subnet {ix.ident(value, path)!r} is not declared in the file")
    props = subnet.properties
    return {"SubnetId": subnet.id, "VpcId": ix.ident(props.get("VpcId"), f"{subnet.id}.VpcId"),
            "AvailabilityZone": _zone(ix, subnet),
            "MapPublicIpOnLaunch": boolean(props, "MapPublicIpOnLaunch", False, subnet.id),
            "RouteTable": route_table(ix, subnet)}


def vpc_config(subnets: Any) -> Any:
    """{"Subnets": [...]} as the collectors write it, None without subnets, unknown when they are."""
    if is_unknown(subnets):
        return subnets
    return {"Subnets": subnets} if subnets else None


def _zone(ix: Index, subnet: Declared) -> Any:
    zone = ix.resolve_attribute(subnet.properties.get("AvailabilityZone"))
    return Unknown(f"{subnet.id}.AvailabilityZone is not set: AWS picks the zone") if zone is None else zone


def in_vpc(ix: Index, state: dict[str, Any], subnets: Any, path: str) -> None:
    """resources.base.in_vpc: the subnet views and their zones."""
    if is_unknown(subnets):
        state["SubnetViews"] = state["AvailabilityZones"] = subnets
        return
    views = [subnet_view(ix, s, f"{path}[{i}]") for i, s in enumerate(subnets)]
    state["SubnetViews"] = views
    unknown = next((v for v in views if is_unknown(v)), None)
    if unknown is None:
        unknown = next((v["AvailabilityZone"] for v in views if is_unknown(v["AvailabilityZone"])), None)
    state["AvailabilityZones"] = unknown if unknown is not None else sorted({v["AvailabilityZone"] for v in views})


def network_acl(ix: Index, subnet: Declared) -> Any:
    associated, unsure = ix.pointing_at("AWS::EC2::SubnetNetworkAclAssociation", "SubnetId", subnet)
    if unsure is not None:
        return unsure
    if not associated:
        vpc = vpc_of(ix, subnet)
        if vpc is None:
            return no_vpc(ix, subnet, "the default network ACL")
        return {"NetworkAclId": f"{vpc.id} default network ACL", "Entries": [dict(e) for e in ALLOW_ALL_ACL]}
    chosen = ix.resolve_attribute(associated[-1].properties.get("NetworkAclId"))
    if is_unknown(chosen):
        return Unknown(f"{associated[-1].id}.NetworkAclId: {reason_of(chosen)}")
    acl = ix.follow(chosen, "AWS::EC2::NetworkAcl")
    if acl is None:
        return Unknown(f"{associated[-1].id}.NetworkAclId is not a network ACL declared in the file")
    entries, unsure = ix.pointing_at("AWS::EC2::NetworkAclEntry", "NetworkAclId", acl)
    listed: list[Any] = []
    for entry in entries:
        props = entry.properties
        item = {"RuleNumber": number(props.get("RuleNumber"), f"{entry.id}.RuleNumber"),
                "Egress": boolean(props, "Egress", False, entry.id),
                "Protocol": _protocol(props.get("Protocol")), "RuleAction": props.get("RuleAction"),
                **{str(k): props[k] for k in ("CidrBlock", "Ipv6CidrBlock") if k in props}}
        ports = props.get("PortRange")
        if isinstance(ports, dict):
            item["PortRange"] = {"From": number(ports.get("From"), entry.id), "To": number(ports.get("To"), entry.id)}
        listed.append(item)
    listed += [{"RuleNumber": 32767, "Egress": egress, "Protocol": "-1", "RuleAction": "deny",
                "CidrBlock": "0.0.0.0/0"} for egress in (False, True)]
    return unsure if unsure is not None else {"NetworkAclId": acl.id, "Entries": listed}


def _protocol(value: Any) -> Any:
    return value if is_unknown(value) else _PROTOCOLS.get(str(value).lower(), str(value).lower())


def _rule(ix: Index, props: dict[str, Any], rule_id: str, group_id: str, egress: bool) -> dict[str, Any]:
    """One rule as DescribeSecurityGroupRules (normalized by reads.normalize_rule) gives it."""
    protocol = _protocol(props.get("IpProtocol"))
    rule: dict[str, Any] = {"SecurityGroupRuleId": rule_id, "GroupId": group_id, "IsEgress": egress,
                            "IpProtocol": protocol}
    all_ports = not is_unknown(protocol) and protocol == "-1"
    rule["FromPort"] = -1 if all_ports else number(props.get("FromPort"), f"{rule_id}.FromPort")
    rule["ToPort"] = -1 if all_ports else number(props.get("ToPort"), f"{rule_id}.ToPort")
    sources = (("CidrIp", "CidrIpv4"), ("CidrIpv6", "CidrIpv6"), ("SourcePrefixListId", "PrefixListId"),
               ("DestinationPrefixListId", "PrefixListId"), ("SourceSecurityGroupId", "ReferencedGroupId"),
               ("DestinationSecurityGroupId", "ReferencedGroupId"), ("SourceSecurityGroupName", "ReferencedGroupId"))
    for key, field in sources:
        if props.get(key) is not None:
            cidr = field in ("CidrIpv4", "CidrIpv6")
            rule[field] = ix.resolve_attribute(props[key]) if cidr else ix.ident(props[key], f"{rule_id}.{key}")
    if props.get("Description") is not None:
        rule["Description"] = props["Description"]
    if "PrefixListId" in rule and not egress:
        rule["PrefixListCidrs"] = _prefix_list_cidrs(ix, props.get("SourcePrefixListId"), rule_id)
    return rule


def _prefix_list_cidrs(ix: Index, value: Any, rule_id: str) -> Any:
    """Lookups.prefix_list_cidrs: the entries of a prefix list the file declares (anyone's choice, 0.0.0.0/0
    too, so SG.1 reads them); of one it only names, unknown (an AWS-managed list, or a customer's)."""
    value = ix.resolve_attribute(value)
    if is_unknown(value):
        return Unknown(f"{rule_id}.SourcePrefixListId: {reason_of(value)}")
    declared = ix.follow(value, "AWS::EC2::PrefixList")
    if declared is None:
        return Unknown(f"{rule_id}: the entries of prefix list {value if isinstance(value, str) else '?'} "
                       "are not in the file")
    entries = declared.properties.get("Entries")
    if is_unknown(entries) or not isinstance(entries, list):
        return entries if is_unknown(entries) else []
    cidrs = [e.get("Cidr") if isinstance(e, dict) else e for e in entries]
    unknown = next((c for c in cidrs if is_unknown(c) or not isinstance(c, str)), None)
    if unknown is not None:
        return unknown if is_unknown(unknown) else Unknown(f"{declared.id}.Entries: an entry without a Cidr")
    return sorted(cidrs)


def group_rules(ix: Index, group: Declared) -> Any:
    rules: list[Any] = []
    for key, egress in (("SecurityGroupIngress", False), ("SecurityGroupEgress", True)):
        inline = group.properties.get(key)
        if is_unknown(inline):
            return inline
        for i, props in enumerate(inline or []):
            if is_unknown(props) or not isinstance(props, dict):
                return props if is_unknown(props) else Unknown(f"{group.id}.{key}[{i}] is not a rule")
            rules.append(_rule(ix, props, f"{group.id}.{key}[{i}]", group.id, egress))
    if "SecurityGroupEgress" not in group.properties:  # AWS's default egress rule stays
        rules.append(_rule(ix, {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}, f"{group.id} default egress",
                           group.id, True))
    for rtype, egress in (("AWS::EC2::SecurityGroupIngress", False), ("AWS::EC2::SecurityGroupEgress", True)):
        standalone, unsure = ix.pointing_at(rtype, "GroupId", group)
        rules += [_rule(ix, d.properties, d.id, group.id, egress) for d in standalone]
        if unsure is not None:
            return unsure
    return rules


def security_group_state(ix: Index, group: Declared, users: list[Any]) -> dict[str, Any]:
    vpc = vpc_of(ix, group)
    name = group.properties.get("GroupName")
    return {"GroupId": group.id, "GroupName": name, "VpcId": ix.ident(group.properties.get("VpcId"), group.id),
            "IsDefault": name == "default" if not is_unknown(name) else name,
            "VpcCidrs": vpc_cidrs(ix, vpc) if vpc is not None else no_vpc(ix, group, "the CIDRs"),
            "AttachedTo": users, "Rules": group_rules(ix, group)}


def subnet_state(ix: Index, subnet: Declared, users: list[Any]) -> dict[str, Any]:
    return {**subnet_view(ix, Ref(subnet.id), subnet.id),
            "UsedBy": users, "NetworkAcl": network_acl(ix, subnet)}


def endpoint_type(decl: Declared) -> Any:
    kind = pick(decl.properties, "VpcEndpointType")
    return "Gateway" if kind is None else kind


def vpc_state(ix: Index, vpc: Declared, users: list[Any], environments: Any) -> dict[str, Any]:
    logs, unsure = ix.pointing_at("AWS::EC2::FlowLog", "ResourceId", vpc)
    flow_logs: list[Any] = [{
        "FlowLogId": log.id, "ResourceId": vpc.id, "TrafficType": log.properties.get("TrafficType"),
        "FlowLogStatus": "ACTIVE", "LogDestinationType": log.properties.get("LogDestinationType", "cloud-watch-logs"),
        **{k: log.properties[k] for k in ("LogDestination", "LogGroupName") if k in log.properties}} for log in logs]
    endpoints, unsure_endpoint = ix.pointing_at(VPC_ENDPOINT, "VpcId", vpc)
    listed: list[Any] = [{"VpcEndpointId": e.id, "Service": service(e), "VpcEndpointType": endpoint_type(e),
                          "State": "available"} for e in endpoints]
    return {"VpcId": vpc.id, "IsDefault": False, "CidrBlocks": vpc_cidrs(ix, vpc),
            "EnableDnsSupport": boolean(vpc.properties, "EnableDnsSupport", True, vpc.id),
            "EnableDnsHostnames": boolean(vpc.properties, "EnableDnsHostnames", False, vpc.id),
            "FlowLogs": flow_logs + ([unsure] if unsure is not None else []), "UsedBy": users,
            "Endpoints": listed + ([unsure_endpoint] if unsure_endpoint is not None else []),
            "Environments": environments}


def service(endpoint: Declared) -> Any:
    name = endpoint.properties.get("ServiceName")
    return name if is_unknown(name) else endpoint_service({"ServiceName": name})


def vpc_endpoint_state(ix: Index, endpoint: Declared, group_users: Callable[[str], list[Any]]) -> dict[str, Any]:
    props, vpc = endpoint.properties, vpc_of(ix, endpoint)
    kind = endpoint_type(endpoint)
    groups: Any = []
    if is_unknown(kind):
        groups = kind
    elif kind == "Interface":
        ids = ix.idents(props.get("SecurityGroupIds"), f"{endpoint.id}.SecurityGroupIds")
        if is_unknown(ids):
            groups = ids
        elif not ids:  # AWS puts the VPC's default group on it
            default = f"{vpc.id} default security group" if vpc else no_vpc(ix, endpoint, "the default group")
            groups = [{"GroupId": default, "IsDefault": True, "UsedBy": []}]
        else:
            groups = [_endpoint_group(ix, g, group_users) for g in ids]
    policy = props.get("PolicyDocument")
    subnets = ix.idents(props.get("SubnetIds"), f"{endpoint.id}.SubnetIds")
    state: dict[str, Any] = {
        "VpcEndpointId": endpoint.id, "VpcId": ix.ident(props.get("VpcId"), f"{endpoint.id}.VpcId"),
        "Service": service(endpoint), "VpcEndpointType": kind, "State": "available",
        "PrivateDnsEnabled": boolean(props, "PrivateDnsEnabled", False, endpoint.id), "SecurityGroups": groups,
        "PolicyDocument": FULL_ACCESS_POLICY if policy is None else policy,
        "VpcConfig": vpc_config(subnets), "PrivateDnsConflict": None}
    dns = (boolean(vpc.properties, "EnableDnsSupport", True, vpc.id), boolean(
        vpc.properties, "EnableDnsHostnames", False, vpc.id)) if vpc else (no_vpc(ix, endpoint, "the DNS attributes"),)
    unknown = next((d for d in dns if is_unknown(d)), None)
    state["VpcDns"] = unknown if unknown is not None else ("ready" if all(dns) else "off")
    in_vpc(ix, state, subnets, f"{endpoint.id}.SubnetIds")
    return state


def _endpoint_group(ix: Index, group_id: Any, group_users: Callable[[str], list[Any]]) -> Any:
    if is_unknown(group_id):
        return group_id
    group = ix.parsed.resources.get(group_id)
    if group is None or group.type != SECURITY_GROUP:
        return {"GroupId": group_id, "IsDefault": Unknown(f"security group {group_id} is not declared in the file"),
                "UsedBy": Unknown(f"security group {group_id} is not declared in the file")}
    name = group.properties.get("GroupName")
    return {"GroupId": group_id, "IsDefault": name == "default" if not is_unknown(name) else name,
            "UsedBy": [u for u in group_users(group_id) if is_unknown(u) or u not in ("vpc-endpoint", "other")]}
