"""What `netguard check` reads from a file: the declared resources, in CloudFormation's terms.

A Terraform plan is translated into the same terms (types and property names), so one mapper turns both
into the engine's states. A reference the file resolves is a `Ref` to another declared resource; what it
does not settle is an `unknown.Unknown`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_FILE_BYTES = 5 * 1024 * 1024  # CloudFormation takes templates of 1 MB at most; plans are larger
MAX_DEPTH = 64  # nesting of a template's values, intrinsics included
MAX_NODES = 2_000_000  # values visited while resolving (aliases can make a small file a large tree)


class FileError(Exception):
    """The file cannot be read as a template or plan: the message names the file and what is wrong."""


@dataclass(frozen=True)
class Ref:
    """A reference to a resource declared in the same file (Ref, Fn::GetAtt, a Terraform reference)."""

    target: str
    attribute: str | None = None


@dataclass
class Declared:
    """One resource of the file: `id` is its logical id (CloudFormation) or address (Terraform)."""

    id: str
    type: str  # the CloudFormation type (Terraform types are translated)
    properties: dict[str, Any]
    line: int | None = None  # where the file declares it, when known
    source_type: str = ""  # the type as the file names it (aws_subnet, AWS::EC2::Subnet)
    condition: Any = None  # an Unknown when the resource exists only if a condition the file leaves open holds


@dataclass
class Parsed:
    path: str
    kind: str  # "cloudformation" | "terraform-plan"
    resources: dict[str, Declared] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was read but not evaluated, said in the report
