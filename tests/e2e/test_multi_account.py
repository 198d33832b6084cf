"""Multi-account: events from member accounts are acted on in their account through the member role
(name and external id configured), credentials are cached and renewed, and accounts outside the
configuration are refused."""
from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest

from chalicelib import handlers
from chalicelib.aws import Clients, partition
from chalicelib.errors import ConfigError
from chalicelib.settings import Settings
from conftest import invoke
from netguard_testkit import events
from netguard_testkit.moto_fidelity import attach_notebook_eni
from netguard_testkit.world import build_network, remove_default_vpc

MEMBER = "111111111111"
ROLE = "netguard-member"
EXTERNAL_ID = "netguard-test-external-id"


def assume_calls(aws) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    aws.clients.session.events.register("provide-client-params.sts.AssumeRole",
                                        lambda params, **_: seen.append(dict(params)))
    return seen


def test_settings_parse_accounts_regions_and_the_member_role() -> None:
    settings = Settings.from_env({"NETGUARD_ACCOUNTS": "111111111111, 222222222222",
                                  "NETGUARD_REGIONS": "eu-west-1,us-east-1",
                                  "NETGUARD_MEMBER_ROLE_NAME": ROLE, "NETGUARD_MEMBER_EXTERNAL_ID": EXTERNAL_ID,
                                  "NETGUARD_HOME_ACCOUNT": "999999999999"})
    assert settings.accounts == ("111111111111", "222222222222") and settings.regions == ("eu-west-1", "us-east-1")
    assert settings.account_allowed("999999999999") and settings.account_allowed("222222222222")
    assert not settings.account_allowed("333333333333")
    assert Settings.from_env({"NETGUARD_ACCOUNTS": "organization"}).account_allowed("333333333333")
    home_only = Settings.from_env({"NETGUARD_HOME_ACCOUNT": "999999999999"})
    assert home_only.account_allowed("999999999999") and not home_only.account_allowed("111111111111")
    with pytest.raises(ConfigError, match="12-digit"):
        Settings.from_env({"NETGUARD_ACCOUNTS": "1234,organization"})


def test_partition_follows_the_region() -> None:
    assert [partition(r) for r in ("eu-west-1", "cn-north-1", "us-gov-west-1", None)] == [
        "aws", "aws-cn", "aws-us-gov", "aws"]


def test_member_clients_assume_the_role_with_the_external_id_once(aws) -> None:
    seen = assume_calls(aws)
    clients = Clients(aws.clients.session, ROLE, EXTERNAL_ID, aws.account)
    ec2 = clients.client("ec2", aws.region, MEMBER)
    assert ec2.describe_vpcs()["Vpcs"][0]["OwnerId"] == MEMBER
    clients.client("sagemaker", aws.region, MEMBER)  # same account: same credentials
    assert [(c["RoleArn"], c["ExternalId"]) for c in seen] == [(f"arn:aws:iam::{MEMBER}:role/{ROLE}", EXTERNAL_ID)]
    home = clients.client("ec2", aws.region, aws.account)  # our own account: our own credentials
    assert home.describe_vpcs()["Vpcs"][0]["OwnerId"] == aws.account and len(seen) == 1


def test_member_credentials_are_renewed_before_they_expire(aws) -> None:
    seen = assume_calls(aws)
    clients = Clients(aws.clients.session, ROLE, EXTERNAL_ID, aws.account)
    first = clients.client("ec2", aws.region, MEMBER)
    session, _ = clients._assumed[MEMBER]
    clients._assumed[MEMBER] = (session, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    second = clients.client("ec2", aws.region, MEMBER)
    assert len(seen) == 2 and second is not first  # a new client on the new credentials


def test_without_a_member_role_every_account_uses_our_credentials(aws) -> None:
    seen = assume_calls(aws)
    clients = Clients(aws.clients.session)
    assert clients.client("ec2", aws.region, MEMBER) is clients.client("ec2", aws.region, aws.account)
    assert seen == []


def test_an_event_from_a_member_account_is_acted_on_there(stack, monkeypatch) -> None:
    """A central deployment receives the member's CloudTrail event (cross-account event bus) and
    revokes the open rule in the member account, through the member role."""
    aws = stack["aws"]
    creds = aws.client("sts").assume_role(RoleArn=f"arn:aws:iam::{MEMBER}:role/{ROLE}", RoleSessionName="setup",
                                          ExternalId=EXTERNAL_ID)["Credentials"]
    member = boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                   aws_secret_access_key=creds["SecretAccessKey"],
                                   aws_session_token=creds["SessionToken"], region_name=aws.region)
    remove_default_vpc(member.client("ec2"))
    net = build_network(member.client("ec2"), MEMBER, aws.region)
    attach_notebook_eni(member.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")
    monkeypatch.setenv("NETGUARD_ACCOUNTS", f"{aws.account},{MEMBER}")
    monkeypatch.setattr(handlers, "make_clients", lambda settings: Clients(aws.clients.session, ROLE, EXTERNAL_ID,
                                                                           aws.account))
    handlers.runtime.cache_clear()
    seen = assume_calls(aws)
    result = invoke(stack, "on_api_call", events.authorize_ingress(
        net.sg_ssh_open, [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        MEMBER, aws.region))
    assert ("SG.1", "succeeded") in {(d["control"], d["result"]) for d in result["decisions"]}
    rules = member.client("ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [net.sg_ssh_open]}])["SecurityGroupRules"]
    assert not [r for r in rules if not r["IsEgress"] and r.get("CidrIpv4") == "0.0.0.0/0"]
    assert {c["RoleArn"] for c in seen} == {f"arn:aws:iam::{MEMBER}:role/{ROLE}"}


def test_an_event_from_an_unconfigured_account_is_refused(stack, monkeypatch) -> None:
    aws = stack["aws"]
    monkeypatch.setenv("NETGUARD_HOME_ACCOUNT", aws.account)
    handlers.runtime.cache_clear()
    result = invoke(stack, "on_api_call", events.authorize_ingress(
        "sg-0123456789abcdef0", [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                  "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], MEMBER, aws.region))
    assert result["skipped"] == "ignored" and MEMBER in result["reason"]
    assert aws.calls.calls == []
