"""What keeps netguard from doing harm: the blast-radius limit on enforce actions, and events it must
not act on (forged sources, accounts and regions it is not configured for, its own changes)."""
from __future__ import annotations

import os
from typing import Any

import pytest

from chalicelib import handlers
from chalicelib.ledger import MemoryLedger
from chalicelib.settings import Settings
from conftest import alerts, invoke
from netguard_testkit import events
from netguard_testkit.world import OPEN_SSH, open_ssh_groups

# `make reliability` sends 500; the everyday suite a smaller burst over the same limit.
BURST = int(os.environ.get("NETGUARD_TEST_BURST", "60"))
LIMIT = 20



def open_groups(aws, net, count: int) -> list[str]:
    return open_ssh_groups(aws.client("ec2"), net, count, prefix="burst")


def test_a_burst_of_violations_stops_at_the_limit(stack, monkeypatch) -> None:
    aws, net = stack["aws"], stack["net"]
    monkeypatch.setenv("NETGUARD_MAX_ACTIONS", str(LIMIT))
    monkeypatch.setenv("NETGUARD_SLACK_WEBHOOK_PARAM", "")  # SNS is enough to count alerts here
    handlers.runtime.cache_clear()
    groups = open_groups(aws, net, BURST)
    results: list[tuple[str, str]] = []
    for gid in groups:
        result = invoke(stack, "on_api_call", events.authorize_ingress(gid, OPEN_SSH, aws.account, aws.region))
        results += [(d["decision"], d["result"]) for d in result["decisions"] if d["control"] == "SG.1"]
    revokes = [w for w in aws.calls.writes() if w == "ec2:RevokeSecurityGroupIngress"]
    sent = alerts(stack)
    notices = [a for a in sent if a["attributes"].get("kind") == "notice"]
    limited = [a for a in sent if a["message"].get("result") == "limited"]
    print(f"blast radius: {BURST} violating events, limit {LIMIT}: {len(revokes)} revokes, "
          f"{results.count(('remediate', 'limited'))} limited and alerted, {len(notices)} limit-reached alert")
    assert len(revokes) == LIMIT  # one action per violating group (tagged: no Owner tag to add)
    assert results.count(("remediate", "succeeded")) == LIMIT
    assert results.count(("remediate", "limited")) == BURST - LIMIT
    assert len(notices) == 1 and "limit reached" in notices[0]["subject"]
    assert f"{LIMIT} critical-severity enforce actions in account" in notices[0]["message"]["text"]
    # SG.1 and SG.2 share the revoke: each limited group is alerted for both
    assert {a["message"]["resource"]["id"] for a in limited} == set(groups[LIMIT:])
    assert "blast-radius limit" in limited[0]["message"]["detail"]


def test_the_budget_is_per_account_per_severity_and_per_window(monkeypatch) -> None:
    ledger = MemoryLedger()
    taken = [ledger.take_action_budget("111111111111", "low", 3, 100, 60) for _ in range(5)]
    assert taken == [(None, False)] * 3 + [("account", True), ("account", False)]
    assert ledger.take_action_budget("111111111111", "critical", 3, 100, 60) == (None, False)  # not starved
    assert ledger.take_action_budget("222222222222", "low", 3, 100, 60) == (None, False)
    import chalicelib.ledger as ledger_module

    later = ledger_module.utcnow() + ledger_module.dt.timedelta(hours=1)
    monkeypatch.setattr(ledger_module.rules, "utcnow", lambda: later)
    assert ledger.take_action_budget("111111111111", "low", 3, 100, 60) == (None, False)  # a new window


def test_the_organization_cap_counts_every_account_and_a_refusal_takes_nothing() -> None:
    ledger = MemoryLedger()
    assert [ledger.take_action_budget(a, "high", 5, 3, 60) for a in ("111111111111", "222222222222",
                                                                     "333333333333")] == [(None, False)] * 3
    assert ledger.take_action_budget("444444444444", "high", 5, 3, 60) == ("organization", True)
    assert ledger.take_action_budget("444444444444", "critical", 5, 3, 60) == (None, False)
    # the refused action took nothing from its account: 5 more would be allowed once the org allows
    assert [i["count"] for (pk, _), i in ledger.items.items() if pk == "budget#444444444444#high"] == [0]


def test_a_limited_violation_is_acted_on_once_the_window_allows(stack, monkeypatch) -> None:
    aws, net = stack["aws"], stack["net"]
    monkeypatch.setenv("NETGUARD_MAX_ACTIONS", "1")
    handlers.runtime.cache_clear()
    first, second = open_groups(aws, net, 2)
    invoke(stack, "on_api_call", events.authorize_ingress(first, OPEN_SSH, aws.account, aws.region))
    result = invoke(stack, "on_api_call", events.authorize_ingress(second, OPEN_SSH, aws.account, aws.region))
    assert {d["result"] for d in result["decisions"] if d["control"] == "SG.1"} == {"limited"}
    monkeypatch.setenv("NETGUARD_MAX_ACTIONS", "5")  # e.g. the next window
    handlers.runtime.cache_clear()
    again = invoke(stack, "on_api_call", events.authorize_ingress(second, OPEN_SSH, aws.account, aws.region))
    assert {d["result"] for d in again["decisions"] if d["control"] == "SG.1"} == {"succeeded"}


# -------------------------------------------------------------------------------- foreign events


HOME, MEMBER_ACCOUNT = "123456789012", "111111111111"
FUNCTION_ROLE = f"arn:aws:iam::{HOME}:role/netguard-prod-DefaultRole-1A2B3C"


@pytest.mark.parametrize("arn, account, own", [
    (f"arn:aws:sts::{HOME}:assumed-role/netguard-prod-DefaultRole-1A2B3C/netguard-prod-on_api_call", HOME, True),
    (f"arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/netguard-member/netguard", MEMBER_ACCOUNT, True),
    # named like ours, but not ours
    (f"arn:aws:sts::{HOME}:assumed-role/netguard-prod-DefaultRole-1A2B3C-x/s", HOME, False),
    (f"arn:aws:sts::{HOME}:assumed-role/netguard-prod-attacker/netguard-prod-on_api_call", HOME, False),
    (f"arn:aws:sts::{HOME}:assumed-role/netguard-prod/s", HOME, False),  # the chalice-deploy name, not this stack's
    (f"arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/netguard-prod-DefaultRole-1A2B3C/s", MEMBER_ACCOUNT, False),
    (f"arn:aws:sts::{HOME}:assumed-role/netguard-member/netguard", HOME, False),  # no member role at home
    (f"arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/netguard-member/netguard", "222222222222", False),
    (f"arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/netguard-member/alice", MEMBER_ACCOUNT, False),
    (f"arn:aws:iam::{HOME}:user/data-scientist", HOME, False),
    (None, HOME, False),
])
def test_netguards_own_principals_are_recognised_exactly(arn: str | None, account: str, own: bool) -> None:
    settings = Settings(stage="prod", member_role_name="netguard-member", own_role_arns=(FUNCTION_ROLE,))
    assert settings.own_principal(arn, account, HOME) is own


def test_without_the_stacks_role_arns_only_the_chalice_deploy_roles_are_ours() -> None:
    """`chalice deploy` (autogen_policy off) makes one role per function: netguard-<stage>-<function>."""
    from app import app
    from chalicelib.settings import FUNCTIONS

    assert set(FUNCTIONS) == {h.name for h in app.event_sources} | {f.name for f in app.pure_lambda_functions}
    settings = Settings(stage="prod", member_role_name="netguard-member")
    for name in FUNCTIONS:
        assert settings.own_principal(f"arn:aws:sts::{HOME}:assumed-role/netguard-prod-{name}/netguard-prod-{name}",
                                      HOME, HOME)
    assert not settings.own_principal(f"arn:aws:sts::{HOME}:assumed-role/netguard-prod/s1", HOME, HOME)
    assert not settings.own_principal(f"arn:aws:sts::{HOME}:assumed-role/netguard-prod-on_api_call-x/s1", HOME, HOME)
    assert not settings.own_principal(f"arn:aws:sts::{HOME}:assumed-role/netguard-prod-sweep/s1", HOME, None)


def foreign_cases(aws, net) -> list[tuple[str, dict[str, Any], dict[str, str], str]]:
    ssh = events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region)
    forged = dict(ssh, source="my.scripts")
    other_region = events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, "eu-central-1")
    own = events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, aws.account, aws.region,
                                   principal=f"arn:aws:sts::{aws.account}:assumed-role/netguard-e2e-DefaultRole-X/netguard-e2e-on_api_call")
    other_account = events.authorize_ingress(net.sg_ssh_open, OPEN_SSH, "999999999999", aws.region)
    return [
        ("a source that is not aws.*", forged, {}, "is not an AWS service"),
        ("a region netguard is not configured for", other_region, {"NETGUARD_REGIONS": aws.region},
         "region eu-central-1 is not one"),
        ("netguard's own change", own,
         {"NETGUARD_OWN_ROLE_ARNS": f"arn:aws:iam::{aws.account}:role/netguard-e2e-DefaultRole-X"},
         "a change netguard made itself"),
        ("an account not in the allowed list", other_account, {"NETGUARD_ACCOUNTS": "111111111111"},
         "account 999999999999 is not one"),
    ]


def test_forged_and_foreign_events_are_never_acted_on(stack, monkeypatch, caplog) -> None:
    aws, net = stack["aws"], stack["net"]
    from netguard_testkit.moto_fidelity import attach_notebook_eni

    attach_notebook_eni(aws.client("ec2"), net.private_subnets[0], [net.sg_ssh_open], "nb")  # a real violation
    for what, event, env, reason in foreign_cases(aws, net):
        for name in ("NETGUARD_REGIONS", "NETGUARD_OWN_ROLE_ARNS", "NETGUARD_ACCOUNTS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        handlers.runtime.cache_clear()
        result = invoke(stack, "on_api_call", event)
        assert result["skipped"] == "ignored" and reason in result["reason"], (what, result)
        assert aws.calls.writes() == [], what
    assert alerts(stack) == []


def test_the_dynamodb_budget_gives_back_what_the_organization_refuses(aws) -> None:
    from chalicelib.ledger import DynamoLedger
    from netguard_testkit.world import create_ledger_table

    table = create_ledger_table(aws.client("dynamodb"), "netguard-ledger-budget")
    ledger = DynamoLedger(table, aws.clients)
    answers = [ledger.take_action_budget(a, "low", 2, 3, 60) for a in ("111111111111", "111111111111",
                                                                       "111111111111", "222222222222")]
    assert answers == [(None, False), (None, False), ("account", True), (None, False)]
    assert ledger.take_action_budget("333333333333", "low", 2, 3, 60) == ("organization", True)
    assert ledger.take_action_budget("333333333333", "low", 2, 3, 60) == ("organization", False)
    assert ledger.take_action_budget("333333333333", "critical", 2, 3, 60) == (None, False)
    counts = {i["pk"]["S"]: int(i["count"]["N"]) for i in aws.client("dynamodb").scan(TableName=table)["Items"]
              if i["pk"]["S"].startswith("budget#")}
    assert counts == {"budget#111111111111#low": 2, "budget#222222222222#low": 1, "budget#333333333333#low": 0,
                      "budget#org#low": 3, "budget#333333333333#critical": 1, "budget#org#critical": 1}


def test_the_organization_counter_is_kept_only_where_its_cap_can_bind() -> None:
    one = Settings.from_env({})
    assert not one.org_cap_binds("critical")  # one account: 50 <= 250
    listed = Settings.from_env({"NETGUARD_ACCOUNTS": ",".join(f"{i:012d}" for i in range(1, 6))})
    assert listed.org_cap_binds("low")  # six accounts of 50 > 250
    assert not Settings.from_env({"NETGUARD_ACCOUNTS": "111111111111", "NETGUARD_MAX_ACTIONS_ORG": "100"}
                                 ).org_cap_binds("low")
    assert Settings.from_env({"NETGUARD_ACCOUNTS": "organization"}).org_cap_binds("low")
