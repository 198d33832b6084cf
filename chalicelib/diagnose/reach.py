"""Why a SageMaker workload cannot reach S3, ECR, STS, CloudWatch Logs or the SageMaker API: each
destination is followed from each of the workload's subnets along the path AWS would take, and every
thing on the way that stops it is a cause with its evidence and fix. Pure: the network comes in as
plain data (`Network`, read by `gather`).

The paths, in the order a connection meets them:
* name resolution: the VPC's DNS support, the DHCP option set's servers, for interface endpoints their
  private DNS (which needs DNS hostnames too);
* S3: a gateway endpoint's prefix-list route on the subnet's route table, else the internet path;
* an interface service: its endpoint's network interfaces (security group of the endpoint in, the
  workload's out, both subnets' network ACLs both ways, zones), else the internet path;
* the internet path: a 0.0.0.0/0 route to a NAT gateway (an internet gateway is no way out for
  SageMaker's interfaces: they have no public address), the workload's egress to anywhere and the
  network ACL out and back;
* the endpoint's policy for the calls the workload makes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .model import (
    BLOCKS,
    CALLS,
    DEGRADES,
    ECR_LAYER_BUCKET,
    MAY_BLOCK,
    PULLS_IMAGES,
    Cause,
    Diagnosis,
    Workload,
    merge,
)
from .rules import (
    ALLOW,
    ANYWHERE,
    DENY,
    EPHEMERAL,
    HTTPS,
    Target,
    custom_dns_servers,
    describe_nacl_entry,
    describe_sg_rule,
    nacl_verdict,
    policy_verdict,
    sg_allows,
)

LIVE = ("available",)


@dataclass(frozen=True)
class Network:
    """The VPC around a workload, as plain data.

    vpc: VpcId, CidrBlocks, EnableDnsSupport, EnableDnsHostnames, DhcpOptionsId, DomainNameServers.
    subnets: id -> SubnetId, CidrBlock, AvailabilityZone, RouteTable {RouteTableId, Routes (as AWS
    lists them)}, NetworkAcl {NetworkAclId, Entries} (the workload's and the endpoints' subnets).
    rules: security group id -> its rules (lookups' shape). endpoints: the VPC's endpoints
    (VpcEndpointId, Service, VpcEndpointType, State, PrivateDnsEnabled, PolicyDocument, SubnetIds,
    Groups, RouteTableIds, PrivateDnsConflict). prefix_lists: AWS-managed prefix list id -> its CIDRs.
    """

    region: str
    vpc: Mapping[str, Any]
    subnets: Mapping[str, Mapping[str, Any]]
    rules: Mapping[str, list[Mapping[str, Any]]]
    endpoints: tuple[Mapping[str, Any], ...]
    prefix_lists: Mapping[str, tuple[str, ...]]


class _Walk:
    """One destination from one subnet: the causes found on the way."""

    def __init__(self, workload: Workload, net: Network, destination: str, subnet_id: str) -> None:
        self.w, self.net, self.dest, self.sid = workload, net, destination, subnet_id
        self.subnet = net.subnets[subnet_id]
        self.causes: list[Cause] = []

    def cause(self, code: str, key: str, layer: str, impact: str, title: str, evidence: Mapping[str, Any],
              fix: str) -> None:
        self.causes.append(Cause(code, key, layer, impact, title, evidence, fix, (self.dest,), (self.sid,)))

    @property
    def table(self) -> Mapping[str, Any]:
        return self.subnet.get("RouteTable") or {}

    def routes(self) -> list[str]:
        return [f"{_route_destination(r)} -> {_route_target(r)}"
                + ("" if r.get("State", "active") == "active" else f" ({r['State']})")
                for r in self.table.get("Routes", [])]

    # --- the workload's own side ----------------------------------------------------------------
    def egress(self, target: Target, what: str, scope: str, impact: str = BLOCKS) -> bool:
        rules = [r for g in self.w.groups for r in self.net.rules.get(g, [])]
        if sg_allows(rules, True, HTTPS, target)[0]:
            return True
        groups = ", ".join(self.w.groups) or "(none)"
        allow = (f"PrefixListIds=[{{PrefixListId={target.prefix_list}}}]" if target.prefix_list
                 else f"UserIdGroupPairs=[{{GroupId={target.groups[0]}}}]" if target.groups
                 else f"IpRanges=[{{CidrIp={target.cidrs[0]}}}]")
        self.cause("sg-egress", f"{groups}|{scope}", "security-group", impact,
                   f"The security groups of {self.w.resource} do not allow HTTPS out to {scope}",
                   {"SecurityGroups": list(self.w.groups), "Needs": [f"tcp/443 -> {what}"],
                    "EgressRules": [describe_sg_rule(r) for r in rules if r.get("IsEgress")] or ["none"]},
                   f"aws ec2 authorize-security-group-egress --group-id {self.w.groups[0] if self.w.groups else 'SG'} "
                   f"--ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,{allow}'")
        return False

    def acl_passes(self, subnet: Mapping[str, Any], cidr: str, outbound: bool, what: str,
                   impact_if_denied: str = BLOCKS) -> bool:
        """A connection leaving (outbound) or entering `subnet`: the HTTPS request one way, the return
        traffic on ephemeral ports the other way (network ACLs are stateless)."""
        acl = subnet.get("NetworkAcl") or {}
        acl_id, entries = acl.get("NetworkAclId") or "?", list(acl.get("Entries") or [])
        ok = True
        checks = ((True, HTTPS, "HTTPS out to"), (False, EPHEMERAL, "return traffic (TCP 32768-60999) from")) \
            if outbound else ((False, HTTPS, "HTTPS in from"), (True, EPHEMERAL, "return traffic (TCP 32768-60999) to"))
        for egress, ports, words in checks:
            verdict, entry = nacl_verdict(entries, egress, ports, cidr)
            if verdict == ALLOW:
                continue
            ok = False
            number = entry.get("RuleNumber") if entry else None
            direction = "--egress" if egress else "--ingress"
            free = max(1, int(number) - 1) if number and entry and entry.get("RuleAction") == "deny" else 100
            self.cause("nacl", f"{acl_id}|{'out' if egress else 'in'}|{number or '*'}", "network-acl",
                       impact_if_denied if verdict == DENY else MAY_BLOCK,
                       f"Network ACL {acl_id} of {subnet.get('SubnetId')} "
                       f"{'denies' if verdict == DENY else 'denies some'} {words} {what}",
                       {"NetworkAclId": acl_id, "SubnetId": subnet.get("SubnetId"),
                        "Rule": describe_nacl_entry(acl_id, entry, egress), "Needs": [f"{words} {cidr}"]},
                       f"aws ec2 create-network-acl-entry --network-acl-id {acl_id} {direction} --rule-number {free} "
                       f"--protocol tcp --port-range From={ports[0]},To={ports[1]} --cidr-block {cidr} "
                       f"--rule-action allow (a number below the rule that denies it)")
        return ok

    # --- the internet path ----------------------------------------------------------------------
    def internet(self) -> tuple[str | None, str]:
        """(how, None) when a 0.0.0.0/0 route leads out, else (None, why not). Causes on the way are noted."""
        route = next((r for r in self.table.get("Routes", []) if r.get("DestinationCidrBlock") == ANYWHERE), None)
        if route is None:
            return None, f"{self.table.get('RouteTableId')} has no 0.0.0.0/0 route"
        target = _route_target(route)
        if route.get("State") == "blackhole":
            return None, f"0.0.0.0/0 -> {target} is a blackhole (its target is gone)"
        if target.startswith("igw-"):
            return None, (f"0.0.0.0/0 -> {target}: SageMaker's network interfaces have no public address, so an "
                          f"internet gateway is no way out (a NAT gateway is)")
        how = (f"the public endpoint through NAT gateway {target}" if target.startswith("nat-")
               else f"0.0.0.0/0 -> {target} (beyond it not verified)")
        self.egress(Target((ANYWHERE,)), "the service's public addresses", "the internet (through the NAT route)")
        self.acl_passes(self.subnet, ANYWHERE, True, "the internet")
        return how, ""

    def no_path(self, title: str, why: str, evidence: Mapping[str, Any], fix: str) -> None:
        self.cause("no-path", f"{self.dest}|{self.table.get('RouteTableId')}", "route", BLOCKS, title,
                   {**evidence, "RouteTableId": self.table.get("RouteTableId"), "Routes": self.routes(),
                    "NoInternet": why}, fix)

    # --- S3 -------------------------------------------------------------------------------------
    def s3(self) -> str | None:
        table_id = self.table.get("RouteTableId")
        gateways = [e for e in self.net.endpoints if e.get("Service") == "s3"
                    and e.get("VpcEndpointType") == "Gateway" and str(e.get("State")).lower() in LIVE]
        for gateway in gateways:
            route = next((r for r in self.table.get("Routes", []) if r.get("DestinationPrefixListId")
                          and r.get("GatewayId") == gateway["VpcEndpointId"]), None)
            if route is None and table_id not in (gateway.get("RouteTableIds") or []):
                continue
            prefix_list = (route or {}).get("DestinationPrefixListId")
            cidrs = self.net.prefix_lists.get(prefix_list or "") or (ANYWHERE,)
            what = f"S3 ({prefix_list or 'its prefix list'})"
            self.egress(Target(tuple(cidrs), prefix_list=prefix_list), what, what)
            for cidr in cidrs:
                if not self.acl_passes(self.subnet, cidr, True, what):
                    break
            self.policy(gateway)
            return f"gateway endpoint {gateway['VpcEndpointId']} (route {prefix_list} -> {gateway['VpcEndpointId']} " \
                   f"in {table_id})"
        how, why = self.internet()
        if how:
            return how + (" (the S3 gateway endpoint is not on this route table: S3 data is billed through NAT)"
                          if gateways else " (no S3 gateway endpoint: S3 data is billed through NAT)")
        vpc_id = self.net.vpc.get("VpcId")
        fix = (f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {gateways[0]['VpcEndpointId']} --add-route-table-ids "
               f"{table_id}" if gateways else
               f"aws ec2 create-vpc-endpoint --vpc-id {vpc_id} --vpc-endpoint-type Gateway "
               f"--service-name com.amazonaws.{self.net.region}.s3 --route-table-ids {table_id}")
        self.no_path(f"No way to S3: no S3 gateway endpoint on {table_id}, and no NAT route in it",
                     why, {"GatewayEndpoints": [f"{g['VpcEndpointId']} on {', '.join(g.get('RouteTableIds') or [])}"
                                                for g in gateways] or ["none in " + str(vpc_id)]}, fix)
        return None

    # --- interface endpoints --------------------------------------------------------------------
    def interface(self) -> str | None:
        vpc = self.net.vpc
        endpoints = sorted((e for e in self.net.endpoints if e.get("Service") == self.dest
                            and e.get("VpcEndpointType") == "Interface"),
                           key=lambda e: (str(e.get("State")).lower() not in LIVE, not e.get("PrivateDnsEnabled")))
        endpoint = endpoints[0] if endpoints else None
        if endpoint is None or not endpoint.get("PrivateDnsEnabled") or not vpc.get("EnableDnsHostnames"):
            return self.interface_by_name(endpoint)
        if str(endpoint.get("State")).lower() not in LIVE:
            self.cause("endpoint-state", endpoint["VpcEndpointId"], "endpoint", BLOCKS,
                       f"Endpoint {endpoint['VpcEndpointId']} ({self.dest}) is {endpoint.get('State')}, not available",
                       {"VpcEndpointId": endpoint["VpcEndpointId"], "State": endpoint.get("State")},
                       f"aws ec2 describe-vpc-endpoints --vpc-endpoint-ids {endpoint['VpcEndpointId']} (see LastError);"
                       f" accept or recreate it")
            return None
        reachable = [s for s in endpoint.get("SubnetIds") or [] if s in self.net.subnets]
        if not reachable:
            self.cause("endpoint-state", endpoint["VpcEndpointId"], "endpoint", BLOCKS,
                       f"Endpoint {endpoint['VpcEndpointId']} ({self.dest}) has no network interface in a subnet "
                       f"that exists", {"VpcEndpointId": endpoint["VpcEndpointId"],
                                        "SubnetIds": list(endpoint.get("SubnetIds") or [])},
                       f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {endpoint['VpcEndpointId']} "
                       f"--add-subnet-ids {self.sid}")
            return None
        ok = [s for s in reachable if self.to_interfaces(endpoint, s, BLOCKS, record=False)]
        impact = MAY_BLOCK if ok else BLOCKS  # some of its addresses reachable: some connections time out
        for s in reachable:
            if s not in ok:
                self.to_interfaces(endpoint, s, impact, record=True)
        self.policy(endpoint)
        zones = sorted({str(self.net.subnets[s].get("AvailabilityZone")) for s in reachable})
        zone = self.subnet.get("AvailabilityZone")
        if zones and zone not in zones:
            self.cause("cross-az", endpoint["VpcEndpointId"], "placement", DEGRADES,
                       f"Endpoint {endpoint['VpcEndpointId']} ({self.dest}) has no network interface in {zone}, "
                       f"where {self.sid} is: traffic crosses zones (latency, cross-AZ charges, and an outage of "
                       f"{', '.join(zones)} cuts it off)",
                       {"VpcEndpointId": endpoint["VpcEndpointId"], "EndpointZones": zones,
                        "WorkloadSubnets": [f"{self.sid} in {zone}"]},
                       f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {endpoint['VpcEndpointId']} "
                       f"--add-subnet-ids {self.sid}")
        return f"interface endpoint {endpoint['VpcEndpointId']} (private DNS, network interfaces in {', '.join(zones)})"

    def to_interfaces(self, endpoint: Mapping[str, Any], subnet_id: str, impact: str, record: bool) -> bool:
        """The endpoint's network interface in `subnet_id`: the workload's egress, the endpoint's ingress,
        and the network ACLs of both subnets when they differ (an ACL does not filter within its subnet).
        With record=False only the answer counts (the causes are recorded once the impact is known)."""
        saved = self.causes
        if not record:
            self.causes = []
        there = self.net.subnets[subnet_id]
        groups = tuple(endpoint.get("Groups") or ())
        scope = "the interface endpoints' network interfaces"
        ok = self.egress(Target((there["CidrBlock"],), groups), f"{endpoint['VpcEndpointId']} in {subnet_id}",
                         scope, impact)
        here = Target((self.subnet["CidrBlock"],), self.w.groups)
        rules = [r for g in groups for r in self.net.rules.get(g, [])]
        if not sg_allows(rules, False, HTTPS, here)[0]:
            ok = False
            self.cause("endpoint-sg-ingress", ",".join(groups) or endpoint["VpcEndpointId"], "endpoint", impact,
                       f"The security groups of the {self.dest} endpoint do not allow HTTPS in from {self.w.resource}",
                       {"VpcEndpointId": endpoint["VpcEndpointId"], "SecurityGroups": list(groups),
                        "IngressRules": [describe_sg_rule(r) for r in rules if not r.get("IsEgress")] or ["none"],
                        "Needs": [f"tcp/443 <- {self.sid} ({self.subnet['CidrBlock']})"]},
                       f"aws ec2 authorize-security-group-ingress --group-id {groups[0] if groups else 'SG'} "
                       f"--ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,UserIdGroupPairs=[{{GroupId="
                       f"{self.w.groups[0] if self.w.groups else 'SG'}}}]'")
        if subnet_id != self.sid:
            ok = self.acl_passes(self.subnet, there["CidrBlock"], True, scope, impact) and ok
            ok = self.acl_passes(there, self.subnet["CidrBlock"], False, f"{self.sid}", impact) and ok
        if not record:
            self.causes = saved
        return ok

    def interface_by_name(self, endpoint: Mapping[str, Any] | None) -> str | None:
        """No endpoint whose private DNS answers: the service's name is its public one, reached only
        through the internet path."""
        vpc = self.net.vpc
        how, why = self.internet()
        if how:
            return how
        vpc_id, ep = vpc.get("VpcId"), endpoint and endpoint["VpcEndpointId"]
        if endpoint is None:
            self.no_path(f"No {self.dest} interface endpoint in {vpc_id}, and no NAT route in "
                         f"{self.table.get('RouteTableId')}", why,
                         {"VpcId": vpc_id, "InterfaceEndpoints": [f"none for com.amazonaws.{self.net.region}."
                                                                  f"{self.dest}"]},
                         f"aws ec2 create-vpc-endpoint --vpc-id {vpc_id} --vpc-endpoint-type Interface --service-name "
                         f"com.amazonaws.{self.net.region}.{self.dest} --subnet-ids {' '.join(self.w.subnets)} "
                         f"--security-group-ids ENDPOINT_SG --private-dns-enabled")
        elif not endpoint.get("PrivateDnsEnabled"):
            evidence = {"VpcEndpointId": ep, "PrivateDnsEnabled": False, "NoInternet": why}
            if endpoint.get("PrivateDnsConflict"):
                evidence["PrivateDnsConflict"] = endpoint["PrivateDnsConflict"]
            self.cause("private-dns-off", str(ep), "dns", BLOCKS,
                       f"Private DNS is off on {ep} ({self.dest}): {self.dest}'s name resolves to its public "
                       f"addresses, and {self.table.get('RouteTableId')} has no NAT route", evidence,
                       f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {ep} --private-dns-enabled")
        else:
            self.cause("dns-hostnames-off", str(vpc_id), "dns", BLOCKS,
                       f"DNS hostnames are off in {vpc_id}: the endpoints' private DNS does not apply, their "
                       f"services' names resolve to public addresses, and there is no NAT route",
                       {"VpcId": vpc_id, "EnableDnsHostnames": False, "Endpoints": [f"{ep} ({self.dest})"]},
                       f"aws ec2 modify-vpc-attribute --vpc-id {vpc_id} --enable-dns-hostnames '{{\"Value\":true}}'")
        return None

    # --- endpoint policies ----------------------------------------------------------------------
    def policy(self, endpoint: Mapping[str, Any]) -> None:
        calls = [(a, "*") for a in CALLS.get(self.dest, ())]
        if self.dest == "s3" and self.w.resource_type in PULLS_IMAGES:
            calls.append(("s3:GetObject", ECR_LAYER_BUCKET.format(region=self.net.region)))
        denied = [v for v in (policy_verdict(endpoint.get("PolicyDocument"), a, r) for a, r in calls) if v.denied]
        if denied:
            ep = endpoint["VpcEndpointId"]
            self.cause("endpoint-policy", ep, "endpoint-policy", BLOCKS,
                       f"The policy of endpoint {ep} ({self.dest}) denies calls {self.w.resource} makes",
                       {"VpcEndpointId": ep, "Denied": [v.reason for v in denied]},
                       f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {ep} --policy-document file://policy.json "
                       f"(allowing {', '.join(sorted({v.action for v in denied}))}"
                       + (" on the ECR layer bucket" if any(v.resource != "*" for v in denied) else "") + ")")


def _route_destination(route: Mapping[str, Any]) -> str:
    return str(route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock")
               or route.get("DestinationPrefixListId"))


def _route_target(route: Mapping[str, Any]) -> str:
    for key in ("NatGatewayId", "TransitGatewayId", "VpcPeeringConnectionId", "NetworkInterfaceId", "InstanceId",
                "EgressOnlyInternetGatewayId", "LocalGatewayId", "CarrierGatewayId", "CoreNetworkArn", "GatewayId"):
        if route.get(key):
            return str(route[key])
    return "?"


def dns_causes(w: Workload, net: Network) -> list[Cause]:
    """What stops names from resolving at all, for the destinations it affects."""
    vpc, vpc_id = net.vpc, net.vpc.get("VpcId")
    servers = list(vpc.get("DomainNameServers") or [])
    custom = custom_dns_servers(servers, vpc.get("CidrBlocks") or [])
    interface = tuple(d for d in w.needs if d != "s3")
    if not vpc.get("EnableDnsSupport"):
        return [Cause("dns-support-off", str(vpc_id), "dns", BLOCKS,
                      f"DNS resolution is off in {vpc_id}: the Amazon DNS server does not answer"
                      + (", and the endpoints' private names exist only there" if custom else ""),
                      {"VpcId": vpc_id, "EnableDnsSupport": False, "DhcpOptionsId": vpc.get("DhcpOptionsId"),
                       "DomainNameServers": servers},
                      f"aws ec2 modify-vpc-attribute --vpc-id {vpc_id} --enable-dns-support '{{\"Value\":true}}'",
                      interface if custom else w.needs, w.subnets)]
    if not servers:
        return [Cause("dhcp-no-dns", str(vpc.get("DhcpOptionsId")), "dns", MAY_BLOCK,
                      f"DHCP option set {vpc.get('DhcpOptionsId')} of {vpc_id} names no domain-name-servers: "
                      f"instances get no DNS server unless they configure one themselves",
                      {"VpcId": vpc_id, "DhcpOptionsId": vpc.get("DhcpOptionsId"), "DomainNameServers": []},
                      f"aws ec2 create-dhcp-options --dhcp-configurations 'Key=domain-name-servers,Values="
                      f"AmazonProvidedDNS', then aws ec2 associate-dhcp-options --vpc-id {vpc_id} --dhcp-options-id "
                      f"NEW_DOPT", w.needs, w.subnets)]
    if custom and servers[0] in custom and interface:
        return [Cause("dhcp-custom-dns", str(vpc.get("DhcpOptionsId")), "dns", MAY_BLOCK,
                      f"DHCP option set {vpc.get('DhcpOptionsId')} of {vpc_id} sends DNS to {', '.join(custom)}, not "
                      f"the Amazon DNS server: the endpoints' private names resolve only if those servers forward "
                      f"{net.region}.amazonaws.com names to it",
                      {"VpcId": vpc_id, "DhcpOptionsId": vpc.get("DhcpOptionsId"), "DomainNameServers": servers},
                      f"forward *.{net.region}.amazonaws.com from {', '.join(custom)} to the Amazon DNS server "
                      f"(a Route 53 Resolver inbound endpoint), or: aws ec2 associate-dhcp-options --vpc-id {vpc_id} "
                      f"--dhcp-options-id DOPT_WITH_AmazonProvidedDNS", interface, w.subnets)]
    return []


def diagnose(w: Workload, net: Network | None) -> Diagnosis:
    """The ordered causes, the destinations reached and how, and what could not be told."""
    notes = ["not checked: the IAM permissions of the execution role, and what lies beyond a NAT or transit gateway"]
    if w.network_isolation:
        notes.append("network isolation: the container itself makes no calls; SageMaker's own downloads, image "
                     "pulls and logs still take these paths")
    if w.sagemaker_network or net is None:
        how = f"through SageMaker's own network ({w.sagemaker_network}), not your VPC"
        return Diagnosis(w, (), {d: how for d in w.needs}, tuple(notes))
    causes = dns_causes(w, net)
    reachable: dict[str, str] = {}
    present = [s for s in w.subnets if s in net.subnets]
    for sid in (s for s in w.subnets if s not in net.subnets):
        causes.append(Cause("subnet-missing", sid, "resource", BLOCKS, f"Subnet {sid} of {w.resource} does not exist",
                            {"SubnetId": sid}, f"recreate {w.resource} in existing subnets", w.needs, (sid,)))
    for dest in w.needs:
        hows: list[str] = []
        for sid in present:
            walk = _Walk(w, net, dest, sid)
            found = walk.s3() if dest == "s3" else walk.interface()
            causes += walk.causes
            if found and found not in hows:
                hows.append(found)
        if hows and len(hows) == 1 and len(present) == len(w.subnets):
            reachable[dest] = hows[0]
        elif hows:
            reachable[dest] = "; ".join(hows)
    ordered = merge(causes)
    blocked = {d for c in ordered if c.impact != DEGRADES for d in c.destinations}
    return Diagnosis(w, tuple(ordered), {d: h for d, h in reachable.items() if d not in blocked}, tuple(notes))
