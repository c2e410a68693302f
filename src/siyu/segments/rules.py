"""The segment rule language: versioned JSON parsed into a typed, immutable AST.

    {"version": 1, "rule": <node>}
    node = {"and": [node, ...]} | {"or": [node, ...]} | {"not": node} | condition

A condition is an object with one key naming its type (see the `Cond*` models). Errors name the JSON
path and say what is wrong (`rule.and[2].tags.any: must be a non-empty list of tag ids`). Ids of tags,
channels, employees … are not checked here: unknown ids match nobody and `service` reports them.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

RULE_VERSION = 1
MAX_DEPTH = 10
MAX_CONDITIONS = 100
MAX_DAYS = 3660


class RuleError(ValueError):
    """A rule that does not parse; `path` is where (`rule.and[0].tags`), `msg` what is wrong."""

    def __init__(self, path: str, msg: str) -> None:
        super().__init__(f"{path}: {msg}")
        self.path = path
        self.msg = msg


def _ids(what: str, *, kind: type, allowed: tuple[object, ...] = (), allow_empty: bool = False) -> BeforeValidator:
    """A list of ids of one kind, deduplicated and sorted; its error says what it must be."""
    if allowed:
        msg = f"must be a non-empty list of {what} ({', '.join(map(str, allowed))})"
    else:
        msg = f"must be a {'' if allow_empty else 'non-empty '}list of {what}"

    def check(value: object) -> tuple[Any, ...]:
        if not isinstance(value, list) or (not value and not allow_empty):
            raise ValueError(msg)
        for item in value:
            # bool is an int in Python; true is never an id
            if isinstance(item, bool) or not isinstance(item, kind) or (kind is str and not item):
                raise ValueError(msg)
            if allowed and item not in allowed:
                raise ValueError(msg)
        return tuple(sorted(set(value)))

    return BeforeValidator(check)


def _text(what: str) -> BeforeValidator:
    def check(value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"must be a non-empty {what}")
        return value

    return BeforeValidator(check)


def _day(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date YYYY-MM-DD")


def _optional(validator: BeforeValidator) -> BeforeValidator:
    """The same check, but an explicit null means "not given"."""
    inner = validator.func
    return BeforeValidator(lambda value: None if value is None else inner(value))  # type: ignore[call-arg]


TagIds = Annotated[tuple[int, ...] | None, _optional(_ids("tag ids", kind=int))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CondTags(_Body):
    """Tags on the customer's active follows (on one employee's follow when `employee` is set)."""

    any: TagIds = None
    all: TagIds = None
    none: TagIds = None
    employee: Annotated[str | None, _optional(_text("userid"))] = None

    @model_validator(mode="after")
    def _one_mode(self) -> CondTags:
        if sum(x is not None for x in (self.any, self.all, self.none)) != 1:
            raise ValueError("must have exactly one of any, all, none")
        return self

    @property
    def mode(self) -> Literal["any", "all", "none"]:
        return "any" if self.any is not None else "all" if self.all is not None else "none"

    @property
    def tag_ids(self) -> tuple[int, ...]:
        return self.any or self.all or self.none or ()


class CondGender(_Body):
    values: Annotated[tuple[int, ...], _ids("genders", kind=int, allowed=(0, 1, 2))]


class CondCustomerType(_Body):
    values: Annotated[tuple[int, ...], _ids("customer types", kind=int, allowed=(1, 2))]


class CondCorpName(_Body):
    contains: Annotated[str, _text("string")]


class CondOwner(_Body):
    """An active follow by one of the employees (userids) or by anyone in the departments' subtrees."""

    employees: Annotated[tuple[str, ...], _ids("userids", kind=str, allow_empty=True)] = ()
    departments: Annotated[tuple[int, ...], _ids("department ids", kind=int, allow_empty=True)] = ()

    @model_validator(mode="after")
    def _some(self) -> CondOwner:
        if not self.employees and not self.departments:
            raise ValueError("needs employees or departments")
        return self


class CondChannel(_Body):
    """A follow (any status) attributed to one of the channels or to a channel in one of the groups."""

    channels: Annotated[tuple[int, ...], _ids("channel ids", kind=int, allow_empty=True)] = ()
    groups: Annotated[tuple[int, ...], _ids("channel group ids", kind=int, allow_empty=True)] = ()

    @model_validator(mode="after")
    def _some(self) -> CondChannel:
        if not self.channels and not self.groups:
            raise ValueError("needs channels or groups")
        return self


class CondAdded(_Body):
    """A follow created on a day in [from, to]: days in the corp's time zone, both ends included, either open."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: Annotated[date | None, BeforeValidator(_day)] = None
    to: Annotated[date | None, BeforeValidator(_day)] = None

    @model_validator(mode="after")
    def _range(self) -> CondAdded:
        if self.from_ is None and self.to is None:
            raise ValueError("needs from or to")
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError("from is after to")
        return self


class CondFollowStatus(_Body):
    """active: has an active follow; lost: has follows, none of them active."""

    status: Literal["active", "lost"]


class CondInGroup(_Body):
    """A member of one of the customer groups (WeCom chat ids); any group when the list is empty."""

    chat_ids: Annotated[tuple[str, ...], _ids("chat ids", kind=str, allow_empty=True)] = ()


def _strict_bool(what: str) -> BeforeValidator:
    def check(value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false ({what})")
        return value

    return BeforeValidator(check)


def _day_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise ValueError(f"must be a whole number of days from 1 to {MAX_DAYS}")
    return value


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a non-empty list of strings")
    return tuple(sorted(set(value)))


class CondField(_Body):
    """A custom field (customer_field) with this key: equal to, one of, containing (any case), or just present."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    key: Annotated[str, _text("field key")]
    equals: str | None = None
    in_: Annotated[tuple[str, ...] | None, _optional(BeforeValidator(_strings))] = None
    contains: Annotated[str | None, _optional(_text("string"))] = None
    exists: Annotated[bool | None, _optional(_strict_bool("exists"))] = None

    @model_validator(mode="after")
    def _one_test(self) -> CondField:
        if len(self.key) > 64:
            raise ValueError("key is longer than 64 characters")
        if sum(x is not None for x in (self.equals, self.in_, self.contains, self.exists)) != 1:
            raise ValueError("must have exactly one of equals, in, contains, exists")
        return self


class CondOptedOut(_Body):
    """true: the customer opted out of broadcasts (opt_out); false: they did not."""

    value: Annotated[bool, _strict_bool("opted out")]


class CondLastBroadcast(_Body):
    """The last corp-local day a broadcast reached the customer (a recipient row with status sent).

    before / after: that day is strictly before / after the date; within_days N: it is today or one of
    the N - 1 days before (today in the corp's time zone); never: no broadcast ever reached them.
    Customers never reached match none of before, after, within_days.
    """

    before: Annotated[date | None, BeforeValidator(_day)] = None
    after: Annotated[date | None, BeforeValidator(_day)] = None
    within_days: Annotated[int | None, _optional(BeforeValidator(_day_count))] = None
    never: Annotated[bool | None, _optional(_strict_bool("never"))] = None

    @model_validator(mode="after")
    def _one_mode(self) -> CondLastBroadcast:
        if sum(x is not None for x in (self.before, self.after, self.within_days, self.never)) != 1:
            raise ValueError("must have exactly one of before, after, within_days, never")
        if self.never is False:
            raise ValueError("never must be true (use not for the opposite)")
        return self


Condition = (
    CondTags
    | CondGender
    | CondCustomerType
    | CondCorpName
    | CondOwner
    | CondChannel
    | CondAdded
    | CondFollowStatus
    | CondInGroup
    | CondField
    | CondOptedOut
    | CondLastBroadcast
)


class And(BaseModel):
    model_config = ConfigDict(frozen=True)
    items: tuple[Node, ...]


class Or(BaseModel):
    model_config = ConfigDict(frozen=True)
    items: tuple[Node, ...]


class Not(BaseModel):
    model_config = ConfigDict(frozen=True)
    item: Node


Node = And | Or | Not | Condition


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True)
    version: int
    root: Node

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "rule": dump_node(self.root)}


And.model_rebuild()
Or.model_rebuild()
Not.model_rebuild()
Rule.model_rebuild()

# condition key → (model, how the JSON value maps onto the model's fields)
_OBJECT_CONDITIONS: dict[str, type[_Body]] = {
    "tags": CondTags,
    "corp_name": CondCorpName,
    "owner": CondOwner,
    "channel": CondChannel,
    "added": CondAdded,
    "in_group": CondInGroup,
    "field": CondField,
    "last_broadcast": CondLastBroadcast,
}
# JSON keys that are Python keywords, and the model fields that hold them
_RENAMED = {"from": "from_", "in": "in_"}
_RENAMED_BACK = {v: k for k, v in _RENAMED.items()}
_SCALAR_CONDITIONS: dict[str, tuple[type[_Body], str]] = {
    "gender": (CondGender, "values"),
    "customer_type": (CondCustomerType, "values"),
    "follow_status": (CondFollowStatus, "status"),
    "opted_out": (CondOptedOut, "value"),
}
_KEYS = ("and", "or", "not", *_OBJECT_CONDITIONS, *_SCALAR_CONDITIONS)


def parse_rule(data: object) -> Rule:
    """A rule from its JSON (a dict or a JSON string); raises RuleError naming the first problem."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise RuleError("$", f"not JSON ({exc.args[0] if exc.args else exc})") from None
    if not isinstance(data, dict):
        raise RuleError("$", "must be an object with version and rule")
    unknown = sorted(set(data) - {"version", "rule"})
    if unknown:
        raise RuleError(unknown[0], "unknown key")
    version = data.get("version")
    if "version" not in data:
        raise RuleError("version", "required")
    if version != RULE_VERSION or isinstance(version, bool):
        raise RuleError("version", f"unsupported version {json.dumps(version)} (expected {RULE_VERSION})")
    if "rule" not in data:
        raise RuleError("rule", "required")
    counter = [0]
    root = _node(data["rule"], "rule", 1, counter)
    return Rule(version=RULE_VERSION, root=root)


def _node(value: object, path: str, depth: int, counter: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise RuleError(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict) or len(value) != 1:
        raise RuleError(path, f"must be an object with exactly one key ({', '.join(_KEYS)})")
    ((key, body),) = value.items()
    here = f"{path}.{key}"
    if key in ("and", "or"):
        if not isinstance(body, list) or not body:
            raise RuleError(here, "must be a non-empty list of rules")
        items = tuple(_node(item, f"{here}[{i}]", depth + 1, counter) for i, item in enumerate(body))
        return And(items=items) if key == "and" else Or(items=items)
    if key == "not":
        return Not(item=_node(body, here, depth + 1, counter))
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise RuleError(path, f"more than {MAX_CONDITIONS} conditions")
    if key in _SCALAR_CONDITIONS:
        model, field = _SCALAR_CONDITIONS[key]
        return _validate(model, {field: body}, here, scalar=True)  # type: ignore[return-value]
    if key in _OBJECT_CONDITIONS:
        model = _OBJECT_CONDITIONS[key]
        if not isinstance(body, dict):
            raise RuleError(here, "must be an object")
        # "from_" / "in_" typed by a user are unknown keys, reported under their own name
        body = {_RENAMED.get(k, k if k not in _RENAMED_BACK else f"{k}?"): v for k, v in body.items()}
        return _validate(model, body, here, scalar=False)  # type: ignore[return-value]
    raise RuleError(here, "unknown condition")


def _validate(model: type[_Body], body: dict[str, object], path: str, *, scalar: bool) -> _Body:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(part) for part in err["loc"] if not scalar]
        loc = [_RENAMED_BACK.get(part, part.rstrip("?")) for part in loc]
        where = ".".join([path, *loc])
        if err["type"] == "extra_forbidden":
            raise RuleError(where, "unknown key") from None
        if err["type"] == "literal_error":
            raise RuleError(where, f"must be one of {err['ctx']['expected']}") from None
        ctx_error = (err.get("ctx") or {}).get("error")
        raise RuleError(where, str(ctx_error) if ctx_error is not None else err["msg"]) from None


def dump_node(node: Node) -> dict[str, Any]:
    """The JSON form of a node (inverse of parsing)."""
    if isinstance(node, And | Or):
        return {"and" if isinstance(node, And) else "or": [dump_node(item) for item in node.items]}
    if isinstance(node, Not):
        return {"not": dump_node(node.item)}
    for key, (model, field) in _SCALAR_CONDITIONS.items():
        if isinstance(node, model):
            value = getattr(node, field)
            return {key: list(value) if isinstance(value, tuple) else value}
    for key, model in _OBJECT_CONDITIONS.items():
        if isinstance(node, model):
            body = node.model_dump(exclude_defaults=True, exclude_none=True)
            body = {_RENAMED_BACK.get(k, k): _plain(v) for k, v in body.items()}
            return {key: body}
    raise TypeError(f"not a rule node: {node!r}")


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def iter_conditions(node: Node) -> list[Condition]:
    """Every condition in the tree, in order."""
    if isinstance(node, And | Or):
        return [c for item in node.items for c in iter_conditions(item)]
    if isinstance(node, Not):
        return iter_conditions(node.item)
    return [node]
