"""Configuration from the environment, read once per invocation (never at import).

Every variable is documented in README.md ("Configuration").
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError
from .model import SEVERITIES

STAGE_MODES = ("enforce", "alert", "dry-run")
CONTROL_MODES = ("enforce", "alert", "off")


def _parse_control_modes(raw: str) -> dict[str, str]:
    """`NB.4=enforce,SG.2=alert` -> {"NB.4": "enforce", "SG.2": "alert"}."""
    modes: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        control_id, sep, mode = item.partition("=")
        control_id, mode = control_id.strip(), mode.strip()
        if not sep or not control_id or mode not in CONTROL_MODES:
            raise ConfigError(
                f"NETGUARD_CONTROL_MODES: {item!r} is not CONTROL=MODE with MODE one of {', '.join(CONTROL_MODES)}"
            )
        modes[control_id] = mode
    return modes


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {raw!r} is not a whole number") from exc
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")
    return value


def _limits(env: Mapping[str, str], name: str, default: int) -> dict[str, int]:
    """A blast-radius limit per severity: `50` for every severity, or `critical=200,low=10` (the others
    keep `default`)."""
    raw = env.get(name, "").strip()
    limits = dict.fromkeys(SEVERITIES, default)
    if raw and "=" not in raw:
        return dict.fromkeys(SEVERITIES, _positive_int(env, name, default))
    for item in filter(None, (part.strip() for part in raw.split(","))):
        severity, _, value = (x.strip() for x in item.partition("="))
        if severity not in SEVERITIES or not value.isdigit() or int(value) <= 0:
            raise ConfigError(f"{name}: {item!r} is not SEVERITY=N with N positive and SEVERITY one of "
                              f"{', '.join(SEVERITIES)} (or give one number for all)")
        limits[severity] = int(value)
    return limits


ACCOUNT_ID_LENGTH = 12
ORGANIZATION = "organization"
# The Lambda functions of app.py (tests/e2e/test_guards.py checks they agree)
FUNCTIONS = ("on_api_call", "on_state_change", "on_compliance_change", "config_rule", "sweep", "sweep_worker",
             "recheck")
MEMBER_SESSION_NAME = "netguard"  # the session name netguard gives the member role it assumes (aws.py)
_ASSUMED_ROLE = re.compile(r"^arn:aws[a-z-]*:sts::(\d{12}):assumed-role/([\w+=,.@-]{1,64})/([\w+=,.@-]{2,64})\Z",
                           re.ASCII)
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})\Z", re.ASCII)


def _assumed_role(arn: str | None) -> tuple[str, str, str] | None:
    """(account, role name, session name) of an assumed-role session ARN, else None."""
    found = _ASSUMED_ROLE.match(arn) if isinstance(arn, str) else None
    return (found.group(1), found.group(2), found.group(3)) if found else None


def _role_arn(arn: str) -> tuple[str, str] | None:
    """(account, role name) of a role ARN (`arn:aws:iam::123456789012:role/path/name`), else None."""
    found = _ROLE.match(arn)
    return (found.group(1), found.group(2)) if found else None


def _role_arns(env: Mapping[str, str]) -> tuple[str, ...]:
    arns = _csv(env, "NETGUARD_OWN_ROLE_ARNS")
    bad = [a for a in arns if _role_arn(a) is None]
    if bad:
        raise ConfigError(f"NETGUARD_OWN_ROLE_ARNS: {', '.join(bad)} not IAM role ARNs")
    return arns


def _switch(env: Mapping[str, str], name: str) -> bool:
    """An optional channel's switch: on/true/1 or off/false/0 (unset: off)."""
    raw = env.get(name, "").strip().lower()
    if raw in ("", "off", "false", "0"):
        return False
    if raw in ("on", "true", "1"):
        return True
    raise ConfigError(f"{name}: {raw!r} is not on or off")


def _https_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if raw and (not raw.startswith("https://") or len(raw) > 512 or any(c.isspace() for c in raw)):
        raise ConfigError(f"{name}: {raw!r} is not an https:// URL of at most 512 characters")
    return raw or None


def _csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in env.get(name, "").split(",") if p.strip()))


def _accounts(env: Mapping[str, str]) -> tuple[str, ...]:
    """NETGUARD_ACCOUNTS: account ids (comma-separated), or `organization` for every active account."""
    accounts = _csv(env, "NETGUARD_ACCOUNTS")
    if accounts == (ORGANIZATION,):
        return accounts
    bad = [a for a in accounts if not (a.isdigit() and len(a) == ACCOUNT_ID_LENGTH)]
    if bad:
        raise ConfigError(f"NETGUARD_ACCOUNTS: {', '.join(bad)} not 12-digit account ids (or use '{ORGANIZATION}')")
    return accounts


@dataclass(frozen=True)
class Settings:
    mode: str = "enforce"
    control_modes: Mapping[str, str] = field(default_factory=dict)
    ledger_table: str | None = None
    ledger_key_id: str | None = None  # the KMS HMAC key that signs action records (restore checks them)
    alert_topic_arn: str | None = None
    slack_webhook_param: str | None = None
    slack_allowed_urls: tuple[str, ...] = ("https://hooks.slack.com/",)  # where a webhook URL may point
    policy_dir: str | None = None
    dedup_hours: int = 24
    ledger_retention_days: int = 400
    idempotency_hours: int = 24
    stage: str = "dev"
    home_account: str | None = None  # the account netguard runs in (the template sets it)
    accounts: tuple[str, ...] = ()  # () = the home account only; ("organization",) = every active account
    regions: tuple[str, ...] = ()  # () = the function's own region
    member_role_name: str | None = None
    own_role_arns: tuple[str, ...] = ()  # the roles netguard's functions run as (own_roles)
    member_external_id: str | None = None
    recheck_queue_url: str | None = None
    recheck_max_attempts: int = 8
    recheck_delay_seconds: int = 60
    sweep_queue_url: str | None = None
    sweep_chunk: int = 200
    read_concurrency: int = 8
    # Blast radius: enforce actions per window, by severity, in one account and in all of them together:
    # low-severity fixes cannot spend what a critical containment needs.
    max_actions: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 50))
    max_actions_org: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 250))
    action_window_minutes: int = 60
    sweep_max_receives: int = 5  # the sweep queue's maxReceiveCount (deploy/netguard-stack.yaml)
    max_exemption_days: int = 90  # how far ahead a tag exemption's netguard:exempt-until may be
    report_bucket: str | None = None
    report_prefix: str = "netguard/sweeps"
    security_hub: bool = False  # findings to Security Hub in ASFF (notify/securityhub.py)
    security_hub_docs_url: str | None = None  # the findings' Remediation.Recommendation.Url
    # Scans and sweeps evaluate jobs that finished if created within this many days (audit: what ran)
    job_lookback_days: int = 90

    def own_roles(self, home_account: str | None) -> set[tuple[str, str]]:
        """(account, role name) of the roles netguard's functions run as: NETGUARD_OWN_ROLE_ARNS (the
        stack sets it), else those `chalice deploy` creates in the home account (with autogen_policy
        off, one per function: `netguard-<stage>-<function>`)."""
        if self.own_role_arns:
            return {found for found in map(_role_arn, self.own_role_arns) if found}
        return {(home_account, f"netguard-{self.stage}-{name}") for name in FUNCTIONS} if home_account else set()

    def own_principal(self, arn: str | None, account: str, home_account: str | None) -> bool:
        """Is `arn` (a CloudTrail userIdentity.arn of a change in `account`) netguard itself? Only
        exactly: a session of one of its function roles in the home account (`own_roles`), or the
        member role netguard assumes in `account` (not the home account, where it assumes nothing), in
        the session name netguard gives it. A role merely named like ours, in any account, is not."""
        found = _assumed_role(arn)
        if found is None:
            return False
        role_account, role, session = found
        if (role_account, role) in self.own_roles(home_account):
            return True
        return (bool(self.member_role_name) and role == self.member_role_name and session == MEMBER_SESSION_NAME
                and role_account == account and account != home_account)

    def org_cap_binds(self, severity: str) -> bool:
        """Can the organization-wide cap refuse an action the accounts' own caps allow? Not when netguard
        covers so few accounts that their caps together stay within it (one account: the default):
        then its counter is not kept, one write less per action."""
        if self.organization:
            return True
        accounts = len(set(self.accounts) | {self.home_account or "home"})
        return accounts * self.max_actions[severity] > self.max_actions_org[severity]

    def region_allowed(self, region: str) -> bool:
        """May netguard act in `region`? Any, unless NETGUARD_REGIONS lists them."""
        return not self.regions or region in self.regions

    @property
    def organization(self) -> bool:
        return self.accounts == (ORGANIZATION,)

    def account_allowed(self, account: str) -> bool:
        """May netguard act in `account`? An explicit list is an allow-list; with `organization` the
        event bus policy admits only the organization's accounts; by default only the home account
        (when it is known)."""
        if self.organization:
            return True
        if self.accounts:
            return account in self.accounts or account == self.home_account
        return self.home_account is None or account == self.home_account

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        mode = env.get("NETGUARD_MODE", "enforce").strip().lower() or "enforce"
        if mode not in STAGE_MODES:
            raise ConfigError(f"NETGUARD_MODE: {mode!r} is not one of {', '.join(STAGE_MODES)}")
        return cls(
            mode=mode,
            control_modes=_parse_control_modes(env.get("NETGUARD_CONTROL_MODES", "")),
            ledger_table=env.get("NETGUARD_LEDGER_TABLE") or None,
            ledger_key_id=env.get("NETGUARD_LEDGER_KEY_ID", "").strip() or None,
            alert_topic_arn=env.get("NETGUARD_ALERT_TOPIC_ARN") or None,
            slack_webhook_param=env.get("NETGUARD_SLACK_WEBHOOK_PARAM") or None,
            slack_allowed_urls=_csv(env, "NETGUARD_SLACK_ALLOWED_URLS") or ("https://hooks.slack.com/",),
            policy_dir=env.get("NETGUARD_POLICY_DIR") or None,
            dedup_hours=_positive_int(env, "NETGUARD_DEDUP_HOURS", 24),
            ledger_retention_days=_positive_int(env, "NETGUARD_LEDGER_RETENTION_DAYS", 400),
            idempotency_hours=_positive_int(env, "NETGUARD_IDEMPOTENCY_HOURS", 24),
            stage=env.get("NETGUARD_STAGE", "").strip() or "dev",
            home_account=env.get("NETGUARD_HOME_ACCOUNT", "").strip() or None,
            accounts=_accounts(env),
            regions=_csv(env, "NETGUARD_REGIONS"),
            member_role_name=env.get("NETGUARD_MEMBER_ROLE_NAME", "").strip() or None,
            own_role_arns=_role_arns(env),
            member_external_id=env.get("NETGUARD_MEMBER_EXTERNAL_ID", "").strip() or None,
            recheck_queue_url=env.get("NETGUARD_RECHECK_QUEUE_URL") or None,
            recheck_max_attempts=_positive_int(env, "NETGUARD_RECHECK_MAX_ATTEMPTS", 8),
            recheck_delay_seconds=min(_positive_int(env, "NETGUARD_RECHECK_DELAY_SECONDS", 60), 900),
            sweep_queue_url=env.get("NETGUARD_SWEEP_QUEUE_URL") or None,
            sweep_chunk=_positive_int(env, "NETGUARD_SWEEP_CHUNK", 200),
            sweep_max_receives=_positive_int(env, "NETGUARD_SWEEP_MAX_RECEIVES", 5),
            max_actions=_limits(env, "NETGUARD_MAX_ACTIONS", 50),
            max_actions_org=_limits(env, "NETGUARD_MAX_ACTIONS_ORG", 250),
            action_window_minutes=_positive_int(env, "NETGUARD_ACTION_WINDOW_MINUTES", 60),
            read_concurrency=min(_positive_int(env, "NETGUARD_READ_CONCURRENCY", 8), 32),
            max_exemption_days=_positive_int(env, "NETGUARD_MAX_EXEMPTION_DAYS", 90),
            report_bucket=env.get("NETGUARD_REPORT_BUCKET", "").strip() or None,
            report_prefix=env.get("NETGUARD_REPORT_PREFIX", "").strip().strip("/") or "netguard/sweeps",
            security_hub=_switch(env, "NETGUARD_SECURITY_HUB"),
            security_hub_docs_url=_https_url(env, "NETGUARD_SECURITY_HUB_DOCS_URL"),
            job_lookback_days=_positive_int(env, "NETGUARD_JOB_LOOKBACK_DAYS", 90),
        )
