"""Shared fixtures: isolated fake AWS credentials, an in-process moto account that behaves like AWS
for notebooks (netguard_demo.moto_fidelity), the demo network, and a write-call counter."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws import Clients
from netguard_demo.moto_fidelity import aws_like_notebooks
from netguard_demo.moto_sagemaker import aws_like_sagemaker
from netguard_demo.world import Network, build_network, remove_default_vpc

REGION = "us-east-1"
READ_PREFIXES = ("Describe", "List", "Get")


def clean_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, the test region, and no endpoint, profile or netguard setting from outside."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "NETGUARD_")) or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_aws_env(monkeypatch)


@dataclass
class CallLog:
    """Every AWS operation a session made, by service, in order."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, model: Any = None, **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name))

    def writes(self, services: tuple[str, ...] = ("ec2", "sagemaker")) -> list[str]:
        return [f"{svc}:{op}" for svc, op in self.calls if svc in services and not op.startswith(READ_PREFIXES)]

    def ops(self, service: str | None = None) -> list[str]:
        return [op for svc, op in self.calls if service is None or svc == service]


@dataclass
class Account:
    session: Any
    clients: Clients
    calls: CallLog
    account: str
    region: str

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=self.region)


@pytest.fixture
def aws() -> Iterator[Account]:
    """An in-process moto account; `calls` records what netguard's clients (not the fixtures) call."""
    with mock_aws(), aws_like_notebooks(), aws_like_sagemaker():
        setup = boto3.session.Session(region_name=REGION)
        account = setup.client("sts").get_caller_identity()["Account"]
        netguard_session = boto3.session.Session(region_name=REGION)
        calls = CallLog()
        netguard_session.events.register("before-call.*.*", calls)
        yield Account(setup, Clients(netguard_session), calls, account, REGION)


@pytest.fixture
def net(aws: Account) -> Network:
    """The demo network, in an account without moto's default VPC."""
    remove_default_vpc(aws.client("ec2"))
    return build_network(aws.client("ec2"), aws.account, aws.region)
