"""Property-based fuzzing of every Lambda handler (issue 5, item 1).

Events are generated from the real shapes (tests/events/, netguard_testkit.events, the recheck and sweep
queue messages) and mutated around them with hypothesis: keys deleted at any depth, extra keys, values
of the wrong type, near-miss strings (a trailing newline, non-ASCII digits, another case), huge and
unicode strings, nested garbage, JSON-in-a-string that is not JSON or not an object, SQS batches mixing
good and bad records. Each one goes to the handler as Lambda calls it (`app.<handler>(event, context)`)
on one moto account holding a network and a few violating resources, so valid events do real work.

Each event (each SQS record) is classified with netguard's own parsers (triggers, configrule, recheck,
sweep.Task) and the configured accounts and regions, and the run checks that
- no handler raises, and no SQS record the parsers accept fails;
- what the parsers reject is answered as skipped (EventBridge, Config) with the event's id in the log,
  or reported as a batch item failure (SQS), and leads to no write call (ec2 and sagemaker calls other
  than Describe/List/Get, and config:PutEvaluations);
- every good record of a batch that mixes good and bad records is processed.

Every handler runs under two configurations: the packaged stack's (NETGUARD_HOME_ACCOUNT and
NETGUARD_REGIONS set) and `chalice deploy`'s (neither: every account and region is acted on).

    .venv/bin/python reliability/fuzz.py [--examples 10000] [--seed 0]

prints the figures per handler and exits 1 when one is wrong. tests/e2e/test_fuzz.py runs the same
properties on fewer events (NETGUARD_FUZZ_EXAMPLES, default 300).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
import os
import re
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HANDLERS = ("on_api_call", "on_state_change", "on_compliance_change", "config_rule", "sweep", "sweep_worker",
            "recheck")
EVENTBRIDGE = ("on_api_call", "on_state_change", "on_compliance_change")
SQS = ("sweep_worker", "recheck")
PROFILES = ("stack", "chalice")  # the packaged stack's configuration; `chalice deploy`'s
REGION = "us-east-1"
TABLE = "netguard-ledger-fuzz"
READ_PREFIXES = ("Describe", "List", "Get")
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)  # the script does not shrink: it counts
MARK = "#record"
SQS_KEEP = frozenset({(), ("messageId",)})  # in the call log: an SQS record starts here

# moto ids are random: seed them so that a run is the same run again (moto's documented seeding API)
MOTO_SEED_URL = "http://motoapi.amazonaws.com/moto-api/seed?a={seed}"


# ------------------------------------------------------------------------------ mutation engine


@dataclass
class Encoded:
    """A JSON document sent as a string (Config's invokingEvent, an SQS body): mutated as a tree,
    sent as text."""

    value: Any


ENC = object()  # the path step into an Encoded document


def finalize(node: Any) -> Any:
    if isinstance(node, Encoded):
        return json.dumps(finalize(node.value))
    if isinstance(node, dict):
        return {k: finalize(v) for k, v in node.items()}
    if isinstance(node, list):
        return [finalize(v) for v in node]
    return node


def lambda_shaped(node: Any) -> Any:
    """What Lambda would hand the function: the event through JSON (tuples become lists, and so on)."""
    return json.loads(json.dumps(finalize(node)))


MAX_PATHS, MAX_WIDTH, MAX_DEPTH = 600, 25, 12


def walk(tree: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every node, breadth first (the envelope before the depths), bounded."""
    out: list[tuple[tuple[Any, ...], Any]] = []
    queue: deque[tuple[tuple[Any, ...], Any]] = deque([((), tree)])
    while queue and len(out) < MAX_PATHS:
        path, value = queue.popleft()
        out.append((path, value))
        if len(path) >= MAX_DEPTH:
            continue
        if isinstance(value, Encoded):
            queue.append((path + (ENC,), value.value))
        elif isinstance(value, dict):
            queue.extend((path + (k,), v) for k, v in list(value.items())[:MAX_WIDTH])
        elif isinstance(value, list):
            queue.extend((path + (i,), v) for i, v in enumerate(value[:MAX_WIDTH]))
    return out


def _parent(tree: Any, path: tuple[Any, ...]) -> Any:
    node = tree
    for step in path:
        node = node.value if step is ENC else node[step]
    return node


def set_at(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    """The tree with `value` at `path` (in place; the root is replaced by returning it)."""
    if not path:
        return value
    parent, step = _parent(tree, path[:-1]), path[-1]
    if step is ENC:
        parent.value = value
    else:
        parent[step] = value
    return tree


def delete_at(tree: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return {}
    parent, step = _parent(tree, path[:-1]), path[-1]
    if step is ENC:
        parent.value = None
    else:
        del parent[step]
    return tree


def describe(path: tuple[Any, ...]) -> str:
    return "/".join("<json>" if step is ENC else str(step)[:24] for step in path) or "<root>"


# The fields the parsers read: half of the mutations aim at one of them.
HOT_KEYS = frozenset({
    "id", "source", "detail-type", "account", "region", "detail", "time", "eventName", "eventSource", "errorCode",
    "requestParameters", "responseElements", "groupId", "GroupId", "securityGroupRuleSet", "items",
    "ModifySecurityGroupRulesRequest", "notebookInstanceName", "trainingJobName", "endpointName", "domainId",
    "domainArn", "vpcId", "subnetId", "resourceArn", "userIdentity", "arn", "eventTime", "NotebookInstanceName",
    "NotebookInstanceStatus", "TrainingJobName", "TrainingJobStatus", "EndpointName", "EndpointStatus",
    "configRuleName", "resultToken", "invokingEvent", "messageType", "configurationItem", "configurationItemSummary",
    "resourceType", "resourceId", "resourceName", "awsAccountId", "awsRegion", "configurationItemStatus", "ARN",
    "eventLeftScope", "notificationCreationTime", "configRuleArn", "accountId", "newEvaluationResult",
    "complianceType", "schema", "refs", "type", "attempt", "origin", "reason", "sweep_id", "offset", "part",
    "Records", "body", "messageId", "attributes", "ApproximateReceiveCount",
})

NASTY = ("", " ", "\n", "\x00", "\ud800", "\udfff", "\u202e", "\u200b", "\ufeff", "null", "true", "0", "-1", "{}", "[]",
         "NaN", "１２３４５６７８９０１２", "١٢٣٤٥٦٧٨٩٠١٢", "us-east-１", "us-east-1\n", "123456789012\n",
         "sg-0123456789abcdef0\n", "ＳＧ-0123", "aws.ec2\n", "aws.sagemaker ", "AWS.SAGEMAKER", "𝔫𝔟-𝔬𝔭𝔢𝔫",
         "nb\u0301", "../../etc/passwd", "%s%s%n", "' OR '1'='1", "${jndi:ldap://x}", "\\u0000", "\"", "\\",
         "arn:aws:sagemaker:us-east-1:123456789012:notebook-instance/", "arn:aws", "arn:aws:::::",
         "2026-13-45T99:99:99Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
         "9" * 40, "0" * 12, "-" * 63, "a" * 64, "d-", "sg-", "vpc-00000000")
UNICODE_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789abcdefghijklmnopqrstuvwxyz-",
                          "０１２３４５６７８９ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ－")
TWEAKS: tuple[Callable[[str], str], ...] = (
    lambda s: s + "\n", lambda s: " " + s, lambda s: s + " ", lambda s: s.upper(), lambda s: s.lower(),
    lambda s: s[:-1], lambda s: s[1:], lambda s: s + s, lambda s: s.translate(UNICODE_DIGITS),
    lambda s: s.translate(FULLWIDTH), lambda s: s + "\x00", lambda s: "\u200b" + s, lambda s: s + "\ud800",
    lambda s: s[: len(s) // 2], lambda s: s.replace("-", "_"), lambda s: s.replace("-", "\u2010"),
    lambda s: s + "/../x", lambda s: s * 300, lambda s: s.swapcase(), lambda s: s + "é",
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40), st.sampled_from(NASTY),
)
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8) | st.sampled_from(sorted(HOT_KEYS)), inner, max_size=4), max_leaves=24)
huge_strings = st.tuples(st.sampled_from(("a", "é", "𝔘", "\x00", "sg-0", "0", "\u202e", "🙂", "ab\n", "\\\"")),
                         st.integers(1_000, 100_000)).map(lambda t: (t[0] * t[1])[: t[1]])


def deep(depth: int, kind: int) -> Any:
    """{"a": {"a": ...}} or [[...]] `depth` levels deep."""
    node: Any = "x"
    for _ in range(depth):
        node = {"a": node} if kind else [node]
    return node


def retyped(value: Any, choice: int) -> Any:
    value = finalize(value)
    options: list[Any] = [None, True, False, 0, -1, 1.5, 2**63, "", [], {}, [value], {"value": value},
                          json.dumps(value), str(value)[:200]]
    if isinstance(value, str):
        options += [value.encode("utf-8", "surrogatepass").hex(),
                    int(value) if value.isdecimal() and len(value) < 100 else len(value)]
    if isinstance(value, dict):
        options += [list(value.values()), list(value.keys())]
    if isinstance(value, list):
        options += [dict(enumerate(map(str, value))), value[:1] * 60, value * 3]
    return options[choice % len(options)]


def corrupt_text(text: str, choice: int, cut: int) -> str:
    """A JSON document's text, broken: cut short, not JSON, JSON of another type, too deep for json."""
    options = [text[: cut % max(len(text), 1)], text + "}", "{" + text, text.replace('"', "'"), "not json",
               "", "null", "[]", "42", json.dumps(text), "[" * 100_000 + "]" * 100_000,
               '{"a":' * 5_000 + "1" + "}" * 5_000, text.replace(":", ":NaN,") if cut % 2 else "NaN",
               text.encode("utf-8").hex()]
    return options[choice % len(options)]


OPS = ("replace", "delete", "retype", "tweak", "extra", "huge", "nested", "deep", "corrupt", "grow")


@st.composite
def mutated(draw: Any, base: Any, min_count: int = 0, max_count: int = 4, under: tuple[Any, ...] = (),
            keep: frozenset[tuple[Any, ...]] = frozenset()) -> tuple[Any, list[str]]:
    """`base` (a tree, copied) with up to `max_count` mutations, and what they were. `under`: only
    paths below it (a record's body); `keep`: paths left as they are (an SQS record's messageId)."""
    tree = copy.deepcopy(base)
    done: list[str] = []
    for _ in range(draw(st.integers(min_count, max_count))):
        nodes = [(p, v) for p, v in walk(tree) if p[: len(under)] == under and p not in keep]
        if not nodes:
            break
        op = draw(st.sampled_from(OPS))
        hot = [(p, v) for p, v in nodes if p and not isinstance(p[-1], int) and p[-1] in HOT_KEYS]
        pool = hot if hot and draw(st.booleans()) else nodes
        if op == "corrupt":
            pool = [(p, v) for p, v in nodes if isinstance(v, Encoded)] or pool
        path, value = pool[draw(st.integers(0, len(pool) - 1))]
        if op == "delete" and len(path) > len(under):
            tree = delete_at(tree, path)
        elif op == "retype":
            tree = set_at(tree, path, retyped(value, draw(st.integers(0, 40))))
        elif op == "tweak":
            text = value if isinstance(value, str) else json.dumps(finalize(value))
            tree = set_at(tree, path, TWEAKS[draw(st.integers(0, len(TWEAKS) - 1))](text))
        elif op == "extra":
            target = value if isinstance(value, dict) else _parent(tree, path[:-1]) if path else tree
            if isinstance(target, Encoded):
                target = target.value
            if isinstance(target, dict):
                for _ in range(draw(st.integers(1, 3))):
                    key = draw(st.text(max_size=12) | st.sampled_from(sorted(HOT_KEYS)))
                    if key not in target:  # extra keys: changing the ones there is `replace`'s work
                        target[key] = draw(nested)
            else:
                tree = set_at(tree, path, draw(nested))
        elif op == "huge":
            tree = set_at(tree, path, draw(huge_strings))
        elif op == "nested":
            tree = set_at(tree, path, draw(nested))
        elif op == "deep":
            tree = set_at(tree, path, deep(draw(st.integers(20, 400)), draw(st.integers(0, 1))))
        elif op == "corrupt" and isinstance(value, Encoded):
            text = json.dumps(finalize(value.value))
            tree = set_at(tree, path, corrupt_text(text, draw(st.integers(0, 40)), draw(st.integers(0, 10**6))))
        elif op == "grow" and isinstance(value, list) and value:
            tree = set_at(tree, path, value * draw(st.integers(2, 120)))
        else:
            op = "replace"
            tree = set_at(tree, path, draw(nested))
        done.append(f"{op} {describe(path)}")
    return tree, done


# ------------------------------------------------------------------------------------ the world


@dataclass
class CallLog:
    """Every AWS operation netguard's clients make, in order, with a mark where each SQS record starts."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, model: Any = None, **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name))

    def mark(self) -> None:
        self.calls.append((MARK, ""))

    @staticmethod
    def writes(calls: list[tuple[str, str]]) -> list[str]:
        return [f"{svc}:{op}" for svc, op in calls
                if (svc in ("ec2", "sagemaker") and not op.startswith(READ_PREFIXES))
                or (svc, op) == ("config", "PutEvaluations")]


class FakeContext:
    """The LambdaContext attributes netguard and Powertools read."""

    function_name = "netguard-fuzz"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:netguard-fuzz"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/netguard-fuzz"
    log_stream_name = "fuzz"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


@dataclass
class World:
    account: str
    region: str
    net: Any
    sweep_id: str
    route_table: str
    flow_log: str
    ssh_rule: dict[str, Any]
    setup: Any  # a boto3 session for the harness's own calls (not logged)


NB_OPEN, NB_PRIVATE, NB_PENDING, NB_SSH, TRAIN = (
    "fuzz-nb-open", "fuzz-nb-private", "fuzz-nb-pending", "fuzz-nb-ssh", "fuzz-train-open")


def _build_resources(session: Any, account: str, region: str) -> World:
    """The demo network and violators: a notebook with internet access in the public subnet (InService),
    one Pending, a compliant one, an open-SSH group on a notebook's interface, a training job without
    network isolation (InProgress)."""
    from netguard_testkit.moto_fidelity import attach_notebook_eni, set_status
    from netguard_testkit.moto_sagemaker import set_job_status
    from netguard_testkit.world import TAGS, build_network, create_notebook, ingress_rule_ids, remove_default_vpc

    ec2, sagemaker = session.client("ec2"), session.client("sagemaker")
    remove_default_vpc(ec2)
    net = build_network(ec2, account, region)
    create_notebook(sagemaker, account, NB_OPEN, net.public_subnet, [net.sg_notebook_ok])
    create_notebook(sagemaker, account, NB_PRIVATE, net.private_subnets[0], [net.sg_notebook_ok],
                    direct_internet="Disabled")
    create_notebook(sagemaker, account, NB_PENDING, net.public_subnet, [net.sg_notebook_ok])
    set_status(account, region, NB_OPEN, "InService")
    set_status(account, region, NB_PRIVATE, "InService")
    attach_notebook_eni(ec2, net.private_subnets[0], [net.sg_ssh_open], NB_SSH)
    sagemaker.create_training_job(
        TrainingJobName=TRAIN, RoleArn=f"arn:aws:iam::{account}:role/sagemaker",
        AlgorithmSpecification={"TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://b/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        VpcConfig={"SecurityGroupIds": [net.sg_notebook_ok], "Subnets": list(net.private_subnets)},
        EnableNetworkIsolation=False, Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()])
    set_job_status(account, region, "training", TRAIN, "InProgress")
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [net.public_subnet]}])
    flow_logs = ec2.describe_flow_logs()["FlowLogs"]
    [ssh_rule] = [r for r in ingress_rule_ids(ec2, net.sg_ssh_open).values() if r["FromPort"] == 22]
    return World(account, region, net, "", tables["RouteTables"][0]["RouteTableId"],
                 flow_logs[0]["FlowLogId"] if flow_logs else "fl-0123456789abcdef0", ssh_rule, session)


def refresh(world: World) -> None:
    """Put the violations back (valid events fix them), so that a write where none is due shows."""
    from botocore.exceptions import ClientError

    from netguard_testkit.moto_fidelity import notebook_status, set_status
    from netguard_testkit.moto_sagemaker import set_job_status
    from netguard_testkit.world import tcp

    with contextlib.suppress(ClientError):
        world.setup.client("ec2").authorize_security_group_ingress(GroupId=world.net.sg_ssh_open,
                                                                   IpPermissions=[tcp(22, "0.0.0.0/0")])
    if notebook_status(world.account, world.region, NB_OPEN) != "InService":
        set_status(world.account, world.region, NB_OPEN, "InService")
    set_job_status(world.account, world.region, "training", TRAIN, "InProgress")


def _outside_env() -> dict[str, str | None]:
    """No endpoint, profile or netguard setting from outside; fake credentials, the test region."""
    env: dict[str, str | None] = {name: None for name in os.environ
                                  if name.startswith(("AWS_ENDPOINT_URL", "NETGUARD_", "POWERTOOLS_"))
                                  or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION, "AWS_LAMBDA_FUNCTION_NAME": "netguard-fuzz"})
    return env


def _put_evaluations_answer(**_: Any) -> Any:
    """AWS Config's answer to PutEvaluations (moto's takes only test tokens): accepted."""
    from botocore.awsrequest import AWSResponse

    return AWSResponse("https://config.amazonaws.com/", 200, {}, None), {"FailedEvaluations": []}


# ------------------------------------------------------------------------------------ the harness


@dataclass
class Figures:
    handler: str
    events: int = 0  # invocations
    records: int = 0  # SQS records
    valid: int = 0  # events (SQS: records) the parsers accept
    invalid: int = 0  # ... reject as malformed
    ignored: int = 0  # ... accept as well-formed but not netguard's (another account, a failed call...)
    exceptions: int = 0  # raised by the handler, or by an SQS record the parsers accept
    writes_invalid: int = 0  # write calls made for invalid or ignored events / records
    writes_valid: int = 0  # write calls made for valid ones (they may act)
    mismatches: int = 0  # the handler did not answer what the parsers say (skipped, failed, processed)
    accepted_malformed: int = 0  # the parsers accepted ids, accounts or regions AWS does not have
    unlogged: int = 0  # skipped without a log line naming the event
    mixed_batches: int = 0  # batches with good (unmutated) and invalid or ignored records
    good_in_mixed: int = 0
    good_in_mixed_processed: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)  # valid for the handler, outside the configuration

    @property
    def ok(self) -> bool:
        return not (self.exceptions or self.writes_invalid or self.mismatches or self.unlogged
                    or self.accepted_malformed
                    or self.good_in_mixed_processed != self.good_in_mixed)

    def add(self, other: Figures) -> None:
        for name in ("events", "records", "valid", "invalid", "ignored", "exceptions", "writes_invalid",
                     "writes_valid", "mismatches", "accepted_malformed", "unlogged", "mixed_batches", "good_in_mixed",
                     "good_in_mixed_processed", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems += other.problems
        self.notes.update(other.notes)


class Problem(AssertionError):
    """A property does not hold for one generated event."""


class _Utf8Log(io.TextIOWrapper):
    """Where the handlers' log lines go: UTF-8, strict, like Lambda's stdout (a line UTF-8 cannot carry
    is lost there, and so here: it shows as 'unlogged')."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)

    def getvalue(self) -> str:
        return self.buffer.getvalue().decode("utf-8")

    def clear(self) -> None:
        self.buffer.seek(0)
        self.buffer.truncate()


class Case:
    """One generated invocation: the event tree, what was mutated, and for SQS which records are good
    (not a dataclass: hypothesis would print every field of a failing case in full)."""

    def __init__(self, handler: str, tree: Any, mutations: list[str], good: list[bool] | None = None) -> None:
        self.handler, self.tree, self.mutations = handler, tree, mutations
        self.good = good or []  # SQS: record i is unmutated

    def __repr__(self) -> str:
        text = json.dumps(finalize(self.tree), default=str)
        shown = text if len(text) <= 2_000 else text[:2_000] + f"... ({len(text)} characters)"
        return f"Case({self.handler}, mutations={self.mutations}, good={self.good}, event={shown})"


class Harness:
    """The handlers of app.py on one moto account, with the properties checked for each event."""

    def __init__(self, mp: Any, strict: bool = True, refresh_every: int = 25, ledger_every: int = 200) -> None:
        self.mp, self.strict, self.refresh_every, self.ledger_every = mp, strict, refresh_every, ledger_every
        self.figures = {h: Figures(h) for h in HANDLERS}
        self.log = _Utf8Log()
        self.failed_records: list[tuple[int, BaseException]] = []  # (index in the batch, error)
        self.record_index = -1
        self.profile = ""
        self.env: dict[str, str | None] = {}
        self._count = self._tables = 0

    # ---------------------------------------------------------------------------------- set-up

    @contextlib.contextmanager
    def running(self) -> Iterator[Harness]:
        """The moto account, the world, the deployed pieces and the environment; all undone after."""
        import boto3
        import requests
        from aws_lambda_powertools.utilities.batch import BatchProcessor
        from moto import mock_aws

        from chalicelib import handlers, notify
        from chalicelib.aws import Clients
        from netguard_testkit.moto_fidelity import aws_like_notebooks
        from netguard_testkit.moto_sagemaker import aws_like_sagemaker
        from netguard_testkit.receiver import WebhookReceiver
        from netguard_testkit.world import create_alert_channels

        mp = self.mp
        self.set_env(_outside_env())
        with mock_aws(), aws_like_notebooks(), aws_like_sagemaker(), WebhookReceiver() as slack:
            requests.post(MOTO_SEED_URL.format(seed=20261127), timeout=5)
            setup = boto3.session.Session(region_name=REGION)
            account = setup.client("sts").get_caller_identity()["Account"]
            self.world = _build_resources(setup, account, REGION)
            topic, _, param = create_alert_channels(setup.client("sns"), setup.client("sqs"), setup.client("ssm"),
                                                    slack.url)
            sqs = setup.client("sqs")
            recheck_url = sqs.create_queue(QueueName="netguard-recheck-fuzz")["QueueUrl"]
            sweep_url = sqs.create_queue(QueueName="netguard-sweep-fuzz")["QueueUrl"]
            setup.client("s3").create_bucket(Bucket="netguard-reports-fuzz")

            session = boto3.session.Session(region_name=REGION)
            self.calls = CallLog()
            session.events.register("before-call.*.*", self.calls)
            session.events.register("before-call.config-service.PutEvaluations", _put_evaluations_answer)
            clients = Clients(session)
            mp.setattr(handlers, "make_clients", lambda _settings: clients)
            # the packaged stack's settings (deploy/netguard-stack.yaml); no blast-radius limit in a long run
            self.set_env({"NETGUARD_ALERT_TOPIC_ARN": topic,
                          "NETGUARD_SLACK_WEBHOOK_PARAM": param, "NETGUARD_SLACK_ALLOWED_URLS": slack.url,
                          "NETGUARD_MODE": "enforce",
                          "NETGUARD_RECHECK_QUEUE_URL": recheck_url, "NETGUARD_RECHECK_DELAY_SECONDS": "1",
                          "NETGUARD_SWEEP_QUEUE_URL": sweep_url, "NETGUARD_REPORT_BUCKET": "netguard-reports-fuzz",
                          "NETGUARD_MAX_ACTIONS": "1000000", "NETGUARD_STAGE": "fuzz"})

            # per record of an SQS batch: where it starts in the call log, and whether it failed
            process_record, failure_handler = BatchProcessor._process_record, BatchProcessor.failure_handler
            harness = self

            def marked(processor: Any, record: dict) -> Any:
                harness.record_index += 1
                harness.calls.mark()
                return process_record(processor, record)

            def noted(processor: Any, record: Any, exception: Any) -> Any:
                harness.failed_records.append((harness.record_index, exception[1]))
                return failure_handler(processor, record, exception)

            mp.setattr(BatchProcessor, "_process_record", marked)
            mp.setattr(BatchProcessor, "failure_handler", noted)
            mp.setattr(logging, "raiseExceptions", False)  # a lost log line is counted, not printed
            previous_stream = handlers.logger.registered_handler.setStream(self.log)
            notify.clear_cache()
            try:
                import app as netguard_app

                self.app = netguard_app
                self.use_profile(PROFILES[0])
                self.new_ledger()
                self.calls.calls.clear()
                yield self
            finally:
                handlers.logger.registered_handler.setStream(previous_stream)
                handlers.runtime.cache_clear()
                notify.clear_cache()

    def set_env(self, values: Mapping[str, str | None]) -> None:
        """Set (None: remove) environment variables, remembered for `reapply`."""
        self.env.update(values)
        for name, value in values.items():
            if value is None:
                self.mp.delenv(name, raising=False)
            else:
                self.mp.setenv(name, value)

    def reapply(self, mp: Any) -> None:
        """The harness's environment again, through `mp` (a test's monkeypatch: conftest clears
        NETGUARD_* before every test)."""
        from chalicelib import handlers

        self.mp = mp
        self.set_env(dict(self.env))
        handlers.runtime.cache_clear()

    def use_profile(self, profile: str) -> None:
        """`stack`: the packaged stack's accounts and regions (its own); `chalice`: none configured."""
        from chalicelib import handlers

        own = profile == "stack"
        self.set_env({"NETGUARD_HOME_ACCOUNT": self.world.account if own else None,
                      "NETGUARD_REGIONS": self.world.region if own else None})
        handlers.runtime.cache_clear()
        self.profile = profile

    # ----------------------------------------------------------------------------- generation

    def strategy(self, handler: str) -> Any:
        bases = event_bases(self.world)[handler]
        if handler in SQS:
            return sqs_cases(handler, bases)
        return event_cases(handler, bases)

    def run(self, handler: str, examples: int, run_seed: int = 0) -> Figures:
        """`examples` generated events to `handler`, half under each profile."""
        for index, profile in enumerate(PROFILES):
            count = examples // len(PROFILES) + (1 if index < examples % len(PROFILES) else 0)
            if not count:
                continue
            self.use_profile(profile)

            @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                      print_blob=False, phases=PHASES if self.strict else PHASES[:-1])
            @seed(run_seed * 1000 + HANDLERS.index(handler) * 10 + index)
            @given(case=self.strategy(handler))
            def fuzz(case: Case) -> None:
                self.check(case)

            started = time.monotonic()
            try:
                fuzz()
            finally:
                self.figures[handler].seconds += time.monotonic() - started
        return self.figures[handler]

    def envelope_probe(self) -> dict[str, str]:
        """Batches with one good record and one record Lambda's SQS integration never delivers (only a
        direct invocation can): what each SQS handler does with each ('' = answered, else the error)."""
        out = {}
        bases = event_bases(self.world)
        for handler in SQS:
            for name, change in NON_SQS_RECORDS:
                good = lambda_shaped(sqs_record(str(uuid.uuid4()), bases[handler][0](), "probe"))
                bad: Any = lambda_shaped(sqs_record(str(uuid.uuid4()), bases[handler][0](), "probe"))
                if isinstance(change, str):
                    bad.pop(change)
                elif isinstance(change, dict):
                    bad.update(change)
                else:
                    bad = change
                response, error, _ = self._invoke(handler, {"Records": [good, bad]})
                answered = isinstance(response, Mapping) and good["messageId"] not in str(response)
                out[f"{handler}: {name}"] = (f"{type(error).__name__}: {str(error)[:80]}" if error is not None
                                             else "" if answered else f"answered {str(response)[:80]}")
        return out

    # ------------------------------------------------------------------------------- checking

    def problem(self, figures: Figures, message: str, case: Case) -> None:
        if len(figures.problems) < 5:
            figures.problems.append(f"[{self.profile}] {message}: {case!r}"[:3_000])
        if self.strict:
            raise Problem(f"[{self.profile}] {message}")

    def new_ledger(self) -> None:
        """A new, empty ledger table, and a sweep started in it for the sweep tasks to belong to. moto's
        DynamoDB reads slow down with the table's size: a long run changes tables every `ledger_every`
        events (a new deployment, as far as deduplication and idempotency go)."""
        from chalicelib import handlers
        from netguard_testkit.world import create_ledger_table

        self._tables += 1
        name = create_ledger_table(self.world.setup.client("dynamodb"), f"{TABLE}-{self._tables}")
        self.set_env({"NETGUARD_LEDGER_TABLE": name})
        handlers.runtime.cache_clear()
        with contextlib.redirect_stdout(io.StringIO()):
            self.world.sweep_id = self.app.sweep(_scheduled_event(self.world.account, REGION),
                                                 FakeContext())["sweep_id"]

    def check(self, case: Case) -> None:
        self._count += 1
        event = lambda_shaped(case.tree)
        if case.handler in SQS:
            self._check_batch(case, event)
        else:
            self._check_event(case, event)
        # After the case, not before: a case is drawn against the world and the sweep as they are (a sweep
        # task names the planned sweep's id), and must be checked against the same. Rotating the ledger
        # between its draw and its check made a good task of the old sweep count as "not processed".
        if self._count % self.refresh_every == 0:
            refresh(self.world)
        if self._count % self.ledger_every == 0:
            self.new_ledger()

    def _invoke(self, handler: str, event: Any) -> tuple[Any, BaseException | None, list[tuple[str, str]]]:
        self.log.clear()
        self.failed_records.clear()
        self.record_index = -1
        self.calls.calls.clear()
        response, error = None, None
        with contextlib.redirect_stdout(io.StringIO()):  # Powertools' EMF metric lines
            try:
                response = getattr(self.app, handler)(event, FakeContext())
            except Exception as exc:
                error = exc
        return response, error, list(self.calls.calls)

    def _check_event(self, case: Case, event: Any) -> None:
        figures = self.figures[case.handler]
        figures.events += 1
        expected, why = classify(case.handler, event)
        if expected == "malformed":  # the parser let it through: a problem, then checked as valid
            figures.accepted_malformed += 1
            self.problem(figures, f"a parser accepted a malformed event: {why}", case)
            expected = "valid"
        setattr(figures, expected, getattr(figures, expected) + 1)
        if why.startswith(NOTE):
            figures.notes[re.sub(r"'.*'", "...", why[len(NOTE):])] += 1
        response, error, calls = self._invoke(case.handler, event)
        writes = CallLog.writes(calls)
        if error is not None:
            figures.exceptions += 1
            self.problem(figures, f"{type(error).__name__}: {str(error)[:300]} (parsers: {expected}, {why})", case)
            return
        if expected == "valid":
            figures.writes_valid += len(writes)
            if case.handler == "sweep":
                if writes:  # the sweep only plans: the workers act
                    figures.writes_invalid += len(writes)
                    self.problem(figures, f"the sweep planner wrote {writes}", case)
                if not (isinstance(response, Mapping) and "sweep_id" in response):
                    figures.mismatches += 1
                    self.problem(figures, f"sweep answered {str(response)[:200]}", case)
            elif not isinstance(response, Mapping) or "skipped" in response:
                figures.mismatches += 1
                self.problem(figures, f"parsers accept it, handler answered {str(response)[:300]}", case)
            return
        if writes:
            figures.writes_invalid += len(writes)
            self.problem(figures, f"{expected} event ({why}) made write calls {writes}", case)
        if not isinstance(response, Mapping) or response.get("skipped") != expected:
            figures.mismatches += 1
            self.problem(figures, f"parsers say {expected} ({why}), handler answered {str(response)[:300]}", case)
        logged = self.log.getvalue()
        event_id = event.get("id") if isinstance(event, Mapping) else None
        # as the handlers log it: what UTF-8 cannot carry (a lone surrogate) escaped, so the line is written
        from chalicelib.handlers import _loggable

        loggable = _loggable(event_id) if isinstance(event_id, str) and event_id else None
        named = json.dumps(loggable, ensure_ascii=False)[1:-1] if loggable else ""
        if ("skipped" not in logged and "ignored" not in logged) or (named and named[:200] not in logged):
            figures.unlogged += 1
            self.problem(figures, "skipped without a log line naming the event", case)

    def _check_batch(self, case: Case, event: Any) -> None:
        figures = self.figures[case.handler]
        figures.events += 1
        raw_records = event.get("Records") if isinstance(event, Mapping) else None
        records = raw_records if isinstance(raw_records, list) else []
        sweep = (self.world.sweep_id, f"{self.world.account}/{REGION}")  # the harness's one planned sweep
        verdicts = [classify_record(case.handler, r, sweep) for r in records]
        for index, (expected, why) in enumerate(verdicts):
            if expected == "malformed":
                figures.accepted_malformed += 1
                self.problem(figures, f"a parser accepted malformed record {index}: {why}", case)
                verdicts[index] = ("valid", why)
        figures.records += len(records)
        for expected, why in verdicts:
            setattr(figures, expected, getattr(figures, expected) + 1)
            if why.startswith(NOTE):
                figures.notes[re.sub(r"'.*'", "...", why[len(NOTE):])] += 1
        good = [g and i < len(records) for i, g in enumerate(case.good)] if raw_records is records else []
        response, error, calls = self._invoke(case.handler, event)
        if error is not None:
            figures.exceptions += 1
            self.problem(figures, f"{type(error).__name__}: {str(error)[:300]}", case)
            return
        # the calls of record i are those after its mark; records without a message id are not
        # processed at all (handlers._batch: SQS never sends one, and it could not be reported)
        delivered = [i for i, r in enumerate(records) if isinstance(r, Mapping) and r.get("messageId")
                     and isinstance(r.get("messageId"), str)]
        per_record: list[list[tuple[str, str]]] = [[] for _ in records]
        current = -1
        for call in calls:
            if call[0] == MARK:
                current += 1
            elif 0 <= current < len(delivered):
                per_record[delivered[current]].append(call)
            else:
                figures.writes_invalid += len(CallLog.writes([call]))
        failed = {delivered[i]: exc for i, exc in self.failed_records if i < len(delivered)}
        answered = [f.get("itemIdentifier") for f in response.get("batchItemFailures", [])
                    if isinstance(f, Mapping)] if isinstance(response, Mapping) else []
        if not isinstance(response, Mapping) or not isinstance(response.get("batchItemFailures"), list):
            figures.mismatches += 1
            self.problem(figures, f"not a partial batch response: {str(response)[:200]}", case)
        for index, (record, (expected, why)) in enumerate(zip(records, verdicts, strict=True)):
            writes = CallLog.writes(per_record[index])
            message_id = record.get("messageId") if isinstance(record, Mapping) else None
            if expected == "valid":
                figures.writes_valid += len(writes)
                if index in failed:
                    figures.exceptions += 1
                    exc = failed[index]
                    self.problem(figures, f"record {index} ({why}) failed: {type(exc).__name__}: {str(exc)[:300]}",
                                 case)
                continue
            if writes:
                figures.writes_invalid += len(writes)
                self.problem(figures, f"{expected} record {index} ({why}) made write calls {writes}", case)
            if index in delivered and (index not in failed or message_id not in answered):
                figures.mismatches += 1
                self.problem(figures, f"{expected} record {index} ({why}) not reported as a batch item failure",
                             case)
        if any(good) and any(v != "valid" for v, _ in verdicts):
            figures.mixed_batches += 1
            for index, is_good in enumerate(good):
                if is_good:
                    figures.good_in_mixed += 1
                    if index not in failed and records[index].get("messageId") not in answered:
                        figures.good_in_mixed_processed += 1
                    else:
                        self.problem(figures, f"good record {index} of a mixed batch not processed", case)


# --------------------------------------------------------------------------------- classifying


def malformed(refs: Any, config: bool = False) -> list[str]:
    """What is wrong with refs a parser accepted, by AWS's formats written out again here (not the
    parsers' own patterns, so that a pattern too loose there shows): ASCII, the whole string.
    `config`: an EC2 id from a Config item need only be printable (the custom rule answers for any id
    Config names; EC2 calls an id it cannot have malformed, which netguard reads as "not found")."""
    from chalicelib.model import DOMAIN, SAGEMAKER_TYPES

    wrong = []
    for ref in refs:
        rtype, rid = ref.resource_type, ref.resource_id
        prefix = EC2_PREFIXES.get(rtype)
        if prefix and config:
            pattern = r"[ -~]{1,768}"
        elif prefix:
            pattern = prefix + r"-[0-9a-f]{8,17}"
        elif rtype == DOMAIN:
            pattern = r"d-[a-z0-9][a-z0-9-]{0,61}"
        elif rtype in SAGEMAKER_TYPES:
            pattern = r"[A-Za-z0-9][A-Za-z0-9-]{0,62}"
        else:
            pattern = r"[ -~]{1,256}"
        if not isinstance(rid, str) or not re.fullmatch(pattern, rid, re.ASCII):
            wrong.append(f"{rtype.rsplit('::', 1)[-1]} id {str(rid)[:40]!r}")
        if not isinstance(ref.account, str) or not re.fullmatch(r"[0-9]{12}", ref.account, re.ASCII):
            wrong.append(f"account {str(ref.account)[:40]!r}")
        if not isinstance(ref.region, str) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", ref.region, re.ASCII):
            wrong.append(f"region {str(ref.region)[:40]!r}")
    return wrong


EC2_PREFIXES = {"AWS::EC2::SecurityGroup": "sg", "AWS::EC2::VPC": "vpc", "AWS::EC2::Subnet": "subnet",
                "AWS::EC2::VPCEndpoint": "vpce", "AWS::EC2::RouteTable": "rtb", "AWS::EC2::FlowLog": "fl"}


def _allowed(refs: Any, principal: str | None = None, checks: str = "accounts,regions") -> tuple[str, str]:
    """('ignored', why) when a ref is outside the configured accounts and regions, or the change is
    netguard's own; else ('valid', ''). What the handler does not check (`checks`) is only noted:
    ('valid', 'NOTE: ...'), counted apart."""
    from chalicelib.settings import Settings

    current = Settings.from_env()
    for ref in refs:
        if not current.account_allowed(ref.account):
            why = f"account {ref.account!r} not configured"
            return ("ignored", why) if "accounts" in checks else ("valid", f"{NOTE}{why}")
        if not current.region_allowed(ref.region):
            why = f"region {ref.region!r} not configured"
            return ("ignored", why) if "regions" in checks else ("valid", f"{NOTE}{why}")
    refs = list(refs)
    # the home account: configured (stack profile) or, as netguard asks STS, the moto account
    home = current.home_account or _harness_account()
    if refs and current.own_principal(principal, refs[0].account, home):
        return "ignored", "netguard's own change"
    return "valid", ""


NOTE = "NOTE: acted on though "


def _harness_account() -> str:
    import boto3

    return boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]


def classify(handler: str, event: Any) -> tuple[str, str]:
    """What netguard's parsers make of an event: ('valid' | 'invalid' | 'ignored', why)."""
    from chalicelib.configrule import parse_invocation, refs_from_compliance_change
    from chalicelib.errors import IgnoredEvent, InvalidEvent
    from chalicelib.handlers import covered_types
    from chalicelib.policy import load_policy
    from chalicelib.settings import Settings
    from chalicelib.triggers import from_api_call, from_state_change

    if handler == "sweep":
        return "valid", "the schedule's payload is not read"
    policy = _policy(load_policy)
    try:
        if handler == "on_api_call":
            trigger = from_api_call(event, covered_types(policy))
            return _checked(trigger.refs, trigger.context.principal)
        if handler == "on_state_change":
            return _checked(from_state_change(event).refs)
        if handler == "on_compliance_change":
            return _checked([refs_from_compliance_change(event, policy)[2]])
        inv = parse_invocation(event, os.environ.get("AWS_REGION"))
        if not Settings.from_env().account_allowed(inv.account):
            return "ignored", f"account {inv.account!r} not configured"
        return _checked(config_refs(inv), config=True)
    except InvalidEvent as exc:
        return "invalid", exc.reason[:200]
    except IgnoredEvent as exc:
        return "ignored", exc.reason[:200]
    except Exception as exc:
        return "invalid", f"the parser raised {type(exc).__name__}: {str(exc)[:150]}"


def classify_record(handler: str, record: Any, sweep: tuple[str, str] | None = None) -> tuple[str, str]:
    """What the SQS handlers make of one record; `sweep`: (id, the one account/region target) of the
    sweep netguard planned, the only one whose tasks it runs."""
    from chalicelib.errors import IgnoredEvent, InvalidEvent
    from chalicelib.model import ResourceRef
    from chalicelib.recheck import decode
    from chalicelib.sweep import Task

    if not isinstance(record, Mapping) or "body" not in record or not isinstance(record.get("messageId"), str):
        return "invalid", "not an SQS record (body, messageId)"
    try:
        if handler == "sweep_worker":
            task = Task.decode(record["body"])
            verdict = _checked([ResourceRef("AWS::EC2::VPC", "vpc-00000000", task.account, task.region)])
            if verdict[0] == "valid" and (task.sweep_id, f"{task.account}/{task.region}") != sweep:
                return "ignored", "not a target of a sweep netguard started"
            return verdict
        return _checked(decode(record["body"]).refs)
    except InvalidEvent as exc:
        return "invalid", exc.reason[:200]
    except IgnoredEvent as exc:
        return "ignored", exc.reason[:200]
    except Exception as exc:
        return "invalid", f"the parser raised {type(exc).__name__}: {str(exc)[:150]}"


def _checked(refs: Any, principal: str | None = None, checks: str = "accounts,regions",
             config: bool = False) -> tuple[str, str]:
    """Accepted by the parser: 'malformed' when the refs are not what AWS names things by, else what
    the configured accounts and regions make of it."""
    wrong = malformed(refs, config)
    if wrong:
        return "malformed", "accepted " + ", ".join(wrong)
    return _allowed(refs, principal, checks)


def config_refs(inv: Any) -> list[Any]:
    """The resource the custom rule reads for an invocation (handlers.config_rule), if any."""
    from chalicelib.configrule import CONFIG_TYPES, DELETED_STATUSES, SCHEDULED, config_resource_name
    from chalicelib.model import ResourceRef

    if inv.message_type == SCHEDULED:
        return [ResourceRef("AWS::EC2::VPC", "vpc-00000000", inv.account, inv.region)]
    item = inv.item or {}
    rtype = str(item.get("resourceType"))
    if rtype not in CONFIG_TYPES or inv.event_left_scope or item.get("configurationItemStatus") in DELETED_STATUSES:
        return [ResourceRef("AWS::EC2::VPC", "vpc-00000000", inv.account, inv.region)]
    return [ResourceRef(rtype, config_resource_name(rtype, item), inv.account, inv.region)]


_POLICY: list[Any] = []


def _policy(load: Callable[[], Any]) -> Any:
    if not _POLICY:
        _POLICY.append(load())
    return _POLICY[0]


# ------------------------------------------------------------------------------- real shapes


def _scheduled_event(account: str, region: str) -> dict[str, Any]:
    """A scheduled EventBridge event, as the sweep's rule sends it."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": account, "time": "2026-11-27T06:00:00Z", "region": region,
            "resources": [f"arn:aws:events:{region}:{account}:rule/netguard-fuzz-sweep"], "detail": {}}


def _encoded_invocation(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "invokingEvent": Encoded(json.loads(event["invokingEvent"]))}


def event_bases(w: World) -> dict[str, list[Callable[[], Any]]]:
    """Builders of real-shaped, valid events of every handler against the world (each call a new event)."""
    from chalicelib.model import NOTEBOOK, SECURITY_GROUP, SUBNET, TRAINING_JOB, VPC, ResourceRef
    from chalicelib.recheck import Recheck, encode
    from chalicelib.sweep import Task
    from netguard_testkit import events
    from netguard_testkit.world import tcp

    a, r, net = w.account, w.region, w.net
    arn = f"arn:aws:sagemaker:{r}:{a}"

    def published(name: str, **changes: Any) -> dict[str, Any]:
        event = copy.deepcopy(events.sample(name))
        event.update(account=a, region=r, **changes)
        return event

    def sample_ingress() -> dict[str, Any]:
        event = published("eventbridge-cloudtrail-ec2-AuthorizeSecurityGroupIngress.json")
        event["detail"]["requestParameters"]["groupId"] = net.sg_ssh_open
        return event

    def training_state() -> dict[str, Any]:
        event = published("eventbridge-sagemaker-training-job-state-change.awsdocs.json")
        event["detail"].update(TrainingJobName=TRAIN, TrainingJobStatus="InProgress")
        return event

    def endpoint_state() -> dict[str, Any]:
        event = published("eventbridge-sagemaker-endpoint-state-change.awsdocs.json")
        event["detail"].update(EndpointName="fuzz-endpoint")
        return event

    def notebook_sample() -> dict[str, Any]:
        text = json.dumps(events.sample("eventbridge-sagemaker-notebook-instance-state-change.json"))
        event = json.loads(text.replace("<hostingAccountId>", a).replace("<mainAccountId>", a))
        event["detail"].update(NotebookInstanceName=NB_OPEN, NotebookInstanceStatus="InService")
        return event

    def failed_call() -> dict[str, Any]:
        event = events.create_notebook(NB_OPEN, a, r, net.public_subnet, [net.sg_notebook_ok])
        event["detail"].update(errorCode="AccessDenied", errorMessage="User is not authorized")
        return event

    def config_sample(name: str, **item: Any) -> dict[str, Any]:
        event = copy.deepcopy(events.sample(name))
        invoking = json.loads(event["invokingEvent"])
        if item:
            invoking["configurationItem"].update(item)
        else:
            invoking["awsAccountId"] = a
        return {**event, "invokingEvent": Encoded(invoking), "resultToken": "TESTMODE", "accountId": a}

    def recheck(*refs: tuple[str, str], attempt: int = 1) -> dict[str, Any]:
        body = encode(Recheck(tuple(ResourceRef(t, i, a, r) for t, i in refs), "Pending", attempt, "fuzz-origin"))
        return json.loads(body)

    ssh_rule = w.ssh_rule
    return {
        "on_api_call": [
            lambda: events.create_notebook(NB_OPEN, a, r, net.public_subnet, [net.sg_notebook_ok]),
            lambda: events.create_notebook(NB_PENDING, a, r, net.public_subnet, [net.sg_notebook_ok]),
            lambda: events.start_notebook(NB_PRIVATE, a, r),
            lambda: events.authorize_ingress(net.sg_ssh_open, [tcp(22, "0.0.0.0/0")], a, r, rule_set=[ssh_rule]),
            lambda: events.authorize_ingress(net.sg_ssh_open, [tcp(22, "0.0.0.0/0")], a, r),
            sample_ingress,
            lambda: events.modify_rules(net.sg_jupyter, "sgr-0123456789abcdef0", {"IpProtocol": "tcp"}, a, r),
            lambda: events.create_security_group(net.sg_jupyter, "notebook-jupyter", net.vpc_id, a, r),
            lambda: events.api_call("CreateTrainingJob", "aws.sagemaker", {"trainingJobName": TRAIN},
                                    {"trainingJobArn": f"{arn}:training-job/{TRAIN}"}, a, r),
            lambda: events.api_call("ModifyVpcAttribute", "aws.ec2", {"vpcId": net.vpc_id,
                                                                      "enableDnsSupport": {"value": False}},
                                    {"_return": True}, a, r),
            lambda: events.api_call("CreateSubnet", "aws.ec2", {"vpcId": net.vpc_id, "cidrBlock": "10.0.100.0/24"},
                                    {"subnet": {"subnetId": net.public_subnet, "vpcId": net.vpc_id}}, a, r),
            lambda: events.api_call("CreateTags", "aws.ec2", {"resourcesSet": {"items": [
                {"resourceId": net.sg_ssh_open}]}, "tagSet": {"items": [{"key": "Owner", "value": "x"}]}},
                {"_return": True}, a, r),
            lambda: events.api_call("AddTags", "aws.sagemaker", {"resourceArn": f"{arn}:notebook-instance/{NB_OPEN}",
                                                                 "tags": [{"key": "Owner", "value": "x"}]}, None, a, r),
            lambda: events.api_call("CreateRoute", "aws.ec2", {"routeTableId": w.route_table, "destinationCidrBlock":
                                                               "0.0.0.0/0", "gatewayId": net.igw_id},
                                    {"_return": True}, a, r),
            lambda: events.api_call("DeleteFlowLogs", "aws.ec2", {"DeleteFlowLogsRequest": {"FlowLogId": {
                "content": w.flow_log, "tag": 1}}}, {"DeleteFlowLogsResponse": {"unsuccessful": ""}}, a, r),
            lambda: events.api_call("CreateEndpoint", "aws.sagemaker", {"endpointName": "fuzz-endpoint",
                                                                        "endpointConfigName": "fuzz-config"},
                                    {"endpointArn": f"{arn}:endpoint/fuzz-endpoint"}, a, r),
            lambda: events.api_call("UpdateDomain", "aws.sagemaker", {"domainId": "d-abcdef123456"}, None, a, r),
            failed_call,
        ],
        "on_state_change": [
            lambda: events.notebook_state_change(NB_OPEN, "InService", a, r, net.public_subnet, [net.sg_notebook_ok]),
            lambda: events.notebook_state_change(NB_PENDING, "Pending", a, r, net.public_subnet, [net.sg_notebook_ok]),
            lambda: events.notebook_state_change(NB_PRIVATE, "Stopped", a, r),
            training_state, endpoint_state, notebook_sample,
        ],
        "on_compliance_change": [
            lambda: events.compliance_change("securityhub-restricted-ssh-a1b2c3", SECURITY_GROUP, net.sg_ssh_open,
                                             a, r),
            lambda: events.compliance_change("sagemaker-notebook-no-direct-internet-access", NOTEBOOK, NB_OPEN, a, r),
            lambda: events.compliance_change("restricted-ssh", SECURITY_GROUP, net.sg_notebook_ok, a, r, "COMPLIANT"),
            lambda: events.compliance_change("cloudtrail-enabled", SECURITY_GROUP, net.sg_ssh_open, a, r),
        ],
        "config_rule": [
            lambda: _encoded_invocation(events.config_rule_invocation(SECURITY_GROUP, net.sg_ssh_open, a, r)),
            lambda: _encoded_invocation(events.config_rule_invocation(NOTEBOOK, "fuzz-config-id", a, r, NB_OPEN)),
            lambda: _encoded_invocation(events.config_rule_invocation(VPC, net.vpc_id, a, r)),
            lambda: _encoded_invocation(events.config_rule_invocation(SUBNET, net.public_subnet, a, r)),
            lambda: _encoded_invocation(events.config_rule_invocation(SECURITY_GROUP, "sg-0123456789abcdef0", a, r,
                                                                      status="ResourceDeleted")),
            lambda: _encoded_invocation(events.config_rule_invocation(SECURITY_GROUP, net.sg_ssh_open, a, r,
                                                                      left_scope=True)),
            lambda: _encoded_invocation(events.config_rule_invocation("AWS::EC2::Instance", "i-0abc", a, r)),
            lambda: _encoded_invocation(events.config_oversized_invocation(SECURITY_GROUP, net.sg_notebook_ok, a, r)),
            lambda: _encoded_invocation(events.config_scheduled_invocation(a, r)),
            lambda: config_sample("config-custom-rule-invocation-securitygroup.json", resourceId=net.sg_ssh_open,
                                  awsAccountId=a, awsRegion=r),
            lambda: config_sample("config-custom-rule-invocation-change-triggered.awsdocs.json", awsAccountId=a),
            lambda: config_sample("config-custom-rule-invocation-periodic.awsdocs.json"),
        ],
        "sweep": [
            lambda: _scheduled_event(a, r),
            lambda: {**_scheduled_event(a, r), "resources": []},
        ],
        "sweep_worker": [
            lambda: json.loads(Task(w.sweep_id, a, r).encode()),
            lambda: json.loads(Task(w.sweep_id, a, r, offset=5, part=1).encode()),
        ],
        "recheck": [
            lambda: recheck((NOTEBOOK, NB_OPEN)),
            lambda: recheck((NOTEBOOK, NB_PENDING), attempt=3),
            lambda: recheck((SECURITY_GROUP, net.sg_ssh_open), (NOTEBOOK, NB_PRIVATE)),
            lambda: recheck((TRAINING_JOB, TRAIN)),
            lambda: recheck((VPC, net.vpc_id), (SUBNET, net.public_subnet)),
        ],
    }


# Records only a direct invocation can send (tests/e2e/test_fuzz.py, envelope_probe): (name, change)
NON_SQS_RECORDS: tuple[tuple[str, Any], ...] = (
    ("a null record", None), ("a list for a record", [" "]), ("no messageId", "messageId"),
    ("messageId a number", {"messageId": 7}), ("no body", "body"), ("body an object", {"body": {}}),
    ("attributes not an object", {"attributes": False}),
)


def sqs_record(message_id: str, body: Any, queue: str) -> dict[str, Any]:
    """One SQS record as Lambda delivers it (the shape of tests/moto/test_recheck.py's sqs_event)."""
    return {"messageId": message_id, "receiptHandle": f"rh-{message_id}", "body": Encoded(body), "attributes": {
        "ApproximateReceiveCount": "1", "SentTimestamp": "1795740000000", "SenderId": "AIDAEXAMPLE",
        "ApproximateFirstReceiveTimestamp": "1795740000001"}, "messageAttributes": {}, "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{queue}",
        "awsRegion": REGION}


def event_cases(handler: str, bases: list[Callable[[], Any]]) -> Any:
    @st.composite
    def cases(draw: Any) -> Case:
        base = draw(st.sampled_from(bases))()
        if isinstance(base, dict) and "id" in base:
            base["id"] = str(draw(st.uuids()))  # a new event: not the stored result of an earlier one
        tree, done = draw(mutated(base))
        return Case(handler, tree, done)

    return cases()


def sqs_cases(handler: str, bases: list[Callable[[], Any]]) -> Any:
    """Batches of 1 to 10 records (the sweep queue's mapping delivers 1, the recheck queue's 10), each
    good or mutated, sometimes the batch itself mutated."""
    queue = f"netguard-{'sweep' if handler == 'sweep_worker' else 'recheck'}-fuzz"
    # batch sizes: the sweep queue's mapping delivers 1 message, the recheck queue's up to 10 (a few
    # larger sweep batches still mix good and bad tasks); small ones more often, to keep the run short
    sizes = (1, 1, 2, 2, 3) if handler == "sweep_worker" else (1, 2, 2, 3, 3, 4, 5, 7, 10)

    @st.composite
    def cases(draw: Any) -> Case:
        count = draw(st.sampled_from(sizes))
        records, good, done = [], [], []
        for index in range(count):
            record = sqs_record(str(draw(st.uuids())), draw(st.sampled_from(bases))(), queue)
            if draw(st.booleans()):
                # mostly the body (what netguard parses), sometimes the record around it; a record
                # stays an object with its messageId, as SQS always delivers it (envelope_probe: the rest)
                under = ("body",) if draw(st.integers(0, 4)) else ()
                changed, what = draw(mutated(record, min_count=1, max_count=3, under=under, keep=SQS_KEEP))
                if lambda_shaped(changed) != lambda_shaped(record):
                    record = changed
                    done += [f"record {index}: {w}" for w in what]
            good.append(not any(d.startswith(f"record {index}:") for d in done))
            records.append(record)
        tree: dict[str, Any] = {"Records": records}
        change = draw(st.integers(0, 29))
        if change < 3:  # the batch itself: no Records, Records of another type, extra keys
            if change == 0:
                del tree["Records"]
            elif change == 1:
                tree["Records"] = draw(scalars | st.dictionaries(st.text(max_size=8), scalars, max_size=3))
            else:
                tree.update(draw(st.dictionaries(st.text(max_size=12), nested, min_size=1, max_size=3)))
            done.append(("delete Records", "retype Records", "extra keys")[change])
            good = good if change == 2 else [False] * len(good)
        return Case(handler, tree, done, good)

    return cases()


# ----------------------------------------------------------------------------------------- main


def examples_per_handler(total: int) -> dict[str, int]:
    share, extra = divmod(total, len(HANDLERS))
    return {h: share + (1 if i < extra else 0) for i, h in enumerate(HANDLERS)}


def table(figures: list[Figures]) -> str:
    columns = ("handler", "events", "records", "valid", "invalid", "ignored", "exceptions", "writes(invalid)",
               "writes(valid)", "mismatch", "malformed accepted", "unlogged", "mixed", "good processed", "s")
    rows = []
    total = Figures("total")
    for f in figures:
        total.add(f)
    for f in [*figures, total]:
        sqs = f.handler in SQS or f.handler == "total"
        rows.append((f.handler, f.events, f.records if sqs else "-", f.valid, f.invalid, f.ignored, f.exceptions,
                     f.writes_invalid, f.writes_valid, f.mismatches, f.accepted_malformed, f.unlogged,
                     f.mixed_batches if sqs else "-",
                     f"{f.good_in_mixed_processed}/{f.good_in_mixed}" if sqs else "-", f"{f.seconds:.0f}"))
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    line = "  ".join
    out = [line(str(c).rjust(w) if i else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(columns, widths, strict=True)))]
    for r in rows:
        out.append(line(str(v).rjust(w) if i else str(v).ljust(w)
                        for i, (v, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    import pytest

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="events in all (split over the handlers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--handlers", default=",".join(HANDLERS), help="comma-separated subset")
    args = parser.parse_args(argv)
    chosen = [h for h in HANDLERS if h in args.handlers.split(",")]
    counts = examples_per_handler(args.examples) if len(chosen) == len(HANDLERS) else {
        # a subset of the handlers: the first len(chosen) shares of the split over all of them
        h: n for h, n in zip(chosen, examples_per_handler(args.examples).values(), strict=False)}
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as mp, Harness(mp, strict=False).running() as harness:
        for handler in chosen:
            harness.run(handler, counts[handler], args.seed)
            f = harness.figures[handler]
            print(f"{handler}: {f.events} events in {f.seconds:.0f} s", file=sys.stderr, flush=True)
        probe = harness.envelope_probe()
    figures = [harness.figures[h] for h in chosen]
    print(f"netguard handler fuzzing: {sum(f.events for f in figures)} events, seed {args.seed}, "
          f"{time.monotonic() - started:.0f} s, profiles {'+'.join(PROFILES)}")
    print(table(figures))
    for f in figures:
        for note, count in sorted(f.notes.items()):
            print(f"note: {f.handler}: {count} acted on though {note} (the handler does not check it)")
    crashed = {k: v for k, v in probe.items() if v}
    print(f"note: records SQS never delivers (direct invocations only): {len(probe)} batches, {len(crashed)} "
          f"raised{': ' if crashed else ''}{'; '.join(f'{k} ({v})' for k, v in crashed.items())}")
    wrong = [f for f in figures if not f.ok]
    short = sum(f.events for f in figures) < sum(counts.values())
    for f in wrong:
        for text in f.problems:
            print(f"PROBLEM {f.handler}: {text}")
    if short:
        print(f"PROBLEM: fewer events than asked ({sum(f.events for f in figures)} < {sum(counts.values())})")
    print("FAIL" if wrong or short else
          "OK: 0 unhandled exceptions, 0 write calls for invalid events, "
          "every good record of the mixed batches processed")
    return 1 if wrong or short else 0


if __name__ == "__main__":
    sys.exit(main())
