"""Decide: modes, the stage override, exemptions and resource state, as a table (pure, no AWS)."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from chalicelib.decide import decide
from chalicelib.model import (
    ALERT_ONLY,
    COMPLIANT,
    DEFERRED,
    DRY_RUN,
    EXEMPT,
    NON_COMPLIANT,
    NOT_ACTIONABLE,
    NOTEBOOK,
    REMEDIATE,
    REPORT_ONLY,
    Finding,
    Resource,
    ResourceRef,
)
from chalicelib.policy import Exemption, load_policy
from chalicelib.settings import Settings

POLICY = load_policy()
TODAY = dt.date(2026, 11, 27)
EXEMPT_NB1 = {"netguard:exempt": "NB.1", "netguard:exempt-until": "2026-12-31", "netguard:exempt-reason": "lab"}


def finding(status="InService", tags=None, control="NB.1", verdict=NON_COMPLIANT, name="nb-1"):
    ref = ResourceRef(NOTEBOOK, name, "111122223333", "eu-west-1")
    resource = Resource(ref, f"arn:aws:sagemaker:eu-west-1:111122223333:notebook-instance/{name}",
                        {"NotebookInstanceStatus": status, "DirectInternetAccess": "Enabled"}, tags or {}, "v1")
    return Finding(POLICY.control(control), resource, verdict, {"DirectInternetAccess": "Enabled"})


CASES = [
    # (case, finding kwargs, settings, expected kind, words in the reason)
    ("enforce, InService: stop", {}, Settings(), REMEDIATE, "stop the notebook"),
    ("enforce, Pending: defer until InService", {"status": "Pending"}, Settings(), DEFERRED, "Pending"),
    ("enforce, Stopped: make sure it is tagged", {"status": "Stopped"}, Settings(), REMEDIATE, "stop"),
    ("enforce, Failed: cannot act", {"status": "Failed"}, Settings(), NOT_ACTIONABLE, "Failed"),
    ("stage dry-run wins over enforce", {}, Settings(mode="dry-run"), DRY_RUN, "would stop"),
    ("stage alert wins over enforce", {}, Settings(mode="alert"), ALERT_ONLY, "stage mode is alert"),
    ("control set to alert by the operator", {}, Settings(control_modes={"NB.1": "alert"}), ALERT_ONLY, "alert mode"),
    ("stage dry-run wins over a per-control enforce", {}, Settings(mode="dry-run", control_modes={"NB.1": "enforce"}),
     DRY_RUN, "dry-run"),
    ("tag exemption for this control, with reason and expiry", {"tags": EXEMPT_NB1}, Settings(), EXEMPT, "lab"),
    ("tag exemption listing controls with spaces (SageMaker tag values cannot hold commas)",
     {"tags": {**EXEMPT_NB1, "netguard:exempt": "NB.3 NB.1"}}, Settings(), EXEMPT, "lab"),
    ("tag exemption for every control (not a critical one)", {"tags": {**EXEMPT_NB1, "netguard:exempt": "*"}},
     Settings(), EXEMPT, "exempt"),
    ("tag exemption for another control only", {"tags": {**EXEMPT_NB1, "netguard:exempt": "SG.1"}}, Settings(),
     REMEDIATE, "stop"),
    ("tag exemption valid until today", {"tags": {**EXEMPT_NB1, "netguard:exempt-until": "2026-11-27"}},
     Settings(), EXEMPT, "until 2026-11-27"),
    ("tag exemption without a reason is ignored and reported",
     {"tags": {"netguard:exempt": "NB.1", "netguard:exempt-until": "2026-12-01"}}, Settings(), REMEDIATE,
     "no netguard:exempt-reason"),
    ("tag exemption without an expiry is ignored and reported",
     {"tags": {"netguard:exempt": "NB.1", "netguard:exempt-reason": "lab"}}, Settings(), REMEDIATE,
     "no netguard:exempt-until"),
    ("tag exemption expiring beyond NETGUARD_MAX_EXEMPTION_DAYS is ignored and reported",
     {"tags": {**EXEMPT_NB1, "netguard:exempt-until": "2027-02-26"}}, Settings(), REMEDIATE, "more than 90 days"),
    ("a shorter NETGUARD_MAX_EXEMPTION_DAYS", {"tags": EXEMPT_NB1}, Settings(max_exemption_days=3), REMEDIATE,
     "more than 3 days"),
    ("expired tag exemption is ignored and reported", {"tags": {**EXEMPT_NB1, "netguard:exempt-until": "2026-11-26"}},
     Settings(), REMEDIATE, "expired on 2026-11-26"),
    ("unreadable expiry is ignored and reported", {"tags": {**EXEMPT_NB1, "netguard:exempt-until": "someday"}},
     Settings(), REMEDIATE, "not YYYY-MM-DD"),
    ("exemption wins over dry-run (nothing to do either way)", {"tags": EXEMPT_NB1},
     Settings(mode="dry-run"), EXEMPT, "exempt"),
]


@pytest.mark.parametrize("case, kwargs, settings, kind, words", CASES, ids=[c[0] for c in CASES])
def test_decisions(case, kwargs, settings, kind, words):
    decision = decide(finding(**kwargs), POLICY, settings, TODAY)
    assert decision.kind == kind
    assert words in decision.reason
    if kind in (REMEDIATE, DRY_RUN, DEFERRED, ALERT_ONLY):
        assert decision.action == "quarantine_notebook"


def test_compliant_findings_need_no_decision():
    assert decide(finding(verdict=COMPLIANT), POLICY, Settings(), TODAY) is None


def test_read_only_scan_says_what_it_would_do_and_does_nothing():
    decision = decide(finding(), POLICY, Settings(), TODAY, report_only=True)
    assert decision.kind == REPORT_ONLY and "would stop" in decision.reason


def test_policy_file_exemptions_by_resource_id_account_and_expiry():
    live = Exemption("nb-1", ("NB.1",), dt.date(2027, 1, 1), "migration ticket SEC-1", "exemptions.toml",
                     ("111122223333",))
    expired = Exemption("nb-2", ("*",), dt.date(2026, 1, 1), "old", "exemptions.toml", ("111122223333",))
    elsewhere = Exemption("nb-3", ("NB.1",), None, "another account's nb-3", "exemptions.toml", ("444455556666",))
    policy = dataclasses.replace(POLICY, exemptions=(live, expired, elsewhere))
    assert decide(finding(name="nb-1"), policy, Settings(), TODAY).kind == EXEMPT
    second = decide(finding(name="nb-2"), policy, Settings(), TODAY)
    assert second.kind == REMEDIATE and "expired on 2026-01-01" in second.reason
    assert decide(finding(name="nb-3"), policy, Settings(), TODAY).kind == REMEDIATE  # same name, other account


def sg_finding(tags):
    ref = ResourceRef("AWS::EC2::SecurityGroup", "sg-0123456789abcdef0", "111122223333", "eu-west-1")
    resource = Resource(ref, "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0123456789abcdef0", {}, tags)
    return Finding(POLICY.control("SG.1"), resource, NON_COMPLIANT, {"OpenIngressRules": []}, ("sgr-1",))


def test_a_wildcard_does_not_exempt_from_a_critical_control_unless_the_policy_allows_it():
    tags = {"netguard:exempt": "*", "netguard:exempt-until": "2026-12-31", "netguard:exempt-reason": "demo"}
    refused = decide(sg_finding(tags), POLICY, Settings(), TODAY)
    assert refused.kind == REMEDIATE and "does not cover SG.1" in refused.reason
    assert decide(sg_finding({**tags, "netguard:exempt": "SG.1"}), POLICY, Settings(), TODAY).kind == EXEMPT
    allowing = dataclasses.replace(POLICY, controls=tuple(
        dataclasses.replace(c, wildcard_exemption=True) if c.id == "SG.1" else c for c in POLICY.controls))
    assert decide(sg_finding(tags), allowing, Settings(), TODAY).kind == EXEMPT
    file_wildcard = Exemption("sg-0123456789abcdef0", ("*",), None, "demo", "exemptions.toml", ("111122223333",))
    from_file = decide(sg_finding({}), dataclasses.replace(POLICY, exemptions=(file_wildcard,)), Settings(), TODAY)
    assert from_file.kind == REMEDIATE and "does not cover SG.1" in from_file.reason


def test_settings_reject_unknown_modes():
    from chalicelib.errors import ConfigError

    with pytest.raises(ConfigError, match="NETGUARD_MODE"):
        Settings.from_env({"NETGUARD_MODE": "yolo"})
    with pytest.raises(ConfigError, match="NETGUARD_CONTROL_MODES"):
        Settings.from_env({"NETGUARD_CONTROL_MODES": "NB.1=sometimes"})
    settings = Settings.from_env({"NETGUARD_MODE": "DRY-RUN", "NETGUARD_CONTROL_MODES": "NB.4=enforce, SG.2=off"})
    assert settings.mode == "dry-run" and settings.control_modes == {"NB.4": "enforce", "SG.2": "off"}


def job_finding(status: str, control: str = "JOB.1", tags: dict | None = None) -> Finding:
    ref = ResourceRef("AWS::SageMaker::TrainingJob", "train-1", "111122223333", "eu-west-1")
    resource = Resource(ref, "arn:aws:sagemaker:eu-west-1:111122223333:training-job/train-1",
                        {"JobStatus": status, "EnableNetworkIsolation": False}, tags or {}, status)
    return Finding(POLICY.control(control), resource, NON_COMPLIANT, {"EnableNetworkIsolation": False})


@pytest.mark.parametrize("status", ["Completed", "Failed", "Stopped", "Deleting", "DeleteFailed"])
@pytest.mark.parametrize("settings", [Settings(), Settings(mode="alert"), Settings(mode="dry-run"),
                                      Settings(control_modes={"JOB.1": "alert"})], ids=["enforce", "alert", "dry-run",
                                                                                         "control-alert"])
def test_a_finished_job_is_not_actionable_whatever_the_mode(status, settings):
    decision = decide(job_finding(status), POLICY, settings, TODAY)
    assert decision.kind == NOT_ACTIONABLE and decision.action is None
    assert decision.reason.startswith("finished; cannot be stopped") and status in decision.reason
    assert decide(job_finding(status, "JOB.4"), POLICY, settings, TODAY).kind == NOT_ACTIONABLE


def test_a_running_or_stopping_job_is_decided_as_before_and_an_exemption_still_wins():
    assert decide(job_finding("InProgress"), POLICY, Settings(), TODAY).kind == REMEDIATE
    assert decide(job_finding("Stopping"), POLICY, Settings(), TODAY).kind == REMEDIATE  # the stop holds: done
    exempt = {"netguard:exempt": "JOB.1", "netguard:exempt-until": "2026-12-31", "netguard:exempt-reason": "lab"}
    assert decide(job_finding("Completed", tags=exempt), POLICY, Settings(), TODAY).kind == EXEMPT
    read_only = decide(job_finding("Completed"), POLICY, Settings(), TODAY, report_only=True)
    assert read_only.kind == REPORT_ONLY and "finished; cannot be stopped" in read_only.reason
