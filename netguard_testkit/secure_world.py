"""The field guide's secure production architecture for SageMaker, built with boto3 (against moto).

`build_secure_world(clients, account, region)` creates, in one account and region, a VPC that every
netguard control should find compliant, and returns every id in a frozen `SecureWorld`. Tests prove
netguard reports no violation on it, then change one thing per control. It takes boto3 clients, so it
runs the same against an in-process `mock_aws()` and over HTTP against a moto server. Use it under
`netguard_testkit.moto_fidelity.aws_like_notebooks()` and `netguard_testkit.moto_sagemaker.aws_like_sagemaker()`
so that moto answers as AWS would (jobs InProgress, model isolation kept, endpoint interfaces typed).

What it builds (names start with `prefix`, default "fraud-ml"; every resource carries the five tags
Environment, Project, Owner, CostCenter, Compliance, EC2 resources also a Name):

* VPC 10.20.0.0/16, DNS support and DNS hostnames on; no internet gateway (unless
  `with_public_subnet=True`: then one public subnet with an IGW route, used by nothing of SageMaker).
* Two private subnets in two AZs (MapPublicIpOnLaunch false) on one private route table: the local
  route and the S3 gateway endpoint's prefix-list route, nothing else.
* A network ACL on the private subnets that is not allow-all: all traffic within the VPC CIDR in and
  out, TCP 1024-65535 in (return traffic) and TCP 443 out to anywhere (S3 through the gateway endpoint:
  a NACL cannot name a prefix list); everything else hits the implicit deny.
* The VPC default security group with every rule revoked, and one security group per function, each
  used by one kind only: notebook (in: TCP 443 from the VPC; out: TCP 443 to the VPC and the S3 prefix
  list), training/processing (in: all traffic from itself only; out: itself, TCP 443 to the VPC and S3),
  endpoint/model (in: TCP 443 from the VPC; out: TCP 443 to the VPC and S3), VPC endpoint (in: TCP 443
  from the VPC; no egress) and Studio (in: TCP 443 from the VPC; out: TCP 443 to the VPC and S3, TCP 2049
  to the VPC for the home EFS). A real VpcOnly Studio domain also needs TCP 8192-65535 within its group
  between apps; it is left out here so that the group meets SG.2's defaults.
* The S3 gateway endpoint on the private route table, and six interface endpoints (sagemaker.api,
  sagemaker.runtime, logs, ecr.api, ecr.dkr, sts) in both private subnets with private DNS and the VPC
  endpoint group. Every endpoint policy is deliberate: it allows only the service's actions for
  principals of this account and denies any request with aws:SecureTransport false.
* A flow log with TrafficType ALL on the VPC to a CloudWatch Logs group, delivered by an IAM role.
* SageMaker: an IAM execution role; a notebook instance in a private subnet (no direct internet, no
  root access, notebook group), InService; a training job on 2 instances in both subnets with network
  isolation and inter-container encryption, InProgress; a processing job likewise; a hyperparameter
  tuning job whose training job definition is likewise, InProgress; a model with network isolation in
  both subnets (endpoint group); an endpoint config whose one variant has 2 instances; an endpoint; a
  batch transform job on that model, InProgress; a Studio domain, VpcOnly, in both subnets.
* The network interfaces SageMaker puts in the customer VPC, which moto does not create: the
  notebook's, one per subnet for the training job, the processing job and the endpoint.

moto gaps (what moto 5.2.5 cannot represent here; the builder still succeeds):

* Without `aws_like_sagemaker()`: jobs are `Completed` at once, the model says EnableNetworkIsolation
  false, the processing job has no ProcessingResources, and the VPC endpoints' network interfaces carry
  the default security group, no description, InterfaceType `interface` and a private IP outside
  their subnet (the builder then fixes groups and description through ModifyNetworkInterfaceAttribute;
  type and address cannot be changed by API).
  Without `aws_like_notebooks()` the notebook is InService at once (which is where this builder leaves
  it anyway).
* The simulated SageMaker interfaces are ordinary interfaces created by the caller (RequesterManaged
  false, no RequesterId of SageMaker); their description says what they stand for ("SageMaker ...").
  AWS also creates interfaces for the tuning job's training jobs and the transform job; not simulated.
* A custom network ACL in moto lists no entries besides those added (AWS also lists the two `*` deny
  rules, number 32767); the implicit deny is there in both.
* The Studio domain: moto's id is `d-<name>`; moto creates no home EFS file system, NFS security group
  or network interfaces for it: the builder creates the file system (tagged ManagedByAmazonSageMakerResource
  as Studio tags it, not set as the domain's HomeEfsFileSystemId), its NFS group and one mount target per
  subnet; apps do not exist in moto (see `moto_sagemaker.add_studio_app`).
* The endpoint is InService at once (AWS: Creating for several minutes).
* Endpoint and NACL policies are stored and returned by moto but never enforced; flow logs deliver nothing.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netguard_testkit import moto_fidelity

CIDR = "10.20.0.0/16"
PRIVATE_CIDRS = ("10.20.1.0/24", "10.20.2.0/24")
PUBLIC_CIDR = "10.20.100.0/24"
TAGS: dict[str, str] = {"Environment": "prod", "Project": "fraud-ml", "Owner": "ml-platform@example.com",
                        "CostCenter": "cc-1234", "Compliance": "pci"}
INTERFACE_SERVICES = ("sagemaker.api", "sagemaker.runtime", "logs", "ecr.api", "ecr.dkr", "sts")
INSTANCE_TYPE = "ml.m5.xlarge"

# What each interface endpoint's policy allows (for principals of the account only).
_ENDPOINT_ACTIONS = {
    "sagemaker.api": ["sagemaker:*"],
    "sagemaker.runtime": ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointAsync",
                          "sagemaker:InvokeEndpointWithResponseStream"],
    "logs": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
    "ecr.api": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability"],
    "ecr.dkr": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
    "sts": ["sts:AssumeRole", "sts:GetCallerIdentity"],
}


@dataclass(frozen=True)
class SecureWorld:
    """Every id of the secure architecture. `interface_endpoints` maps service (e.g. "sts") to vpce id."""

    account: str
    region: str
    prefix: str
    tags: Mapping[str, str]
    # network
    vpc_id: str
    vpc_cidr: str
    availability_zones: tuple[str, str]
    private_subnet_ids: tuple[str, str]
    private_route_table_id: str
    main_route_table_id: str
    network_acl_id: str
    default_network_acl_id: str
    default_security_group_id: str
    sg_notebook: str
    sg_training: str
    sg_endpoint: str
    sg_vpc_endpoint: str
    sg_studio: str
    s3_prefix_list_id: str | None
    s3_gateway_endpoint_id: str
    interface_endpoints: Mapping[str, str]
    flow_log_id: str
    flow_log_group: str
    flow_log_role_arn: str
    # SageMaker
    sagemaker_role_arn: str
    notebook_name: str
    notebook_arn: str
    training_job_name: str
    training_job_arn: str
    processing_job_name: str
    processing_job_arn: str
    tuning_job_name: str
    tuning_job_arn: str
    model_name: str
    model_arn: str
    endpoint_config_name: str
    endpoint_key_arn: str  # the customer managed KMS key of the endpoint configuration (EP.3)
    endpoint_config_arn: str
    endpoint_name: str
    endpoint_arn: str
    transform_job_name: str
    transform_job_arn: str
    domain_id: str
    domain_arn: str
    # the domain's home EFS file system (as Studio tags it), its NFS security group and mount targets (EFS.1)
    home_efs_id: str
    sg_home_efs: str
    home_efs_mount_target_ids: tuple[str, ...]
    # network interfaces in the VPC
    notebook_eni_id: str
    training_eni_ids: tuple[str, ...]
    processing_eni_ids: tuple[str, ...]
    endpoint_eni_ids: tuple[str, ...]
    vpc_endpoint_eni_ids: tuple[str, ...]
    # only with_public_subnet=True
    public_subnet_id: str | None = None
    public_route_table_id: str | None = None
    internet_gateway_id: str | None = None

    @property
    def interface_endpoint_ids(self) -> tuple[str, ...]:
        return tuple(self.interface_endpoints[s] for s in INTERFACE_SERVICES)

    @property
    def vpc_endpoint_ids(self) -> tuple[str, ...]:
        return (self.s3_gateway_endpoint_id, *self.interface_endpoint_ids)

    @property
    def workload_security_groups(self) -> dict[str, str]:
        """The dedicated groups by function."""
        return {"notebook": self.sg_notebook, "training": self.sg_training, "endpoint": self.sg_endpoint,
                "vpc_endpoint": self.sg_vpc_endpoint, "studio": self.sg_studio}

    @property
    def tag_list(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags.items()]


ClientSource = Any  # a boto3 Session, chalicelib.aws.Clients, a {service: client} mapping or a callable


def _client_factory(source: ClientSource, region: str) -> Callable[[str], Any]:
    if isinstance(source, Mapping):
        return lambda service: source[service]
    if hasattr(source, "client"):
        return lambda service: source.client(service, region)
    if callable(source):
        return source
    raise TypeError("pass a boto3 Session, a Clients, a {service: client} mapping or a callable(service)")


def _tag_list(tags: Mapping[str, str], name: str | None = None) -> list[dict[str, str]]:
    out = [{"Key": k, "Value": v} for k, v in tags.items()]
    if name:
        out.append({"Key": "Name", "Value": name})
    return out


def _spec(resource_type: str, tags: Mapping[str, str], name: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": _tag_list(tags, name)}]


def _secure_transport_deny() -> dict[str, Any]:
    return {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def endpoint_policy(service: str, account: str, region: str, prefix: str) -> str:
    """The deliberate policy of one endpoint: the service's actions for this account, TLS only."""
    if service == "s3":
        allow = {"Sid": "ProjectBucketsAndEcrLayers", "Effect": "Allow", "Principal": "*",
                 "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation"],
                 "Resource": [f"arn:aws:s3:::{prefix}-*", f"arn:aws:s3:::{prefix}-*/*",
                              f"arn:aws:s3:::prod-{region}-starport-layer-bucket/*"],
                 "Condition": {"StringEquals": {"aws:PrincipalAccount": account}}}
    else:
        allow = {"Sid": "AccountPrincipalsOnly", "Effect": "Allow", "Principal": "*",
                 "Action": _ENDPOINT_ACTIONS[service], "Resource": "*",
                 "Condition": {"StringEquals": {"aws:PrincipalAccount": account}}}
    return json.dumps({"Version": "2012-10-17", "Statement": [_secure_transport_deny(), allow]})


def _rule(protocol: str, port: int | None = None, cidr: str | None = None, group: str | None = None,
          prefix_list: str | None = None, description: str = "") -> dict[str, Any]:
    rule: dict[str, Any] = {"IpProtocol": protocol}
    if port is not None:
        rule.update(FromPort=port, ToPort=port)
    if cidr:
        rule["IpRanges"] = [{"CidrIp": cidr, "Description": description}]
    if group:
        rule["UserIdGroupPairs"] = [{"GroupId": group, "Description": description}]
    if prefix_list:
        rule["PrefixListIds"] = [{"PrefixListId": prefix_list, "Description": description}]
    return rule


def _revoke_all(ec2: Any, group_id: str) -> None:
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    ingress = [r["SecurityGroupRuleId"] for r in rules if not r["IsEgress"]]
    egress = [r["SecurityGroupRuleId"] for r in rules if r["IsEgress"]]
    if ingress:
        ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=ingress)
    if egress:
        ec2.revoke_security_group_egress(GroupId=group_id, SecurityGroupRuleIds=egress)


def _group(ec2: Any, vpc_id: str, name: str, description: str, tags: Mapping[str, str],
           ingress: list[dict[str, Any]], egress: list[dict[str, Any]], self_ingress: bool = False,
           self_egress: bool = False) -> str:
    """A security group with exactly these rules (AWS's default allow-all egress removed)."""
    group_id = ec2.create_security_group(GroupName=name, Description=description, VpcId=vpc_id,
                                         TagSpecifications=_spec("security-group", tags, name))["GroupId"]
    _revoke_all(ec2, group_id)
    ingress = ingress + ([_rule("-1", group=group_id, description="multi-instance traffic")] if self_ingress else [])
    egress = egress + ([_rule("-1", group=group_id, description="multi-instance traffic")] if self_egress else [])
    if ingress:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=ingress)
    if egress:
        ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=egress)
    return group_id


def attach_sagemaker_eni(ec2: Any, subnet_id: str, group_ids: list[str], description: str) -> str:
    """A network interface as SageMaker creates one in the customer subnet for a job or endpoint
    (moto does not). The description names SageMaker and the resource, as AWS's do."""
    eni = ec2.create_network_interface(SubnetId=subnet_id, Groups=group_ids,
                                       Description=f"{description} (simulated by netguard_testkit)")
    return eni["NetworkInterface"]["NetworkInterfaceId"]


def _s3_prefix_list(ec2: Any, region: str) -> str | None:
    try:
        lists = ec2.describe_managed_prefix_lists(
            Filters=[{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{region}.s3"]}])["PrefixLists"]
    except Exception:  # noqa: BLE001 - an endpoint without the API: egress to the VPC only
        return None
    return lists[0]["PrefixListId"] if lists else None


def _fix_endpoint_enis(ec2: Any, endpoint: dict[str, Any], group_id: str) -> None:
    """Without aws_like_sagemaker(), moto gives endpoint interfaces the default group and no description."""
    eni_ids = endpoint.get("NetworkInterfaceIds") or []
    if not eni_ids:
        return
    for eni in ec2.describe_network_interfaces(NetworkInterfaceIds=eni_ids)["NetworkInterfaces"]:
        expected = f"VPC Endpoint Interface {endpoint['VpcEndpointId']}"
        if [g["GroupId"] for g in eni.get("Groups", [])] != [group_id]:
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[group_id])
        if eni.get("Description") != expected:
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                                   Description={"Value": expected})


def _build_network(ec2: Any, logs: Any, iam: Any, account: str, region: str, prefix: str,
                   tags: Mapping[str, str], with_public_subnet: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    vpc_id = ec2.create_vpc(CidrBlock=CIDR, TagSpecifications=_spec("vpc", tags, f"{prefix}-vpc"))["Vpc"]["VpcId"]
    # One attribute per call, and hostnames only once DNS support is on.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    azs = [z["ZoneName"] for z in ec2.describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]}])["AvailabilityZones"]][:2]
    out.update(vpc_id=vpc_id, vpc_cidr=CIDR, availability_zones=(azs[0], azs[1]))

    private_rt = ec2.create_route_table(
        VpcId=vpc_id, TagSpecifications=_spec("route-table", tags, f"{prefix}-private"))["RouteTable"]["RouteTableId"]
    subnets = []
    for index, (az, cidr) in enumerate(zip(azs, PRIVATE_CIDRS, strict=True)):
        name = f"{prefix}-private-{'ab'[index]}"
        subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az,
                                      TagSpecifications=_spec("subnet", tags, name))["Subnet"]["SubnetId"]
        ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": False})
        ec2.associate_route_table(RouteTableId=private_rt, SubnetId=subnet_id)
        subnets.append(subnet_id)
    out.update(private_subnet_ids=(subnets[0], subnets[1]), private_route_table_id=private_rt)

    main_rt = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                 {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    out["main_route_table_id"] = main_rt[0]["RouteTableId"]

    if with_public_subnet:
        public = ec2.create_subnet(VpcId=vpc_id, CidrBlock=PUBLIC_CIDR, AvailabilityZone=azs[0],
                                   TagSpecifications=_spec("subnet", tags, f"{prefix}-public"))["Subnet"]["SubnetId"]
        igw = ec2.create_internet_gateway(TagSpecifications=_spec("internet-gateway", tags, f"{prefix}-igw"))
        igw_id = igw["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
        public_rt = ec2.create_route_table(VpcId=vpc_id, TagSpecifications=_spec(
            "route-table", tags, f"{prefix}-public"))["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
        ec2.associate_route_table(RouteTableId=public_rt, SubnetId=public)
        out.update(public_subnet_id=public, internet_gateway_id=igw_id, public_route_table_id=public_rt)

    # Network ACL of the private subnets: within the VPC, return traffic in, HTTPS out; the rest denied.
    acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkAcls"]
    default_acl = next(a for a in acls if a["IsDefault"])
    acl_id = ec2.create_network_acl(
        VpcId=vpc_id, TagSpecifications=_spec("network-acl", tags, f"{prefix}-private"))["NetworkAcl"]["NetworkAclId"]
    for number, egress, protocol, cidr, ports in (
            (100, False, "-1", CIDR, None), (200, False, "6", "0.0.0.0/0", (1024, 65535)),
            (100, True, "-1", CIDR, None), (200, True, "6", "0.0.0.0/0", (443, 443))):
        entry: dict[str, Any] = {"NetworkAclId": acl_id, "RuleNumber": number, "Protocol": protocol,
                                 "RuleAction": "allow", "Egress": egress, "CidrBlock": cidr}
        if ports:
            entry["PortRange"] = {"From": ports[0], "To": ports[1]}
        ec2.create_network_acl_entry(**entry)
    for assoc in default_acl["Associations"]:
        if assoc["SubnetId"] in subnets:
            ec2.replace_network_acl_association(AssociationId=assoc["NetworkAclAssociationId"], NetworkAclId=acl_id)
    out.update(network_acl_id=acl_id, default_network_acl_id=default_acl["NetworkAclId"])

    # Security groups: the default one emptied, one per function.
    default_sg = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                      {"Name": "group-name", "Values": ["default"]}])
    default_sg_id = default_sg["SecurityGroups"][0]["GroupId"]
    _revoke_all(ec2, default_sg_id)
    pl = _s3_prefix_list(ec2, region)
    https_vpc = _rule("tcp", 443, cidr=CIDR, description="HTTPS within the VPC")
    https_s3 = [_rule("tcp", 443, prefix_list=pl, description="S3 through the gateway endpoint")] if pl else []
    out.update(
        default_security_group_id=default_sg_id, s3_prefix_list_id=pl,
        sg_notebook=_group(ec2, vpc_id, f"{prefix}-notebook", "SageMaker notebook instances", tags,
                           [https_vpc], [https_vpc, *https_s3]),
        sg_training=_group(ec2, vpc_id, f"{prefix}-training", "SageMaker training and processing jobs", tags,
                           [], [https_vpc, *https_s3], self_ingress=True, self_egress=True),
        sg_endpoint=_group(ec2, vpc_id, f"{prefix}-endpoint", "SageMaker models and endpoints", tags,
                           [https_vpc], [https_vpc, *https_s3]),
        sg_vpc_endpoint=_group(ec2, vpc_id, f"{prefix}-vpc-endpoints", "Interface VPC endpoints", tags,
                               [https_vpc], []),
        sg_studio=_group(ec2, vpc_id, f"{prefix}-studio", "SageMaker Studio apps (VpcOnly domain)", tags,
                         [https_vpc], [https_vpc, *https_s3,
                                       _rule("tcp", 2049, cidr=CIDR, description="NFS to the home EFS")]),
    )
    # The default resources AWS made with the VPC are network resources too.
    ec2.create_tags(Resources=[default_sg_id, out["main_route_table_id"], default_acl["NetworkAclId"]],
                    Tags=_tag_list(tags))

    # Endpoints.
    s3 = ec2.create_vpc_endpoint(
        VpcId=vpc_id, VpcEndpointType="Gateway", ServiceName=f"com.amazonaws.{region}.s3",
        RouteTableIds=[private_rt], PolicyDocument=endpoint_policy("s3", account, region, prefix),
        TagSpecifications=_spec("vpc-endpoint", tags, f"{prefix}-s3"))["VpcEndpoint"]
    interface: dict[str, str] = {}
    eni_ids: list[str] = []
    for service in INTERFACE_SERVICES:
        endpoint = ec2.create_vpc_endpoint(
            VpcId=vpc_id, VpcEndpointType="Interface", ServiceName=f"com.amazonaws.{region}.{service}",
            SubnetIds=subnets, SecurityGroupIds=[out["sg_vpc_endpoint"]], PrivateDnsEnabled=True,
            PolicyDocument=endpoint_policy(service, account, region, prefix),
            TagSpecifications=_spec("vpc-endpoint", tags, f"{prefix}-{service}"))["VpcEndpoint"]
        _fix_endpoint_enis(ec2, endpoint, out["sg_vpc_endpoint"])
        interface[service] = endpoint["VpcEndpointId"]
        eni_ids += endpoint.get("NetworkInterfaceIds") or []
    out.update(s3_gateway_endpoint_id=s3["VpcEndpointId"], interface_endpoints=interface,
               vpc_endpoint_eni_ids=tuple(eni_ids))

    # Flow log: ALL traffic to CloudWatch Logs through a delivery role.
    group_name = f"/aws/vpc/flowlogs/{prefix}"
    logs.create_log_group(logGroupName=group_name, tags=dict(tags))
    logs.put_retention_policy(logGroupName=group_name, retentionInDays=365)
    role = iam.create_role(
        RoleName=f"{prefix}-vpc-flow-logs", Tags=_tag_list(tags),
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]}))["Role"]
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="deliver-flow-logs", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Resource": f"arn:aws:logs:{region}:{account}:log-group:{group_name}:*",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]}]}))
    flow = ec2.create_flow_logs(
        ResourceIds=[vpc_id], ResourceType="VPC", TrafficType="ALL", LogDestinationType="cloud-watch-logs",
        LogGroupName=group_name, DeliverLogsPermissionArn=role["Arn"], MaxAggregationInterval=60,
        TagSpecifications=_spec("vpc-flow-log", tags, f"{prefix}-vpc"))
    out.update(flow_log_id=flow["FlowLogIds"][0], flow_log_group=group_name, flow_log_role_arn=role["Arn"])
    return out


def _build_sagemaker(sm: Any, ec2: Any, iam: Any, kms: Any, net: dict[str, Any], account: str, region: str, prefix: str,
                     tags: Mapping[str, str], notebook_in_service: bool) -> dict[str, Any]:
    tag_list = _tag_list(tags)
    subnets = list(net["private_subnet_ids"])
    role_arn = iam.create_role(
        RoleName=f"{prefix}-sagemaker-execution", Tags=tag_list,
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    image = f"{account}.dkr.ecr.{region}.amazonaws.com/{prefix}"
    bucket = f"s3://{prefix}-artifacts-{account}"
    training_vpc = {"Subnets": subnets, "SecurityGroupIds": [net["sg_training"]]}
    stopping = {"MaxRuntimeInSeconds": 86400}
    out: dict[str, Any] = {"sagemaker_role_arn": role_arn}

    notebook = f"{prefix}-notebook"
    out["notebook_arn"] = sm.create_notebook_instance(
        NotebookInstanceName=notebook, InstanceType="ml.t3.medium", RoleArn=role_arn,
        SubnetId=subnets[0], SecurityGroupIds=[net["sg_notebook"]], DirectInternetAccess="Disabled",
        RootAccess="Disabled", Tags=tag_list)["NotebookInstanceArn"]
    out["notebook_name"] = notebook
    out["notebook_eni_id"] = moto_fidelity.attach_notebook_eni(ec2, subnets[0], [net["sg_notebook"]], notebook)
    if notebook_in_service and sm.describe_notebook_instance(
            NotebookInstanceName=notebook)["NotebookInstanceStatus"] == "Pending":
        try:  # play SageMaker's part (in-process moto only)
            moto_fidelity.set_status(account, region, notebook, "InService")
        except KeyError:
            pass

    training = f"{prefix}-train-1"
    out["training_job_arn"] = sm.create_training_job(
        TrainingJobName=training, RoleArn=role_arn,
        AlgorithmSpecification={"TrainingImage": f"{image}-train:latest", "TrainingInputMode": "File"},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"{bucket}/data/train/", "S3DataDistributionType": "ShardedByS3Key"}}}],
        OutputDataConfig={"S3OutputPath": f"{bucket}/training/"},
        ResourceConfig={"InstanceType": INSTANCE_TYPE, "InstanceCount": 2, "VolumeSizeInGB": 100},
        VpcConfig=training_vpc, EnableNetworkIsolation=True, EnableInterContainerTrafficEncryption=True,
        StoppingCondition=stopping, Tags=tag_list)["TrainingJobArn"]
    out["training_job_name"] = training
    out["training_eni_ids"] = tuple(
        attach_sagemaker_eni(ec2, s, [net["sg_training"]], f"SageMaker training job {training}") for s in subnets)

    processing = f"{prefix}-features-1"
    out["processing_job_arn"] = sm.create_processing_job(
        ProcessingJobName=processing, RoleArn=role_arn, AppSpecification={"ImageUri": f"{image}-features:latest"},
        ProcessingInputs=[{"InputName": "raw", "S3Input": {
            "S3Uri": f"{bucket}/data/raw/", "LocalPath": "/opt/ml/processing/input", "S3DataType": "S3Prefix",
            "S3InputMode": "File"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "features", "S3Output": {
            "S3Uri": f"{bucket}/data/train/", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 2, "InstanceType": INSTANCE_TYPE,
                                               "VolumeSizeInGB": 50}},
        NetworkConfig={"EnableInterContainerTrafficEncryption": True, "EnableNetworkIsolation": True,
                       "VpcConfig": training_vpc},
        StoppingCondition=stopping, Tags=tag_list)["ProcessingJobArn"]
    out["processing_job_name"] = processing
    out["processing_eni_ids"] = tuple(
        attach_sagemaker_eni(ec2, s, [net["sg_training"]], f"SageMaker processing job {processing}") for s in subnets)

    tuning = f"{prefix}-tune-1"
    out["tuning_job_arn"] = sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning,
        HyperParameterTuningJobConfig={
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:auc"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {"ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.1", "MaxValue": "0.5"}]}},
        TrainingJobDefinition={
            "AlgorithmSpecification": {"TrainingImage": f"{image}-train:latest", "TrainingInputMode": "File"},
            "RoleArn": role_arn, "OutputDataConfig": {"S3OutputPath": f"{bucket}/tuning/"},
            "ResourceConfig": {"InstanceType": INSTANCE_TYPE, "InstanceCount": 2, "VolumeSizeInGB": 100},
            "StoppingCondition": stopping, "VpcConfig": training_vpc, "EnableNetworkIsolation": True,
            "EnableInterContainerTrafficEncryption": True},
        Tags=tag_list)["HyperParameterTuningJobArn"]
    out["tuning_job_name"] = tuning

    model = f"{prefix}-model"
    out["model_arn"] = sm.create_model(
        ModelName=model, ExecutionRoleArn=role_arn,
        PrimaryContainer={"Image": f"{image}-serve:latest", "ModelDataUrl": f"{bucket}/training/model.tar.gz"},
        VpcConfig={"Subnets": subnets, "SecurityGroupIds": [net["sg_endpoint"]]}, EnableNetworkIsolation=True,
        Tags=tag_list)["ModelArn"]
    out["model_name"] = model

    config = f"{prefix}-endpoint-config"
    # its instances' volumes encrypted with a customer managed key (EP.3)
    out["endpoint_key_arn"] = kms.create_key(Description=f"{prefix} endpoint volumes")["KeyMetadata"]["Arn"]
    out["endpoint_config_arn"] = sm.create_endpoint_config(
        EndpointConfigName=config, Tags=tag_list, KmsKeyId=out["endpoint_key_arn"], ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": model, "InstanceType": INSTANCE_TYPE,
            "InitialInstanceCount": 2, "InitialVariantWeight": 1.0}])["EndpointConfigArn"]
    out["endpoint_config_name"] = config
    endpoint = f"{prefix}-endpoint"
    out["endpoint_arn"] = sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config,
                                             Tags=tag_list)["EndpointArn"]
    out["endpoint_name"] = endpoint
    out["endpoint_eni_ids"] = tuple(
        attach_sagemaker_eni(ec2, s, [net["sg_endpoint"]], f"SageMaker endpoint {endpoint}") for s in subnets)

    transform = f"{prefix}-batch-1"
    out["transform_job_arn"] = sm.create_transform_job(
        TransformJobName=transform, ModelName=model,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{bucket}/batch/in/"}},
                        "ContentType": "text/csv"},
        TransformOutput={"S3OutputPath": f"{bucket}/batch/out/"},
        TransformResources={"InstanceType": INSTANCE_TYPE, "InstanceCount": 1}, Tags=tag_list)["TransformJobArn"]
    out["transform_job_name"] = transform

    domain = sm.create_domain(
        DomainName=f"{prefix}-studio", AuthMode="IAM", VpcId=net["vpc_id"], SubnetIds=subnets,
        AppNetworkAccessType="VpcOnly", Tags=tag_list,
        DefaultUserSettings={"ExecutionRole": role_arn, "SecurityGroups": [net["sg_studio"]]})
    out["domain_arn"] = domain["DomainArn"]
    out["domain_id"] = domain["DomainArn"].rsplit("/", 1)[1]
    return out


def _build_home_efs(efs: Any, ec2: Any, net: dict[str, Any], domain_arn: str, prefix: str,
                    tags: Mapping[str, str]) -> dict[str, Any]:
    """Studio's home file system: NFS from the Studio apps' group only, a mount target in each private subnet."""
    sg = _group(ec2, net["vpc_id"], f"{prefix}-studio-home-efs", "SageMaker Studio home EFS (NFS from Studio)",
                tags, [_rule("tcp", 2049, group=net["sg_studio"], description="NFS from Studio apps")], [])
    system = efs.create_file_system(CreationToken=f"{prefix}-studio-home", Encrypted=True,
                                    Tags=[*_tag_list(tags), {"Key": "ManagedByAmazonSageMakerResource",
                                                             "Value": domain_arn}])
    targets = tuple(efs.create_mount_target(FileSystemId=system["FileSystemId"], SubnetId=subnet,
                                            SecurityGroups=[sg])["MountTargetId"]
                    for subnet in net["private_subnet_ids"])
    return {"home_efs_id": system["FileSystemId"], "sg_home_efs": sg, "home_efs_mount_target_ids": targets}


def build_secure_world(clients_by_service_or_session: ClientSource, account: str, region: str, *,
                       prefix: str = "fraud-ml", tags: Mapping[str, str] | None = None,
                       with_public_subnet: bool = False, notebook_in_service: bool = True) -> SecureWorld:
    """Build the secure architecture (module docstring) and return its ids.

    `clients_by_service_or_session`: a boto3 Session, a `chalicelib.aws.Clients`, a mapping
    {"ec2": client, "sagemaker": ..., "logs": ..., "iam": ..., "kms": ..., "efs": ...} or a callable(service)
    -> client.
    `prefix` names everything (IAM role names included), so two worlds can live in one account.
    `notebook_in_service`: move the notebook from Pending to InService as SageMaker would (in-process
    moto only; elsewhere it is left as created).
    """
    client = _client_factory(clients_by_service_or_session, region)
    ec2, sm, logs, iam = client("ec2"), client("sagemaker"), client("logs"), client("iam")
    tags = dict(TAGS if tags is None else tags)
    net = _build_network(ec2, logs, iam, account, region, prefix, tags, with_public_subnet)
    ml = _build_sagemaker(sm, ec2, iam, client("kms"), net, account, region, prefix, tags, notebook_in_service)
    home = _build_home_efs(client("efs"), ec2, net, ml["domain_arn"], prefix, tags)
    return SecureWorld(account=account, region=region, prefix=prefix, tags=tags, **net, **ml, **home)
