"""Property-based fuzzing of every handler (reliability/fuzz.py), on one moto account for the module.

Events generated from the real shapes and mutated around them go to the Lambda entry points of app.py;
each is classified with netguard's own parsers. No handler may raise; what the parsers reject is
skipped (or reported as a batch item failure), logged and never written for; every good record of a
mixed SQS batch is processed. A failure shrinks to the smallest event that shows it.

NETGUARD_FUZZ_EXAMPLES events in all (default 300, split over the handlers and the two configurations);
`.venv/bin/python reliability/fuzz.py --examples 10000` runs the long version and prints the figures.
The regressions below are the crashes and leaks the fuzzing found, pinned.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chalicelib.configrule import parse_invocation
from chalicelib.errors import InvalidEvent
from chalicelib.recheck import decode
from chalicelib.sweep import Task
from chalicelib.triggers import from_api_call, from_state_change
from netguard_testkit import events
from reliability.fuzz import (
    HANDLERS,
    Case,
    Encoded,
    Harness,
    classify,
    event_bases,
    examples_per_handler,
    lambda_shaped,
    sqs_record,
)

EXAMPLES = int(os.environ.get("NETGUARD_FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("NETGUARD_FUZZ_SEED", "0"))
ACCOUNT, REGION = "123456789012", "us-east-1"


@pytest.fixture(scope="module")
def world() -> Iterator[Harness]:
    """One moto account, network, violators, ledger, alert channels and queues for the whole module."""
    with pytest.MonkeyPatch.context() as mp, Harness(mp, strict=True).running() as harness:
        yield harness


@pytest.fixture
def fuzz(world: Harness, fake_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """The module's harness with its environment applied again (conftest clears NETGUARD_* per test)."""
    world.reapply(monkeypatch)
    return world


@pytest.mark.parametrize("handler", HANDLERS)
def test_fuzzed_events_never_crash_and_invalid_ones_never_write(fuzz: Harness, handler: str) -> None:
    figures = fuzz.run(handler, examples_per_handler(EXAMPLES)[handler], SEED)
    assert figures.ok, figures.problems
    assert figures.events >= examples_per_handler(EXAMPLES)[handler]
    assert figures.valid and (figures.invalid or handler == "sweep")  # both sides were exercised
    if handler in ("sweep_worker", "recheck"):
        assert figures.mixed_batches and figures.good_in_mixed_processed == figures.good_in_mixed


# ------------------------------------------------------------------- regressions the fuzzing found


def _with(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`event` with `value` at `path` ("detail/userIdentity/arn")."""
    event = copy.deepcopy(event)
    *parents, last = path.split("/")
    node: Any = event
    for key in parents:
        node = (node.value if isinstance(node, Encoded) else node)[key]
    (node.value if isinstance(node, Encoded) else node)[last] = value
    return event


def _regressions(fuzz: Harness) -> list[tuple[str, str, Any]]:
    """(what, handler, event): each crashed a handler or was acted on before its fix; all are skipped
    now, but the scheduled invocation, which is evaluated (its summary is not read)."""
    bases = event_bases(fuzz.world)
    create, state = bases["on_api_call"][0](), bases["on_state_change"][0]()
    compliance = bases["on_compliance_change"][1]()
    notebook_rule = bases["config_rule"][1]()
    deep = "[" * 100_000 + "]" * 100_000  # deeper than json.loads parses: RecursionError
    recheck, task = bases["recheck"][0](), bases["sweep_worker"][0]()
    return [
        # UnicodeEncodeError in the ledger (a lone surrogate cannot be sent): the handler crashed
        ("principal with a lone surrogate", "on_api_call",
         _with(create, "detail/userIdentity/arn", f"arn:aws:iam::{ACCOUNT}:user/x\ud800")),
        ("event id with a lone surrogate", "on_api_call", _with(create, "id", "id-\ud800")),
        ("Config rule name with a lone surrogate", "config_rule", _with(notebook_rule, "configRuleName", "r\ud800")),
        ("managed rule name with a lone surrogate", "on_compliance_change",
         _with(compliance, "detail/configRuleName", "sagemaker-notebook-no-direct-internet-access\ud800")),
        # `$` matched before a final newline: botocore refused the region ("Invalid endpoint"), a crash
        ("region with a final newline", "on_api_call", _with(create, "region", f"{REGION}\n")),
        # `\d` matched other scripts' digits: acted on under an account id AWS does not have
        ("account in fullwidth digits", "on_state_change", _with(state, "account", "１２３４５６７８９０１２")),
        ("region with an Arabic-Indic digit", "on_state_change", _with(state, "region", "us-east-١")),
        # RecursionError out of json.loads: the custom rule crashed
        ("invokingEvent nested too deep", "config_rule", {**notebook_rule, "invokingEvent": deep}),
        # AttributeError: a scheduled invocation's summary was read as an object
        ("scheduled invocation with a list for configurationItemSummary", "config_rule",
         _with(bases["config_rule"][8](), "invokingEvent/configurationItemSummary", [1])),
        # a name SageMaker does not have was read (AWS: ValidationException, a read error: the rule failed)
        ("notebook name longer than SageMaker allows", "config_rule",
         _with(_with(notebook_rule, "invokingEvent/configurationItem/resourceName", "n" * 64),
               "invokingEvent/configurationItem/ARN", "")),
        # queue messages: a failing record the parsers accepted, or a RecursionError
        ("recheck message nested too deep", "recheck", {"Records": [sqs_record("m-deep", None, "q") | {"body": deep}]}),
        ("recheck origin with a lone surrogate", "recheck",
         {"Records": [sqs_record("m-origin", {**recheck, "origin": "o\ud800"}, "q")]}),
        ("sweep id with a lone surrogate", "sweep_worker",
         {"Records": [sqs_record("m-sweep", {**task, "sweep_id": "s\ud800"}, "q")]}),
    ]


@pytest.mark.parametrize("profile", ["stack", "chalice"])
def test_what_the_fuzzing_found_is_skipped_without_a_crash_or_a_write(fuzz: Harness, profile: str) -> None:
    fuzz.use_profile(profile)
    for what, handler, event in _regressions(fuzz):
        event = lambda_shaped(event)
        if handler in ("recheck", "sweep_worker"):
            body = event["Records"][0]["body"]
            parse = decode if handler == "recheck" else Task.decode
            with pytest.raises(InvalidEvent):
                parse(body)
        else:
            expected = "valid" if what.startswith("scheduled") else "invalid"
            assert classify(handler, event)[0] == expected, what
        fuzz.check(Case(handler, event, [f"regression: {what}"]))  # every property, strictly


@pytest.mark.parametrize("value", ["123456789012\n", "１２３４５６７８９０１２", "١٢٣٤٥٦٧٨٩٠١٢", "12345678901２"])
def test_account_ids_are_twelve_ascii_digits_and_nothing_after(value: str) -> None:
    with pytest.raises(InvalidEvent, match="account"):
        from_api_call(events.start_notebook("nb", value, REGION))
    with pytest.raises(InvalidEvent, match="account"):
        from_state_change(events.notebook_state_change("nb", "InService", value, REGION))
    with pytest.raises(InvalidEvent, match="account"):
        parse_invocation(events.config_scheduled_invocation(value, REGION))
    body = json.dumps({"schema": "netguard.sweep-task/v1", "sweep_id": "s", "account": value, "region": REGION})
    with pytest.raises(InvalidEvent, match="account"):
        Task.decode(body)


@pytest.mark.parametrize("name", ["nb\n", "nb\u200b", "ｎｂ", "n" * 64])
def test_sagemaker_names_and_ec2_ids_are_whole_ascii_strings(name: str) -> None:
    with pytest.raises(InvalidEvent, match="name"):
        from_api_call(events.start_notebook(name, ACCOUNT, REGION))
    with pytest.raises(InvalidEvent, match="id"):
        from_api_call(events.authorize_ingress("sg-0123456789abcdef0\n", [], ACCOUNT, REGION))


def test_the_real_shapes_still_parse() -> None:
    assert from_api_call(events.start_notebook("nb-Real-1", ACCOUNT, REGION)).refs[0].resource_id == "nb-Real-1"
    assert parse_invocation(events.sample("config-custom-rule-invocation-securitygroup.json")).item["resourceId"]
    assert parse_invocation(events.config_rule_invocation(
        "AWS::SageMaker::NotebookInstance", "config-id", ACCOUNT, REGION, "nb-one")).rule_name


# ------------------------------------------- found by fuzzing in handlers.py, fixed there


def test_records_sqs_never_delivers_do_not_crash_the_batch(fuzz: Harness) -> None:
    crashed = {what: error for what, error in fuzz.envelope_probe().items() if error}
    assert crashed == {}


def test_a_malformed_event_is_logged_even_when_its_id_cannot_be_encoded(fuzz: Harness, monkeypatch) -> None:
    from chalicelib import handlers

    raw = io.BytesIO()
    monkeypatch.setattr(logging, "raiseExceptions", False)
    stdout = io.TextIOWrapper(raw, "utf-8", write_through=True)  # a UTF-8 stdout, as in Lambda
    previous = handlers.logger.registered_handler.setStream(stdout)
    try:
        event = lambda_shaped(_with(event_bases(fuzz.world)["on_api_call"][0](), "id", "id-\ud800"))
        assert fuzz.app.on_api_call(event, None)["skipped"] == "invalid"
        written = raw.getvalue()
    finally:
        handlers.logger.registered_handler.setStream(previous)
    assert b"malformed event skipped" in written
