"""CloudFormation templates (YAML or JSON; `cdk synth` output and SAM are CloudFormation too) read into
declared resources, with the intrinsic functions resolved as far as the template resolves them.

Ref and Fn::GetAtt to a resource of the template become a `Ref` (the mapper follows it); parameters take
`--parameter` values, else their Default; conditions, Fn::If, Fn::Sub, Fn::Join, Fn::Select, Fn::FindInMap,
Fn::GetAZs are evaluated when their inputs are known. What the template leaves to deploy time (a
parameter without a default, an SSM parameter, Fn::ImportValue, the account, the stack name, an attribute
of a created resource inside a string) is `Unknown`, with the property path and why.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from .model import MAX_DEPTH, MAX_NODES, Declared, FileError, Parsed, Ref
from .unknown import Unknown, is_unknown, reason_of

NO_VALUE = object()  # AWS::NoValue: the property is left out
# Declared, but what they bring is elsewhere: said in the report, not evaluated
NOT_FOLLOWED = {"AWS::CloudFormation::Stack": "is a nested stack: check its template too",
                "AWS::Serverless::Application": "is a nested application: check its template too",
                "AWS::EFS::MountTarget": "is not evaluated before deploy (EFS.1 applies to Studio's own, "
                                         "which Studio creates)"}
_SHORT = ("Ref", "Condition")  # YAML short forms that are not Fn::
_FUNCTIONS = ("And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "GetAtt", "If", "ImportValue", "Join",
              "Length", "Not", "Or", "Select", "Split", "Sub", "ToJsonString", "Transform")


_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it


class _Loader(_BASE):
    """YAML as CloudFormation reads it: the short forms (!Ref, !GetAtt, !Sub, ...), dates left as strings
    (a policy's Version: 2012-10-17), and a duplicate key refused (which one would AWS take?)."""

    yaml_implicit_resolvers = {key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
                               for key, resolvers in _BASE.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key if isinstance(key, (str, int, float, bool)) else id(key))
        return super().construct_mapping(node, deep=deep)


def _short_form(name: str) -> Any:
    def construct(loader: _Loader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:
            raise yaml.constructor.ConstructorError(None, None, f"!{name} of an unexpected node", node.start_mark)
        return {name if name in _SHORT else f"Fn::{name}": value}
    return construct


for _name in (*_SHORT, *_FUNCTIONS):
    _Loader.add_constructor(f"!{_name}", _short_form(_name))


def load_document(path: str, text: str) -> tuple[Any, dict[str, int]]:
    """The template as data, and the line of each resource's logical id."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except RecursionError as exc:
            raise FileError(f"{path}: nested too deeply") from exc
        except ValueError as exc:
            raise FileError(f"{path}: not valid JSON: {exc}") from exc
        try:  # the logical ids' lines from the document's structure (JSON is YAML), else by search
            return data, _yaml_lines(yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        except (yaml.YAMLError, RecursionError):
            return data, _json_lines(text, data)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except RecursionError as exc:
        raise FileError(f"{path}: nested too deeply") from exc
    except yaml.YAMLError as exc:
        raise FileError(f"{path}: not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return data, _yaml_lines(node)


def _yaml_lines(node: Any) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    for key, value in node.value:
        if getattr(key, "value", None) == "Resources" and isinstance(value, yaml.MappingNode):
            return {str(k.value): k.start_mark.line + 1 for k, _ in value.value}
    return {}


def _json_lines(text: str, data: Any) -> dict[str, int]:
    start = text.find('"Resources"')
    if start < 0 or not isinstance(data, Mapping) or not isinstance(data.get("Resources"), Mapping):
        return {}
    lines = {}
    for logical_id in data["Resources"]:
        found = re.compile(r'"' + re.escape(str(logical_id)) + r'"\s*:').search(text, start)
        if found:
            lines[str(logical_id)] = text.count("\n", 0, found.start()) + 1
    return lines


def is_template(data: Any) -> bool:
    return isinstance(data, Mapping) and isinstance(data.get("Resources"), Mapping)


class Resolver:
    """Intrinsic functions of one template, resolved with its parameters, conditions and mappings."""

    def __init__(self, path: str, template: Mapping[str, Any], parameters: Mapping[str, str],
                 region: str | None) -> None:
        self.path = path
        self.template = template
        self.resources = {str(k) for k in template.get("Resources") or {}}
        self.mappings = template.get("Mappings") or {}
        self.conditions = template.get("Conditions") or {}
        self._condition_values: dict[str, Any] = {}
        self.nodes = 0
        self.values: dict[str, Any] = {
            "AWS::NoValue": NO_VALUE, "AWS::URLSuffix": "amazonaws.com", "AWS::NotificationARNs": [],
            "AWS::AccountId": Unknown("AWS::AccountId: the account the stack is deployed to"),
            "AWS::StackName": Unknown("AWS::StackName: given at deploy"),
            "AWS::StackId": Unknown("AWS::StackId: known after deploy"),
            "AWS::Region": region if region else Unknown("AWS::Region: the region the stack is deployed to "
                                                          "(pass --region)"),
            "AWS::Partition": _partition(region) if region else Unknown("AWS::Partition: depends on the region")}
        declared = template.get("Parameters") or {}
        if not isinstance(declared, Mapping):
            raise FileError(f"{path}: Parameters is not a mapping")
        unknown_given = set(parameters) - {str(p) for p in declared}
        if unknown_given:
            raise FileError(f"{path}: --parameter names {', '.join(sorted(unknown_given))}, which the template "
                            "does not declare")
        for name, spec in declared.items():
            self.values[str(name)] = self._parameter(str(name), spec if isinstance(spec, Mapping) else {},
                                                     parameters.get(str(name)))

    def _parameter(self, name: str, spec: Mapping[str, Any], given: str | None) -> Any:
        ptype = str(spec.get("Type", "String"))
        if ptype.startswith("AWS::SSM::Parameter::Value"):
            return Unknown(f"parameter {name}: read from SSM Parameter Store at deploy")
        value = given if given is not None else spec.get("Default")
        if value is None:
            return Unknown(f"parameter {name} has no default (pass --parameter {name}=VALUE)")
        if ptype.startswith("List<") or ptype == "CommaDelimitedList":
            return [v.strip() for v in str(value).split(",")] if not isinstance(value, list) else value
        return str(value) if not isinstance(value, str) else value

    def condition(self, name: str, depth: int = 0) -> Any:
        """True, False or an Unknown."""
        if name not in self._condition_values:
            if name not in self.conditions:
                raise FileError(f"{self.path}: condition {name} is not declared")
            self._condition_values[name] = Unknown(f"condition {name} refers to itself")
            self._condition_values[name] = self._truth(self.resolve(self.conditions[name], f"Conditions.{name}",
                                                                    depth + 1), f"condition {name}")
        return self._condition_values[name]

    @staticmethod
    def _truth(value: Any, what: str) -> Any:
        if is_unknown(value) or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return Unknown(f"{what} is not a boolean")

    def resolve(self, value: Any, path: str, depth: int = 0) -> Any:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise FileError(f"{self.path}: {path}: nested too deeply or too large to resolve")
        if isinstance(value, list):
            out = [self.resolve(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" or (isinstance(key, str) and key.startswith("Fn::")) or (
                    key == "Condition" and isinstance(arg, str) and arg in self.conditions):
                return self._function(str(key), arg, path, depth)
        out_map = {str(k): self.resolve(v, f"{path}.{k}", depth + 1) for k, v in value.items()}
        return {k: v for k, v in out_map.items() if v is not NO_VALUE}

    def _function(self, name: str, arg: Any, path: str, depth: int) -> Any:  # noqa: C901 - one case per function
        if name == "Ref":
            if not isinstance(arg, str):
                raise FileError(f"{self.path}: {path}: Ref takes a name")
            if arg in self.values:
                return self.values[arg]
            if arg in self.resources:
                return Ref(arg)
            raise FileError(f"{self.path}: {path}: Ref to {arg}, which is neither a parameter nor a resource")
        if name == "Condition":
            return self.condition(str(arg), depth)
        if name == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else arg
            if not (isinstance(parts, list) and len(parts) == 2 and str(parts[0]) in self.resources):
                raise FileError(f"{self.path}: {path}: Fn::GetAtt names no resource of the template: {arg!r}")
            attribute = self.resolve(parts[1], path, depth + 1)
            if is_unknown(attribute):
                return attribute
            return Ref(str(parts[0]), str(attribute))
        if name == "Fn::If":
            if not (isinstance(arg, list) and len(arg) == 3):
                raise FileError(f"{self.path}: {path}: Fn::If takes [condition, then, else]")
            holds = self.condition(str(arg[0]), depth)
            if is_unknown(holds):
                # whichever way the condition goes: the same value is known
                both = [self.resolve(branch, path, depth + 1) for branch in arg[1:]]
                if not any(_has_unknown(b) for b in both) and _same(both[0], both[1]):
                    return both[0]
                return Unknown(f"{path}: Fn::If on condition {arg[0]}: {reason_of(holds)}")
            return self.resolve(arg[1] if holds else arg[2], path, depth + 1)
        args = self.resolve(arg, path, depth + 1)
        if name in ("Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not"):
            return _logic(name, args, path)
        if name == "Fn::Sub":
            return self._sub(args, path)
        if name == "Fn::Join":
            if not (isinstance(args, list) and len(args) == 2 and isinstance(args[1], list)):
                return Unknown(f"{path}: Fn::Join of a list the template does not give")
            parts = [args[0], *args[1]]
            bad = next((p for p in parts if not isinstance(p, str)), None)
            if bad is not None:
                return Unknown(f"{path}: Fn::Join of {_describe(bad)}")
            return str(args[0]).join(args[1])
        if name == "Fn::Select":
            if isinstance(args, list) and len(args) == 2 and isinstance(args[1], Zones):
                return args[1].zone(args[0], path)
            if isinstance(args, list) and len(args) == 2 and isinstance(args[1], list) and str(args[0]).isdigit() \
                    and int(args[0]) < len(args[1]):
                return args[1][int(args[0])]
            given = args[1] if isinstance(args, list) and len(args) == 2 and is_unknown(args[1]) else None
            source = reason_of(given) if given is not None else "a list the template does not give"
            return Unknown(f"{path}: Fn::Select from {source}")
        if name == "Fn::GetAZs":
            region = args if isinstance(args, str) and args else self.values["AWS::Region"]
            return Zones(region if isinstance(region, str) else "the stack's region")
        if name == "Fn::FindInMap":
            return self._find_in_map(args, path)
        if name == "Fn::ImportValue":
            return Unknown(f"{path}: Fn::ImportValue (another stack's export)")
        if name == "Fn::Split" and isinstance(args, list) and len(args) == 2 and all(isinstance(a, str) for a in args):
            return args[1].split(args[0])
        return Unknown(f"{path}: {name} is evaluated by CloudFormation at deploy")

    def _sub(self, args: Any, path: str) -> Any:
        text, variables = (args[0], args[1]) if isinstance(args, list) and len(args) == 2 else (args, {})
        if not isinstance(text, str) or not isinstance(variables, Mapping):
            return Unknown(f"{path}: Fn::Sub of a string the template does not give")
        missing: list[str] = []

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif name in self.values:
                value = self.values[name]
            elif name.split(".", 1)[0] in self.resources:
                value = Unknown(f"{name}: known after deploy")
            else:
                raise FileError(f"{self.path}: {path}: Fn::Sub names ${{{name}}}, which the template does not declare")
            if isinstance(value, str):
                return value
            missing.append(reason_of(value) if is_unknown(value) else f"{name} (not a string)")
            return ""

        result = re.sub(r"\$\{([^}]*)\}", replace, text)
        return Unknown(f"{path}: Fn::Sub of {missing[0]}") if missing else result

    def _find_in_map(self, args: Any, path: str) -> Any:
        if not (isinstance(args, list) and len(args) >= 3):
            raise FileError(f"{self.path}: {path}: Fn::FindInMap takes [map, key, key]")
        bad = next((a for a in args[:3] if not isinstance(a, str)), None)
        if bad is not None:
            return Unknown(f"{path}: Fn::FindInMap with {_describe(bad)}")
        found = ((self.mappings.get(args[0]) or {}).get(args[1]) or {}).get(args[2])
        if found is None:
            return Unknown(f"{path}: Fn::FindInMap {'/'.join(args[:3])} is not in the template's Mappings")
        return found


class Zones:
    """Fn::GetAZs: the region's zones. Their names are the account's, but distinct indices are distinct
    zones, which is all the zone-span controls ask."""

    def __init__(self, region: str) -> None:
        self.region = region

    def zone(self, index: Any, path: str) -> Any:
        if not str(index).isdigit():
            return Unknown(f"{path}: Fn::Select of an index the template does not give")
        return f"zone #{int(index) + 1} of {self.region}"


def _has_unknown(value: Any, depth: int = 0) -> bool:
    if is_unknown(value):
        return True
    if depth > MAX_DEPTH:
        return True
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else ()
    return any(_has_unknown(v, depth + 1) for v in items)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and json.dumps(a, sort_keys=True, default=repr) == json.dumps(b, sort_keys=True,
                                                                                          default=repr)


def _partition(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _describe(value: Any) -> str:
    return reason_of(value) if is_unknown(value) else f"a {type(value).__name__} (not a string)"


def _logic(name: str, args: Any, path: str) -> Any:
    if not isinstance(args, list):
        return Unknown(f"{path}: {name} takes a list")
    unknown = next((a for a in args if is_unknown(a)), None)
    if name == "Fn::Equals":
        if unknown is not None:
            return unknown
        return len(args) == 2 and str(args[0]) == str(args[1]) if not isinstance(args[0], list) else args[0] == args[1]
    truths = [Resolver._truth(a, path) for a in args]
    first_unknown = next((t for t in truths if is_unknown(t)), None)
    if name == "Fn::Not":
        return truths[0] if is_unknown(truths[0]) else not truths[0]
    decisive = name == "Fn::Or"  # a True decides Fn::Or, a False Fn::And, whatever the unknowns
    if any(t is decisive for t in truths):
        return decisive
    return first_unknown if first_unknown is not None else not decisive


def parse_template(path: str, data: Mapping[str, Any], lines: Mapping[str, int], parameters: Mapping[str, str],
                   region: str | None) -> Parsed:
    resolver = Resolver(path, data, parameters, region)
    parsed = Parsed(path, "cloudformation")
    function_globals = (data.get("Globals") or {}).get("Function") if isinstance(data.get("Globals"), Mapping) else None
    for logical_id, resource in (data.get("Resources") or {}).items():
        if not isinstance(resource, Mapping) or not isinstance(resource.get("Type"), str):
            raise FileError(f"{path}: Resources.{logical_id} has no Type")
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(function_globals, Mapping):
            # SAM's Globals: the function's own properties win
            resource = {**resource, "Properties": {**function_globals, **(resource.get("Properties") or {})}}
        condition: Any = None
        if "Condition" in resource:
            holds = resolver.condition(str(resource["Condition"]))
            if holds is False:
                continue
            if is_unknown(holds):
                condition = Unknown(f"{logical_id} is created only if condition {resource['Condition']} holds: "
                                    f"{reason_of(holds)}")
        if resource["Type"] in NOT_FOLLOWED:
            parsed.notes.append(f"{path}: {logical_id} ({resource['Type']}) {NOT_FOLLOWED[resource['Type']]}")
        props = resolver.resolve(resource.get("Properties") or {}, f"{logical_id}.Properties")
        if not isinstance(props, dict):
            props = {}
        parsed.resources[str(logical_id)] = Declared(str(logical_id), resource["Type"], props,
                                                     lines.get(str(logical_id)), resource["Type"], condition)
    return parsed
