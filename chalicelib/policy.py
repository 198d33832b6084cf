"""Load and validate the baseline (policies/*.toml); resolve modes and exemptions.

Fail closed: an unknown key, check, parameter, remediation or resource type is a PolicyError that
names the file, the control id and the reason. Loading is cached per directory for the process.
"""
from __future__ import annotations

import datetime as dt
import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .actions.catalog import SPECS
from .checks import CHECKS
from .errors import PolicyError
from .model import (
    COMPLIANT,
    NON_COMPLIANT,
    NOT_APPLICABLE,
    SEVERITIES,
    Control,
    Resource,
    split_ids,
)
from .resources import BY_TYPE, EVALUATED

DEFAULT_POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"

MODES = ("enforce", "alert", "off")
REQUIRED_KEYS = {"id", "title", "severity", "resource_type", "mode", "check", "guidance"}
OPTIONAL_KEYS = {"params", "remediation", "peers", "applies_when", "examples", "allow_wildcard_exemption"}
EXAMPLE_KEYS = {"name", "expect", "state"}
EXEMPTION_KEYS = {"resource_id", "account", "controls", "until", "reason"}

CONFIG_RULE_KEYS = {"identifier", "name", "resource_types", "controls", "deploy", "parameters", "note"}
EXEMPT_TAG = "netguard:exempt"
EXEMPT_UNTIL_TAG = "netguard:exempt-until"
EXEMPT_REASON_TAG = "netguard:exempt-reason"


@dataclass(frozen=True)
class Example:
    control_id: str
    name: str
    expect: str
    state: Mapping[str, Any]


@dataclass(frozen=True)
class Exemption:
    resource_id: str
    controls: tuple[str, ...]
    until: dt.date | None
    reason: str
    source: str
    accounts: tuple[str, ...] = ()  # where it applies: a SageMaker name is reused from account to account


@dataclass(frozen=True)
class ConfigRule:
    """An AWS Config managed rule: which controls its NON_COMPLIANT results re-check, and whether (and
    with which parameters) the netguard stack deploys it."""

    identifier: str  # SAGEMAKER_NOTEBOOK_NO_DIRECT_INTERNET_ACCESS
    name: str  # sagemaker-notebook-no-direct-internet-access: also how conformance packs name it
    resource_types: tuple[str, ...]
    controls: tuple[str, ...]
    deploy: bool
    parameters: Mapping[str, str]
    source: str

    def matches(self, rule_name: str) -> bool:
        """Rule names carry the managed rule's name, with prefixes and suffixes added by whoever
        deployed it (`securityhub-...-a1b2c3`, `...-conformance-pack-xyz`, `netguard-...-prod`)."""
        return self.name in rule_name.lower()


@dataclass(frozen=True)
class Policy:
    controls: tuple[Control, ...]
    examples: tuple[Example, ...]
    exemptions: tuple[Exemption, ...]
    config_rules: tuple[ConfigRule, ...] = ()

    def config_rule_for(self, rule_name: str) -> ConfigRule | None:
        """The managed rule a Config rule name stands for (the longest matching name wins)."""
        found = [r for r in self.config_rules if r.matches(rule_name)]
        return max(found, key=lambda r: len(r.name)) if found else None

    def control(self, control_id: str) -> Control:
        for control in self.controls:
            if control.id == control_id:
                return control
        raise KeyError(control_id)

    def for_type(self, resource_type: str) -> list[Control]:
        return [c for c in self.controls if resource_type in c.resource_types]


def _fail(source: str, control_id: str | None, reason: str) -> PolicyError:
    where = f"{source}: control {control_id}" if control_id else source
    return PolicyError(f"{where}: {reason}")


def _check_fields(source: str, cid: str | None, rtypes: list[str], params: Mapping[str, Any],
                  applies_when: Mapping[str, Any] | None) -> None:
    """A field a control names (params.field, applies_when.field) must be one its types' collectors emit
    (resources.<type>.state_fields): a misspelt field would otherwise read as absent, and the control
    would pass or fail on every resource without anyone noticing."""
    named = [("params.field", params.get("field")), ("applies_when.field", (applies_when or {}).get("field"))]
    for where, name in named:
        if name is None:
            continue
        if not isinstance(name, str):
            raise _fail(source, cid, f"{where} must be a string")
        lacking = [t for t in rtypes if name not in BY_TYPE[t].state_fields]
        if lacking:
            raise _fail(source, cid, f"{where} {name!r} is not a state field of {', '.join(lacking)} (fields: "
                                     f"{', '.join(sorted(BY_TYPE[lacking[0]].state_fields))})")


def _parse_control(raw: Any, source: str) -> tuple[Control, list[Example]]:
    if not isinstance(raw, dict):
        raise _fail(source, None, "each [[controls]] entry must be a table")
    cid = raw.get("id") if isinstance(raw.get("id"), str) else None
    missing = REQUIRED_KEYS - raw.keys()
    if missing:
        raise _fail(source, cid, f"missing keys: {', '.join(sorted(missing))}")
    unknown = raw.keys() - REQUIRED_KEYS - OPTIONAL_KEYS
    if unknown:
        raise _fail(source, cid, f"unknown keys: {', '.join(sorted(unknown))}")
    for key in ("id", "title", "guidance", "check"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise _fail(source, cid, f"{key} must be a non-empty string")
    rtypes = raw["resource_type"] if isinstance(raw["resource_type"], list) else [raw["resource_type"]]
    if raw["severity"] not in SEVERITIES:
        raise _fail(source, cid, f"severity {raw['severity']!r} is not one of {', '.join(SEVERITIES)}")
    if raw["mode"] not in MODES:
        raise _fail(source, cid, f"mode {raw['mode']!r} is not one of {', '.join(MODES)}")
    unsupported = [t for t in rtypes if t not in EVALUATED]
    if not rtypes or unsupported:
        raise _fail(source, cid, f"unsupported resource_type {unsupported or rtypes!r} (known: {', '.join(EVALUATED)})")
    spec = CHECKS.get(raw["check"])
    if spec is None:
        raise _fail(source, cid, f"unknown check {raw['check']!r} (known: {', '.join(sorted(CHECKS))})")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise _fail(source, cid, "params must be a table")
    if spec.required - params.keys():
        raise _fail(source, cid,
                    f"check {raw['check']} needs params: {', '.join(sorted(spec.required - params.keys()))}")
    remediation = raw.get("remediation")
    action = None
    if remediation is not None:
        action = SPECS.get(remediation)
        if action is None:
            raise _fail(source, cid, f"unknown remediation {remediation!r} (known: {', '.join(sorted(SPECS))})")
        foreign = [t for t in rtypes if t not in action.resource_types]
        if foreign:
            raise _fail(source, cid, f"remediation {remediation} acts on {', '.join(action.resource_types)}, "
                                     f"not {', '.join(foreign)}")
    unknown_params = params.keys() - spec.required - spec.optional - (action.params if action else frozenset())
    if unknown_params:
        raise _fail(source, cid, f"check {raw['check']}{f' and remediation {remediation}' if action else ''} "
                                 f"do not take params: {', '.join(sorted(unknown_params))}")
    applies_when = raw.get("applies_when")
    if applies_when is not None and (
        not isinstance(applies_when, dict) or set(applies_when) != {"field", "any_of"}
        or not isinstance(applies_when["any_of"], list)
    ):
        raise _fail(source, cid, "applies_when must be {field = '...', any_of = [...]}")
    _check_fields(source, cid, rtypes, params, applies_when)
    peers = raw.get("peers", [])
    if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
        raise _fail(source, cid, "peers must be a list of strings")
    wildcard = raw.get("allow_wildcard_exemption", raw["severity"] != "critical")
    if not isinstance(wildcard, bool):
        raise _fail(source, cid, "allow_wildcard_exemption must be true or false")
    control = Control(
        id=raw["id"], title=raw["title"].strip(), severity=raw["severity"], resource_types=tuple(rtypes),
        mode=raw["mode"], check=raw["check"], params=params, remediation=remediation,
        guidance=" ".join(raw["guidance"].split()), peers=tuple(peers), applies_when=applies_when, source=source,
        wildcard_exemption=wildcard,
    )
    examples = []
    for ex in raw.get("examples", []):
        if not isinstance(ex, dict) or set(ex) != EXAMPLE_KEYS:
            raise _fail(source, cid, f"each example needs exactly: {', '.join(sorted(EXAMPLE_KEYS))}")
        if ex["expect"] not in (COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE):
            raise _fail(source, cid,
                        f"example {ex['name']!r}: expect must be COMPLIANT, NON_COMPLIANT or NOT_APPLICABLE")
        examples.append(Example(cid or "", ex["name"], ex["expect"], ex["state"]))
    return control, examples


def _parse_config_rule(raw: Any, source: str, known_controls: Mapping[str, Control]) -> ConfigRule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: each [[config_rules]] entry must be a table")
    ident = raw.get("identifier")
    where = f"{source}: config rule {ident}"
    missing = {"identifier", "name", "resource_types", "controls"} - raw.keys()
    if missing or raw.keys() - CONFIG_RULE_KEYS:
        raise PolicyError(f"{where}: needs identifier, name, resource_types, controls (optional deploy, parameters, "
                          f"note); missing {sorted(missing)}, unknown {sorted(raw.keys() - CONFIG_RULE_KEYS)}")
    if not isinstance(ident, str) or not ident.isupper() or not isinstance(raw["name"], str) or not raw["name"]:
        raise PolicyError(f"{where}: identifier must be the managed rule's UPPER_CASE id and name its rule name")
    rtypes, controls = raw["resource_types"], raw["controls"]
    if not isinstance(rtypes, list) or not rtypes or any(t not in EVALUATED for t in rtypes):
        raise PolicyError(f"{where}: resource_types must list supported types, got {rtypes!r}")
    if not isinstance(controls, list) or not controls or any(c not in known_controls for c in controls):
        raise PolicyError(f"{where}: controls must list known control ids, got {controls!r}")
    for cid in controls:
        if not set(known_controls[cid].resource_types) & set(rtypes):
            raise PolicyError(f"{where}: control {cid} does not evaluate {', '.join(rtypes)}")
    params = raw.get("parameters", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise PolicyError(f"{where}: parameters must be a table of strings (Config's InputParameters)")
    deploy = raw.get("deploy", True)
    if not isinstance(deploy, bool):
        raise PolicyError(f"{where}: deploy must be true or false")
    return ConfigRule(ident, raw["name"].lower(), tuple(rtypes), tuple(controls), deploy, params, source)


def _parse_date(value: Any, source: str, what: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise PolicyError(f"{source}: {what}: {value!r} is not a YYYY-MM-DD date") from exc


def _parse_exemption(raw: Any, source: str) -> Exemption:
    needed = {"resource_id", "account", "controls", "reason"}
    if not isinstance(raw, dict) or not needed <= raw.keys() or raw.keys() - EXEMPTION_KEYS:
        raise PolicyError(f"{source}: each [[exemptions]] needs resource_id, account, controls, reason (and optional "
                          "until)")
    what = f"exemption for {raw['resource_id']}"
    controls = raw["controls"]
    if not isinstance(controls, list) or not all(isinstance(c, str) for c in controls):
        raise PolicyError(f"{source}: {what}: controls must be a list of ids or ['*']")
    accounts = raw["account"] if isinstance(raw["account"], list) else [raw["account"]]
    if not accounts or not all(isinstance(a, str) and len(a) == 12 and a.isdigit() and a.isascii() for a in accounts):
        raise PolicyError(f"{source}: {what}: account must be the 12-digit account id it applies in (or a list of "
                          f"them), got {raw['account']!r}")
    if not isinstance(raw["reason"], str) or not raw["reason"].strip():
        raise PolicyError(f"{source}: {what}: reason must say why")
    until = _parse_date(raw["until"], source, what) if "until" in raw else None
    return Exemption(str(raw["resource_id"]), tuple(controls), until, raw["reason"].strip(), source, tuple(accounts))


def load_policy(policy_dir: str | None = None) -> Policy:
    """Load every *.toml under the directory (default: the deployed `policies/`), once per directory."""
    return _load_policy(str(Path(policy_dir).resolve()) if policy_dir else str(DEFAULT_POLICY_DIR))


@functools.lru_cache(maxsize=8)
def _load_policy(policy_dir: str) -> Policy:
    root = Path(policy_dir)
    files = sorted(root.glob("*.toml"))
    if not files:
        raise PolicyError(f"{root}: no policy files (*.toml) found")
    controls: list[Control] = []
    examples: list[Example] = []
    exemptions: list[Exemption] = []
    raw_rules: list[tuple[Any, str]] = []
    seen: dict[str, str] = {}
    for path in files:
        source = path.name
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
        unknown = data.keys() - {"controls", "exemptions", "config_rules"}
        if unknown:
            raise PolicyError(f"{source}: unknown top-level keys: {', '.join(sorted(unknown))}")
        for raw in data.get("controls", []):
            control, control_examples = _parse_control(raw, source)
            if control.id in seen:
                raise _fail(source, control.id, f"duplicate id (also in {seen[control.id]})")
            seen[control.id] = source
            controls.append(control)
            examples.extend(control_examples)
        exemptions.extend(_parse_exemption(raw, source) for raw in data.get("exemptions", []))
        raw_rules.extend((raw, source) for raw in data.get("config_rules", []))
    by_id = {c.id: c for c in controls}
    for ex in exemptions:
        unknown_ids = [c for c in ex.controls if c != "*" and c not in seen]
        if unknown_ids:
            raise PolicyError(f"{ex.source}: exemption for {ex.resource_id} names unknown controls: "
                              f"{', '.join(unknown_ids)}")
    rules = tuple(_parse_config_rule(raw, source, by_id) for raw, source in raw_rules)
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise PolicyError(f"config rules: duplicate names {sorted({n for n in names if names.count(n) > 1})}")
    return Policy(tuple(controls), tuple(examples), tuple(exemptions), rules)


@dataclass(frozen=True)
class ExemptionStatus:
    exempt: bool
    detail: str  # why exempt, or a note on an exemption that was ignored, and why ("" if none)


DEFAULT_MAX_EXEMPTION_DAYS = 90


def _wildcard_refused(policy: Policy, control_id: str) -> bool:
    try:
        return not policy.control(control_id).wildcard_exemption
    except KeyError:
        return True


def _tag_exemption(policy: Policy, control_id: str, tags: Mapping[str, str], today: dt.date,
                   max_days: int) -> ExemptionStatus | None:
    """The tag exemption of one control: None when the tags do not name it; else exempt, or a note on
    why it is ignored. Anyone who can tag a resource can write these tags, so an exemption needs a
    reason and an expiry within `max_days` of today, and `*` does not cover a control whose policy
    refuses wildcards (critical ones, unless allow_wildcard_exemption = true): name it."""
    value = tags.get(EXEMPT_TAG)
    if value is None:
        return None
    listed = split_ids(value)  # "NB.1 SG.1": SageMaker tag values cannot hold commas
    if control_id not in listed:
        if "*" not in listed:
            return None
        if _wildcard_refused(policy, control_id):
            return ExemptionStatus(False, f"ignored tag exemption: {EXEMPT_TAG}=* does not cover {control_id}; "
                                          f"name it to exempt from it")
    reason = (tags.get(EXEMPT_REASON_TAG) or "").strip()
    if not reason:
        return ExemptionStatus(False, f"ignored tag exemption: no {EXEMPT_REASON_TAG}")
    until_raw = tags.get(EXEMPT_UNTIL_TAG)
    if until_raw is None:
        return ExemptionStatus(False, f"ignored tag exemption: no {EXEMPT_UNTIL_TAG} (YYYY-MM-DD, within {max_days} "
                                      "days)")
    try:
        until = dt.date.fromisoformat(until_raw.strip())
    except ValueError:
        return ExemptionStatus(False, f"ignored tag exemption: {EXEMPT_UNTIL_TAG}={until_raw!r} is not YYYY-MM-DD")
    if until < today:
        return ExemptionStatus(False, f"ignored tag exemption: expired on {until}")
    if until > today + dt.timedelta(days=max_days):
        return ExemptionStatus(False, f"ignored tag exemption: {EXEMPT_UNTIL_TAG}={until} is more than {max_days} "
                                      "days away (NETGUARD_MAX_EXEMPTION_DAYS)")
    return ExemptionStatus(True, f"tag {EXEMPT_TAG}={value} until {until} ({reason})")


def exemption_for(policy: Policy, control_id: str, resource: Resource, today: dt.date,
                  max_days: int = DEFAULT_MAX_EXEMPTION_DAYS) -> ExemptionStatus:
    """Tag exemptions (netguard:exempt, -until, -reason: `_tag_exemption`) and policy-file exemptions
    (by resource id and account; `*` as for tags) for one control."""
    notes: list[str] = []
    tagged = _tag_exemption(policy, control_id, resource.tags, today, max_days)
    if tagged is not None:
        if tagged.exempt:
            return tagged
        notes.append(tagged.detail)
    for ex in policy.exemptions:
        if ex.resource_id not in (resource.ref.resource_id, resource.arn) or resource.ref.account not in ex.accounts:
            continue
        if control_id not in ex.controls:
            if "*" not in ex.controls:
                continue
            if _wildcard_refused(policy, control_id):
                notes.append(f"ignored policy exemption in {ex.source}: * does not cover {control_id}; name it")
                continue
        if ex.until is None or today <= ex.until:
            until = f" until {ex.until}" if ex.until else ""
            return ExemptionStatus(True, f"policy exemption in {ex.source}{until} ({ex.reason})")
        notes.append(f"ignored policy exemption in {ex.source}: expired on {ex.until}")
    return ExemptionStatus(False, "; ".join(notes))
