"""Shared fixtures: isolated fake AWS credentials, an in-process moto account that behaves like AWS
for notebooks (netguard_testkit.moto_fidelity), the demo network, a write-call counter, and an HTML report
reader (html.parser) for `scan --format html`."""
from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import handlers, notify
from chalicelib.aws import Clients
from netguard_testkit.moto_fidelity import aws_like_notebooks
from netguard_testkit.moto_sagemaker import aws_like_sagemaker
from netguard_testkit.receiver import WebhookReceiver
from netguard_testkit.world import (
    Network,
    build_network,
    create_alert_channels,
    create_ledger_table,
    drain_alerts,
    remove_default_vpc,
)

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


# ------------------------------------------------------------------- the deployed stack, in moto

TABLE = "netguard-ledger-test"


@pytest.fixture
def stack(aws, net, monkeypatch) -> Iterator[dict[str, Any]]:
    """The deployed pieces: ledger table, alert topic + read-back queue, Slack webhook in SSM."""
    with WebhookReceiver() as slack:
        create_ledger_table(aws.client("dynamodb"), TABLE)
        topic, queue, param = create_alert_channels(aws.client("sns"), aws.client("sqs"), aws.client("ssm"), slack.url)
        monkeypatch.setattr(handlers, "make_clients", lambda settings: aws.clients)
        from app import app

        # a stage with no environment of its own: the dev stage's variables would replace this stack's
        with Client(app, stage_name="e2e") as client:
            monkeypatch.setenv("NETGUARD_LEDGER_TABLE", TABLE)
            monkeypatch.setenv("NETGUARD_ALERT_TOPIC_ARN", topic)
            monkeypatch.setenv("NETGUARD_SLACK_WEBHOOK_PARAM", param)
            monkeypatch.setenv("NETGUARD_SLACK_ALLOWED_URLS", slack.url)  # the local receiver, not Slack
            monkeypatch.setenv("NETGUARD_MODE", "enforce")
            handlers.runtime.cache_clear()
            notify.clear_cache()
            yield {"client": client, "slack": slack, "queue": queue, "aws": aws, "net": net}
        handlers.runtime.cache_clear()


@pytest.fixture
def engine_log() -> Iterator[io.StringIO]:
    """What the Powertools logger of the handlers writes (to stdout in Lambda)."""
    stream = io.StringIO()
    previous = handlers.logger.registered_handler.setStream(stream)
    yield stream
    handlers.logger.registered_handler.setStream(previous)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def invoke(stack, handler: str, event: Any) -> dict[str, Any]:
    return stack["client"].lambda_.invoke(handler, event).payload


def alerts(stack) -> list[dict[str, Any]]:
    return drain_alerts(stack["aws"].client("sqs"), stack["queue"])


def ledger_items(stack, prefix: str) -> list[dict[str, Any]]:
    ddb = stack["aws"].client("dynamodb")
    items = ddb.scan(TableName=TABLE)["Items"]
    return [{k: list(v.values())[0] for k, v in item.items()} for item in items if item["sk"]["S"].startswith(prefix)]


def sagemaker_accepts_tag(key: str, value: str) -> bool:
    """Would SageMaker take this tag? Its API model's TagKey/TagValue patterns and lengths (moto checks
    neither: a tag value with a comma passes moto and fails AddTags on AWS)."""
    import botocore.session
    import regex  # the \p{L} classes of the model's patterns (installed with cfn-lint)

    model = botocore.session.get_session().get_service_model("sagemaker")
    for shape, text in (("TagKey", key), ("TagValue", value)):
        meta = model.shape_for(shape).metadata
        if not meta.get("min", 0) <= len(text) <= meta["max"] or not regex.fullmatch(meta["pattern"], text):
            return False
    return True


# ------------------------------------------------------------------- scan --format html, read back

class HtmlPage(HTMLParser):
    """What a browser would build: the tags, the summary tables (by id: rows of cells with their
    data-status), and the text of each violation section."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[list[tuple[str | None, str]]]] = {}
        self.sections: dict[str, str] = {}
        self._table: str | None = None
        self._cell: tuple[str | None, list[str]] | None = None
        self._section: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "table":
            self._table = attributes.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = (attributes.get("data-status"), [])
        elif tag == "section":
            self._section = attributes.get("id")
            self.sections[str(self._section)] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append((self._cell[0], "".join(self._cell[1]).strip()))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell[1].append(data)
        if self._section is not None:
            self.sections[self._section] += data

    def counts(self, table: str) -> dict[str, dict[str, int]]:
        """{first cell: {status: count}} of a summary table's body rows."""
        rows = self.tables[table][1:]
        return {row[0][1]: {status: int(text) for status, text in row if status and status != "total" and int(text)}
                for row in rows}


def parse_html(html: str) -> HtmlPage:
    page = HtmlPage()
    page.feed(html)
    page.close()
    return page
