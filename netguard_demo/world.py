"""A small account modelled on the field guide's bad habits, built with boto3 against moto.

One VPC (10.0.0.0/16) with two private subnets in two AZs (route table: local only) and one public
subnet (0.0.0.0/0 -> internet gateway), and security groups: a compliant notebook group (443 from the
VPC), a group open to the world on 22, and a notebook group allowing 8888 from the VPC.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLE = "arn:aws:iam::{account}:role/sagemaker-notebook"


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


def _group(ec2: Any, vpc_id: str, name: str, ingress: list[dict[str, Any]]) -> str:
    group_id = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc_id)["GroupId"]
    if ingress:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=ingress)
    return group_id


def tcp(port: int, cidr: str) -> dict[str, Any]:
    key, item = ("Ipv6Ranges", {"CidrIpv6": cidr}) if ":" in cidr else ("IpRanges", {"CidrIp": cidr})
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, key: [item]}


def build_network(ec2: Any, account: str, region: str) -> Network:
    cidr = "10.0.0.0/16"
    vpc_id = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    azs = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    private = []
    private_rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    for index, az in enumerate(azs):
        subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{index + 1}.0/24",
                                      AvailabilityZone=az)["Subnet"]["SubnetId"]
        ec2.associate_route_table(RouteTableId=private_rt, SubnetId=subnet_id)
        private.append(subnet_id)
    public = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.100.0/24", AvailabilityZone=azs[0])["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    public_rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_rt, SubnetId=public)
    return Network(
        account=account, region=region, vpc_id=vpc_id, vpc_cidr=cidr,
        private_subnets=(private[0], private[1]), public_subnet=public, igw_id=igw,
        sg_notebook_ok=_group(ec2, vpc_id, "notebook-https", [tcp(443, cidr)]),
        sg_ssh_open=_group(ec2, vpc_id, "ssh-from-anywhere", [tcp(22, "0.0.0.0/0")]),
        sg_jupyter=_group(ec2, vpc_id, "notebook-jupyter", [tcp(8888, cidr)]),
    )


def create_notebook(sagemaker: Any, account: str, name: str, subnet_id: str | None = None,
                    group_ids: list[str] | None = None, direct_internet: str = "Enabled",
                    root_access: str = "Disabled", tags: dict[str, str] | None = None) -> str:
    params: dict[str, Any] = {"NotebookInstanceName": name, "InstanceType": "ml.t3.medium",
                              "RoleArn": ROLE.format(account=account), "DirectInternetAccess": direct_internet,
                              "RootAccess": root_access}
    if subnet_id:
        params.update(SubnetId=subnet_id, SecurityGroupIds=group_ids or [])
    if tags:
        params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return sagemaker.create_notebook_instance(**params)["NotebookInstanceArn"]


def ingress_rule_ids(ec2: Any, group_id: str) -> dict[str, dict[str, Any]]:
    """The group's ingress rules by rule id (to check what a remediation left)."""
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
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
