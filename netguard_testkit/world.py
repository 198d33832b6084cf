"""A small account modelled on the field guide's bad habits, built with boto3 against moto.

One VPC (10.0.0.0/16) with two private subnets in two AZs (route table: local only) and one public
subnet (0.0.0.0/0 -> internet gateway), and security groups: a compliant notebook group (443 from the
VPC), a group open to the world on 22, and a notebook group allowing 8888 from the VPC.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLE = "arn:aws:iam::{account}:role/sagemaker-notebook"
# Everything in the demo account carries the baseline's tags (TAG.1), unless a test says otherwise.
TAGS = {"Environment": "demo", "Project": "netguard-demo", "Owner": "platform-team@example.com",
        "CostCenter": "cc-0000", "Compliance": "internal"}


def tag_spec(resource_type: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in (tags or TAGS).items()]}]


def remove_default_vpc(ec2: Any) -> None:
    """moto, like a new AWS account, starts with a default VPC; well-run accounts delete it."""
    for vpc in ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]:
        vpc_id = vpc["VpcId"]
        for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        for igw in ec2.describe_internet_gateways(
                Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]:
            ec2.detach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc_id)
            ec2.delete_internet_gateway(InternetGatewayId=igw["InternetGatewayId"])
        ec2.delete_vpc(VpcId=vpc_id)


def close_default_group(ec2: Any, vpc_id: str) -> None:
    """Revoke every rule of the VPC's default security group (SG.5)."""
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                  {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group["GroupId"]]}])["SecurityGroupRules"]
    ec2.create_tags(Resources=[group["GroupId"]], Tags=tag_spec("security-group")[0]["Tags"])
    ingress = [r["SecurityGroupRuleId"] for r in rules if not r["IsEgress"]]
    egress = [r["SecurityGroupRuleId"] for r in rules if r["IsEgress"]]
    if ingress:
        ec2.revoke_security_group_ingress(GroupId=group["GroupId"], SecurityGroupRuleIds=ingress)
    if egress:
        ec2.revoke_security_group_egress(GroupId=group["GroupId"], SecurityGroupRuleIds=egress)


@dataclass(frozen=True)
class Network:
    account: str
    region: str
    vpc_id: str
    vpc_cidr: str
    private_subnets: tuple[str, str]
    public_subnet: str
    igw_id: str
    sg_notebook_ok: str
    sg_ssh_open: str
    sg_jupyter: str


def _group(ec2: Any, vpc_id: str, name: str, ingress: list[dict[str, Any]], vpc_cidr: str) -> str:
    """A dedicated group: the given ingress, egress only HTTPS within the VPC (SG.3)."""
    group_id = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc_id,
                                         TagSpecifications=tag_spec("security-group"))["GroupId"]
    if ingress:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=ingress)
    ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=[{"IpProtocol": "-1",
                                                                       "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[tcp(443, vpc_cidr)])
    return group_id


def tcp(port: int, cidr: str) -> dict[str, Any]:
    key, item = ("Ipv6Ranges", {"CidrIpv6": cidr}) if ":" in cidr else ("IpRanges", {"CidrIp": cidr})
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, key: [item]}


def build_network(ec2: Any, account: str, region: str) -> Network:
    cidr = "10.0.0.0/16"
    vpc_id = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=tag_spec("vpc"))["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    ec2.create_flow_logs(ResourceIds=[vpc_id], ResourceType="VPC", TrafficType="ALL",
                         LogDestinationType="cloud-watch-logs", LogGroupName=f"/demo/flow-logs/{vpc_id}",
                         DeliverLogsPermissionArn=f"arn:aws:iam::{account}:role/netguard-flow-logs")
    close_default_group(ec2, vpc_id)
    azs = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    private = []
    private_rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    for index, az in enumerate(azs):
        subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{index + 1}.0/24", AvailabilityZone=az,
                                      TagSpecifications=tag_spec("subnet"))["Subnet"]["SubnetId"]
        ec2.associate_route_table(RouteTableId=private_rt, SubnetId=subnet_id)
        # moto maps public IPs on some new subnets; AWS does not on non-default subnets: be explicit
        ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": False})
        private.append(subnet_id)
    public = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.100.0/24", AvailabilityZone=azs[0],
                               TagSpecifications=tag_spec("subnet"))["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    public_rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_rt, SubnetId=public)
    add_endpoints(ec2, account, region, vpc_id, cidr, private, private_rt)
    return Network(
        account=account, region=region, vpc_id=vpc_id, vpc_cidr=cidr,
        private_subnets=(private[0], private[1]), public_subnet=public, igw_id=igw,
        sg_notebook_ok=_group(ec2, vpc_id, "notebook-https", [tcp(443, cidr)], cidr),
        sg_ssh_open=_group(ec2, vpc_id, "ssh-from-anywhere", [tcp(22, "0.0.0.0/0")], cidr),
        sg_jupyter=_group(ec2, vpc_id, "notebook-jupyter", [tcp(8888, cidr)], cidr),
    )


def add_endpoints(ec2: Any, account: str, region: str, vpc_id: str, cidr: str, subnets: list[str],
                  route_table: str) -> None:
    """The essential endpoints (VPC.4-VPC.8): S3 gateway on the private route table, and the interface
    endpoints in both private subnets with their own group, private DNS and deliberate policies."""
    from netguard_testkit.secure_world import INTERFACE_SERVICES, endpoint_policy  # noqa: PLC0415

    group = ec2.create_security_group(GroupName="vpc-endpoints", Description="vpc-endpoints", VpcId=vpc_id,
                                      TagSpecifications=tag_spec("security-group"))["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[tcp(443, cidr)])
    ec2.revoke_security_group_egress(GroupId=group, IpPermissions=[{"IpProtocol": "-1",
                                                                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.create_vpc_endpoint(VpcEndpointType="Gateway", VpcId=vpc_id, ServiceName=f"com.amazonaws.{region}.s3",
                            RouteTableIds=[route_table], PolicyDocument=endpoint_policy("s3", account, region, "demo"),
                            TagSpecifications=tag_spec("vpc-endpoint"))
    for service in INTERFACE_SERVICES:
        ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=vpc_id,
                                ServiceName=f"com.amazonaws.{region}.{service}", SubnetIds=subnets,
                                SecurityGroupIds=[group], PrivateDnsEnabled=True,
                                PolicyDocument=endpoint_policy(service, account, region, "demo"),
                                TagSpecifications=tag_spec("vpc-endpoint"))


def create_notebook(sagemaker: Any, account: str, name: str, subnet_id: str | None = None,
                    group_ids: list[str] | None = None, direct_internet: str = "Enabled",
                    root_access: str = "Disabled", tags: dict[str, str | None] | None = None) -> str:
    """A notebook with the baseline's tags (a tag set to None in `tags` is left out)."""
    params: dict[str, Any] = {"NotebookInstanceName": name, "InstanceType": "ml.t3.medium",
                              "RoleArn": ROLE.format(account=account), "DirectInternetAccess": direct_internet,
                              "RootAccess": root_access}
    if subnet_id:
        params.update(SubnetId=subnet_id, SecurityGroupIds=group_ids or [])
    all_tags = {**TAGS, **(tags or {})}
    params["Tags"] = [{"Key": k, "Value": v} for k, v in all_tags.items() if v is not None]
    return sagemaker.create_notebook_instance(**params)["NotebookInstanceArn"]


def create_training_job(sagemaker: Any, account: str, name: str, net: Network, isolated: bool) -> None:
    """A running training job in the network's private subnets, with the baseline's tags."""
    sagemaker.create_training_job(
        TrainingJobName=name, RoleArn=f"arn:aws:iam::{account}:role/sagemaker", EnableNetworkIsolation=isolated,
        AlgorithmSpecification={"TrainingImage": f"{account}.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://netguard-demo/out"}, StoppingCondition={"MaxRuntimeInSeconds": 3600},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        VpcConfig={"Subnets": list(net.private_subnets), "SecurityGroupIds": [net.sg_notebook_ok]},
        Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()])


def ingress_rule_ids(ec2: Any, group_id: str) -> dict[str, dict[str, Any]]:
    """The group's ingress rules by rule id (to check what a remediation left)."""
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    return {r["SecurityGroupRuleId"]: r for r in rules if not r["IsEgress"]}


def create_ledger_table(dynamodb: Any, name: str) -> str:
    """The ledger table exactly as operators create it: pk/sk strings, TTL on expires_at."""
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True,
                                                                          "AttributeName": "expires_at"})
    return name


def create_alert_channels(sns: Any, sqs: Any, ssm: Any, webhook_url: str | None,
                          prefix: str = "netguard") -> tuple[str, str, str | None]:
    """An SNS topic with an SQS queue subscribed (to read alerts back), and the Slack webhook URL
    stored as an SSM SecureString. Returns (topic arn, queue url, parameter name)."""
    topic = sns.create_topic(Name=f"{prefix}-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{prefix}-alerts-readback")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    param = None
    if webhook_url:
        param = f"/{prefix}/slack-webhook"
        ssm.put_parameter(Name=param, Value=webhook_url, Type="SecureString")
    return topic, queue_url, param


def drain_alerts(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every SNS alert delivered to the read-back queue: {"message": ..., "attributes": ...}."""
    import json  # noqa: PLC0415

    alerts = []
    while True:
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return alerts
        for msg in msgs:
            envelope = json.loads(msg["Body"])
            attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
            alerts.append({"message": json.loads(envelope["Message"]), "attributes": attributes,
                           "subject": envelope.get("Subject")})
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])


OPEN_SSH = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]


def open_ssh_groups(ec2: Any, net: Network, count: int, prefix: str = "open") -> list[str]:
    """`count` tagged security groups with SSH open to the world, on notebook network interfaces (five
    groups per interface, alternating between the private subnets): SG.1 violations, one per group."""
    groups = []
    for i in range(count):
        gid = ec2.create_security_group(GroupName=f"{prefix}-{i}", Description=prefix, VpcId=net.vpc_id,
                                        TagSpecifications=tag_spec("security-group"))["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=OPEN_SSH)
        groups.append(gid)
    for start in range(0, count, 5):
        ec2.create_network_interface(
            SubnetId=net.private_subnets[start // 5 % 2], Groups=groups[start:start + 5],
            Description=f"SageMaker notebook instance nb-{start} (simulated by netguard_testkit)")
    return groups
