"""Configuration from the environment, read once per invocation (never at import).

Every variable is documented in README.md ("Configuration").
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from .errors import ConfigError

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


ACCOUNT_ID_LENGTH = 12
ORGANIZATION = "organization"


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
    alert_topic_arn: str | None = None
    slack_webhook_param: str | None = None
    policy_dir: str | None = None
    dedup_hours: int = 24
    ledger_retention_days: int = 400
    idempotency_hours: int = 24
    stage: str = "dev"
    home_account: str | None = None  # the account netguard runs in (the template sets it)
    accounts: tuple[str, ...] = ()  # () = the home account only; ("organization",) = every active account
    regions: tuple[str, ...] = ()  # () = the function's own region
    member_role_name: str | None = None
    member_external_id: str | None = None
    recheck_queue_url: str | None = None
    recheck_max_attempts: int = 8
    recheck_delay_seconds: int = 60
    sweep_queue_url: str | None = None
    sweep_chunk: int = 200
    read_concurrency: int = 8
    max_actions: int = 50  # enforce actions per account per window (blast radius)
    action_window_minutes: int = 60
    sweep_max_receives: int = 5  # the sweep queue's maxReceiveCount (deploy/netguard-stack.yaml)
    report_bucket: str | None = None
    report_prefix: str = "netguard/sweeps"

    def own_principal(self, arn: str | None) -> bool:
        """Is `arn` netguard itself: one of this stage's function roles (`netguard-<stage>` or
        `netguard-<stage>-...`, as Chalice and the packaged stack name them), or the member role
        in the session netguard opens (aws.ROLE_SESSION_NAME)?"""
        if not arn or ":assumed-role/" not in arn:
            return False
        role, _, session = arn.split(":assumed-role/", 1)[1].partition("/")
        stage_role = f"netguard-{self.stage}"
        if role == stage_role or role.startswith(stage_role + "-"):
            return True
        return bool(self.member_role_name) and role == self.member_role_name and session == "netguard"

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
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        mode = env.get("NETGUARD_MODE", "enforce").strip().lower() or "enforce"
        if mode not in STAGE_MODES:
            raise ConfigError(f"NETGUARD_MODE: {mode!r} is not one of {', '.join(STAGE_MODES)}")
        return cls(
            mode=mode,
            control_modes=_parse_control_modes(env.get("NETGUARD_CONTROL_MODES", "")),
            ledger_table=env.get("NETGUARD_LEDGER_TABLE") or None,
            alert_topic_arn=env.get("NETGUARD_ALERT_TOPIC_ARN") or None,
            slack_webhook_param=env.get("NETGUARD_SLACK_WEBHOOK_PARAM") or None,
            policy_dir=env.get("NETGUARD_POLICY_DIR") or None,
            dedup_hours=_positive_int(env, "NETGUARD_DEDUP_HOURS", 24),
            ledger_retention_days=_positive_int(env, "NETGUARD_LEDGER_RETENTION_DAYS", 400),
            idempotency_hours=_positive_int(env, "NETGUARD_IDEMPOTENCY_HOURS", 24),
            stage=env.get("NETGUARD_STAGE", "").strip() or "dev",
            home_account=env.get("NETGUARD_HOME_ACCOUNT", "").strip() or None,
            accounts=_accounts(env),
            regions=_csv(env, "NETGUARD_REGIONS"),
            member_role_name=env.get("NETGUARD_MEMBER_ROLE_NAME", "").strip() or None,
            member_external_id=env.get("NETGUARD_MEMBER_EXTERNAL_ID", "").strip() or None,
            recheck_queue_url=env.get("NETGUARD_RECHECK_QUEUE_URL") or None,
            recheck_max_attempts=_positive_int(env, "NETGUARD_RECHECK_MAX_ATTEMPTS", 8),
            recheck_delay_seconds=min(_positive_int(env, "NETGUARD_RECHECK_DELAY_SECONDS", 60), 900),
            sweep_queue_url=env.get("NETGUARD_SWEEP_QUEUE_URL") or None,
            sweep_chunk=_positive_int(env, "NETGUARD_SWEEP_CHUNK", 200),
            sweep_max_receives=_positive_int(env, "NETGUARD_SWEEP_MAX_RECEIVES", 5),
            max_actions=_positive_int(env, "NETGUARD_MAX_ACTIONS", 50),
            action_window_minutes=_positive_int(env, "NETGUARD_ACTION_WINDOW_MINUTES", 60),
            read_concurrency=min(_positive_int(env, "NETGUARD_READ_CONCURRENCY", 8), 32),
            report_bucket=env.get("NETGUARD_REPORT_BUCKET", "").strip() or None,
            report_prefix=env.get("NETGUARD_REPORT_PREFIX", "").strip().strip("/") or "netguard/sweeps",
        )
