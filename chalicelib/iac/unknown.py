"""Values a file does not settle, and the engine's evaluation run so that it never guesses them.

An `Unknown` stands where the state would hold a value the file leaves open (a parameter without a default,
an imported value, an attribute only known after apply). Any use a check could base a verdict on (truth,
comparison, hashing, iteration, attribute or item access, conversion) raises `UnknownValue`, which
`evaluate_known` turns into NOT_APPLICABLE with the reason naming the property. A check that merely copies
an unknown into its evidence is NOT_APPLICABLE too: its verdict did not look at the value.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from ..evaluate import evaluate_state
from ..model import NOT_APPLICABLE, Control
from .model import Ref

UNKNOWN = "unknown before deploy"  # how a NOT_APPLICABLE reason says the file left the value open


class UnknownValue(Exception):
    """A check used a value the file does not settle."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unknown:
    """A value known only at deploy time (or never from this file). `reason` names the property and why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        object.__setattr__(self, "reason", reason)

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise UnknownValue(object.__getattribute__(self, "reason"))

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _refuse
    __iter__ = __len__ = __contains__ = __getitem__ = __int__ = __float__ = __index__ = _refuse
    __add__ = __radd__ = __str__ = __format__ = __setattr__ = _refuse

    def __getattr__(self, name: str) -> NoReturn:
        raise UnknownValue(object.__getattribute__(self, "reason"))

    def __repr__(self) -> str:
        return f"<unknown: {object.__getattribute__(self, 'reason')}>"


def is_unknown(value: Any) -> bool:
    return type(value) is Unknown


def reason_of(value: Any) -> str:
    return str(object.__getattribute__(value, "reason"))


def first_unknown(value: Any, depth: int = 0) -> Unknown | None:
    """The first unknown inside plain data (dicts, lists), if any."""
    if is_unknown(value):
        return value
    if depth > 50:
        return None
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        found = first_unknown(item, depth + 1)
        if found is not None:
            return found
    return None


def plain(value: Any) -> Any:
    """Plain data for reports: an unknown is shown as {"unknown": reason}."""
    if is_unknown(value):
        return {"unknown": reason_of(value)}
    if isinstance(value, Ref):  # a resource of the file, by its logical id or address
        return value.target if value.attribute is None else f"{value.target}.{value.attribute}"
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class _Tracked(Mapping[str, Any]):
    """A state as a check reads it: every unknown it is handed is noted, even one it only tests with
    isinstance (which an Unknown cannot answer for itself), so that the verdict is not taken for known."""

    __slots__ = ("_data", "_read")

    def __init__(self, data: Mapping[str, Any], read: list[Unknown]) -> None:
        self._data, self._read = data, read

    def __getitem__(self, key: str) -> Any:
        return _tracked(self._data[key], self._read)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


class _TrackedList(list):
    """A list (checks test isinstance(..., list)) whose items, read, are noted as _Tracked's are."""

    def __init__(self, items: list[Any], read: list[Unknown]) -> None:
        super().__init__(items)
        self._read = read

    def __getitem__(self, index: Any) -> Any:
        return _tracked(super().__getitem__(index), self._read)

    def __iter__(self) -> Iterator[Any]:
        return (_tracked(item, self._read) for item in super().__iter__())


def _tracked(value: Any, read: list[Unknown]) -> Any:
    if is_unknown(value):
        read.append(value)
        return value
    if isinstance(value, Mapping) and not isinstance(value, _Tracked):
        return _Tracked(value, read)
    if isinstance(value, list) and not isinstance(value, _TrackedList):
        return _TrackedList(value, read)
    return value


def evaluate_known(control: Control, state: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], tuple[str, ...]]:
    """The engine's evaluate_state, except that a verdict resting on an unknown value is NOT_APPLICABLE
    with the reason: the file does not say, so netguard does not guess. A verdict rests on every unknown
    the check was handed (used, compared, or only tested for its type)."""
    read: list[Unknown] = []
    try:
        status, evidence, targets = evaluate_state(control, _Tracked(state, read))
    except UnknownValue as exc:
        return NOT_APPLICABLE, {"reason": f"{UNKNOWN}: {exc.reason}"}, ()
    except TypeError:  # C code refusing an unknown without asking it (str.join): a state with none is a real error
        if not read and first_unknown(state) is None:
            raise
        return NOT_APPLICABLE, {"reason": f"{UNKNOWN}: {reason_of(read[0] if read else first_unknown(state))}"}, ()
    hidden = read[0] if read else first_unknown(plain_data(evidence))
    if hidden is not None:
        return NOT_APPLICABLE, {"reason": f"{UNKNOWN}: {reason_of(hidden)}"}, ()
    return status, plain(evidence), targets


def plain_data(value: Any) -> Any:
    """Tracked views back to plain dicts and lists (unknowns kept)."""
    if isinstance(value, Mapping):
        return {k: plain_data(v) for k, v in (value._data.items() if isinstance(value, _Tracked) else value.items())}
    if isinstance(value, list):
        return [plain_data(v) for v in list.__iter__(value)]
    return value
