"""Worlds the benchmarks build on a BenchServer, over HTTP, with netguard_testkit's builders.

`base` is what every world has (one network, netguard's ledger table, alert topic and report
bucket); `add_notebooks` fills an account with compliant notebooks (the per-event benchmark's
"account of N notebooks"); `mixed` is the sweep's world of N evaluated resources.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"
TABLE = "netguard-ledger-bench"
BUCKET = "netguard-reports-bench"
OPEN_SSH = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
BUILDERS = 8  # concurrent requests while building (the server is threaded)


@dataclass
class Base:
    session: Any
    account: str
    net: Any  # netguard_testkit.world.Network
    topic: str
    role: str


def base() -> Base:
    """Call with AWS_ENDPOINT_URL and credentials set to the server's (BenchServer.env())."""
    import boto3

    from netguard_testkit.world import build_network, create_alert_channels, create_ledger_table, remove_default_vpc

    session = boto3.session.Session(region_name=REGION)
    ec2 = session.client("ec2")
    account = session.client("sts").get_caller_identity()["Account"]
    remove_default_vpc(ec2)
    create_ledger_table(session.client("dynamodb"), TABLE)
    topic, _, _ = create_alert_channels(session.client("sns"), session.client("sqs"), session.client("ssm"), None)
    session.client("s3").create_bucket(Bucket=BUCKET)
    return Base(session, account, build_network(ec2, account, REGION), topic,
                f"arn:aws:iam::{account}:role/sagemaker")


def in_parallel(function: Any, items: list[Any]) -> None:
    with ThreadPoolExecutor(BUILDERS) as pool:
        for _ in pool.map(function, items):
            pass


def add_notebooks(world: Base, count: int, prefix: str = "nb", nets: list[Any] | None = None) -> None:
    """`count` notebooks; every 20th has direct internet access in a public subnet, when `nets` is
    given (the sweep's world); else all are compliant (an account's background)."""
    from netguard_testkit.world import create_notebook

    sm = world.session.client("sagemaker")

    def one(i: int) -> None:
        net = (nets or [world.net])[i % len(nets or [world.net])]
        bad = nets is not None and i % 20 == 0
        create_notebook(sm, world.account, f"{prefix}-{i:05d}",
                        net.public_subnet if bad else net.private_subnets[i % 2],
                        [net.sg_notebook_ok], direct_internet="Enabled" if bad else "Disabled")

    in_parallel(one, list(range(count)))


def create_training_job(world: Base, name: str, net: Any, isolated: bool) -> None:
    from netguard_testkit.world import create_training_job as create

    create(world.session.client("sagemaker"), world.account, name, net, isolated)


def mixed(world: Base, size: int) -> dict[str, int]:
    """About `size` resources netguard evaluates in one account-region: 70% notebooks (1 in 20 with
    direct internet in a public subnet), 10% running training jobs (1 in 10 without network
    isolation), 15% security groups (1 in 25 with SSH open to the world, on a network interface),
    and VPCs with two private subnets and a public one each (the rest). Everything carries the
    baseline's tags."""
    from netguard_testkit.moto_fidelity import attach_notebook_eni
    from netguard_testkit.world import build_network, tag_spec

    ec2 = world.session.client("ec2")
    notebooks, jobs, groups = int(size * 0.70), int(size * 0.10), int(size * 0.15)
    vpcs = max(1, (size - notebooks - jobs - groups) // 4)  # a VPC and its subnets, default group: ~4 resources
    nets = [world.net] + [build_network(ec2, world.account, REGION) for _ in range(vpcs - 1)]

    def group(i: int) -> None:
        net = nets[i % len(nets)]
        gid = ec2.create_security_group(GroupName=f"bench-{i}", Description="bench", VpcId=net.vpc_id,
                                        TagSpecifications=tag_spec("security-group"))["GroupId"]
        if i % 25 == 0:
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=OPEN_SSH)
            attach_notebook_eni(ec2, net.private_subnets[0], [gid], f"nb-{i}")

    in_parallel(group, list(range(groups)))
    add_notebooks(world, notebooks, nets=nets)
    in_parallel(lambda i: create_training_job(world, f"train-{i:05d}", nets[i % len(nets)], i % 10 != 0),
                list(range(jobs)))
    return {"notebooks": notebooks, "training_jobs": jobs, "security_groups": groups, "vpcs": vpcs}


def census(world: Base) -> dict[str, int]:
    """What both tools evaluate in the world, counted from the server: the denominator of calls per
    resource and of throughput for both."""
    sm, ec2 = world.session.client("sagemaker"), world.session.client("ec2")

    def count(client: Any, operation: str, key: str, **kw: Any) -> int:
        return sum(len(page[key]) for page in client.get_paginator(operation).paginate(**kw))

    return {"notebooks": count(sm, "list_notebook_instances", "NotebookInstances"),
            "training_jobs": count(sm, "list_training_jobs", "TrainingJobSummaries"),
            "security_groups": count(ec2, "describe_security_groups", "SecurityGroups"),
            "vpcs": count(ec2, "describe_vpcs", "Vpcs")}
