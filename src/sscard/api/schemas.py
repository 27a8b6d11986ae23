"""Request bodies: strict (unknown fields are 422), so a typo never passes silently."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, field_validator
from pydantic_core import PydanticCustomError

from ..core import money
from ..core.text import BAD_CHARS
from ..http import number_kinds, whole_number_in_range

# The text no channel accepts (core/text.py: control, bidirectional and invisible characters): the
# frame refuses it in every operation's arguments, the pages' forms at its field (web.forms).
_BAD_CHARS = BAD_CHARS


def clean_text(value: Any) -> Any:
    if isinstance(value, str) and _BAD_CHARS.search(value):
        raise ValueError("control characters are not allowed")  # (bidirectional and invisible ones too)
    return value


CLEAN_TEXT_PATTERN = ("^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f\\u061c\\u200b\\u200e\\u200f"
                      "\\u202a-\\u202e\\u2060\\u2066-\\u2069\\ufeff]*$")
"""`clean_text`'s refusal as the contract declares it (JSON Schema's pattern; a lone surrogate cannot be
written in one, and JSON text cannot carry one anyway): a client or a fuzzer reads from the contract the text
the server refuses (session 25's schemathesis run: 675 'schema-valid' strings refused for their controls)."""


def declare_clean_text(schema: dict[str, Any], *_: Any) -> None:
    """The pattern on every free string of a schema (a property, a branch of its anyOf, an array's items),
    not on one with a format or an enum of its own (a date, a state), whose text says more."""
    nodes = [schema] if schema.get("type") == "string" else list(schema.get("properties", {}).values())
    while nodes:
        node = nodes.pop()
        nodes += [*node.get("anyOf", ()), *([node["items"]] if isinstance(node.get("items"), dict) else [])]
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & node.keys():
            node["pattern"] = CLEAN_TEXT_PATTERN


class _DeclaredClean:
    """CleanStr's declaration in the contract (declare_clean_text), beside its validator."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        declare_clean_text(schema)
        return schema


CleanStr = Annotated[str, AfterValidator(clean_text), _DeclaredClean()]
# Row ids are 32-bit in the schema: a larger number can only be "not found", and is refused as input.
DbId = Annotated[int, Field(ge=1, le=2_147_483_647)]


MAX_FEN = money.MAX_FEN  # 100 million yuan: the money's own bound (core.money), said first by the schemas
Fen = Annotated[StrictInt, Field(gt=0, le=MAX_FEN)]
"""A positive amount of money: a JSON integer of fen, never 100.0, "100" or true."""
FenOrZero = Annotated[StrictInt, Field(ge=0, le=MAX_FEN)]


_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?")


def _iso_date_text(value: Any) -> Any:
    if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
        return value
    raise PydanticCustomError("date_type", "Input should be a date as ISO-8601 text: YYYY-MM-DD")


def _iso_datetime_text(value: Any) -> Any:
    if isinstance(value, str) and _DATETIME_TEXT.fullmatch(value):
        return value
    raise PydanticCustomError("datetime_type", "Input should be a time as ISO-8601 text: YYYY-MM-DDTHH:MM:SS+08:00")


IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]
"""A date: ISO-8601 text (`2026-01-31`) only. Pydantic's lax mode reads a number (JSON 1767225600, a query's
"1767225600") as seconds since 1970; a client that sent one meant something else, so it is refused."""
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime_text)]
"""A time: ISO-8601 text (`2026-01-31T08:00:00+08:00`, or a date) only; never a number of seconds."""
_ISO_CHECKS = (_iso_date_text, _iso_datetime_text)


def bare_dates(annotation: Any, metadata: Any = ()) -> bool:
    """Whether a date or time anywhere in this type may be read from something other than ISO-8601 text:
    a `date`/`datetime` that is not IsoDate/IsoDateTime, here or in a model it holds."""
    if get_origin(annotation) is Annotated:
        base, *meta = get_args(annotation)
        return bare_dates(base, [*metadata, *meta])
    if isinstance(annotation, type) and issubclass(annotation, date):  # datetime is a date too
        return not any(getattr(m, "func", None) in _ISO_CHECKS for m in metadata)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(bare_dates(f.annotation, f.metadata) for f in annotation.model_fields.values())
    return any(bare_dates(a) for a in get_args(annotation))


def _strict_money(info: Any) -> bool:
    """A field holds only strict integers (or None): StrictInt itself, or inside Optional."""
    if any(getattr(m, "strict", False) for m in info.metadata):
        return True
    args = [a for a in get_args(info.annotation) if a is not type(None)]
    return bool(args) and all(
        get_origin(a) is Annotated and any(getattr(m, "strict", False) for m in get_args(a)[1:]) for a in args
    )


_WHOLE_NUMBER_FIELDS: dict[type, frozenset[str]] = {}


class Strict(BaseModel):
    """The one base of every request body: unknown fields refused, no control characters, money only as
    strict integers of fen and dates only as ISO-8601 text (a `*_fen` field of any other type, or a date
    that is not IsoDate/IsoDateTime, fails when the class is made)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=declare_clean_text)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return clean_text(value)

    @field_validator("*", mode="before")
    @classmethod
    def _whole_numbers_only(cls, value: Any, info: Any) -> Any:
        """A whole number (a row's id, a count, a number of days) is a JSON integer: pydantic's lax mode
        read `true` as 1 and `1.0` as 1, so `{"person_id": true}` addressed person 1 (session 24's probe)."""
        if info.field_name in _WHOLE_NUMBER_FIELDS.get(cls, ()):
            if isinstance(value, (bool, float)):
                raise PydanticCustomError("int_type", "Input should be a valid integer")
            if isinstance(value, int) and not whole_number_in_range(value):  # (http.WHOLE_NUMBER_MAX)
                raise PydanticCustomError("int_range", "Input should be a whole number the database can hold")
        return value

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _WHOLE_NUMBER_FIELDS[cls] = frozenset(
            name for name, info in cls.model_fields.items() if number_kinds(info.annotation) == {int})
        for name, info in cls.model_fields.items():
            if name.endswith("_fen") and not _strict_money(info):
                raise TypeError(f"{cls.__name__}.{name}: money must be a strict integer of fen (schemas.Fen)")
            if bare_dates(info.annotation, info.metadata):
                raise TypeError(f"{cls.__name__}.{name}: a date must be ISO-8601 text (schemas.IsoDate, IsoDateTime)")


class RegisterPerson(Strict):
    citizen_id: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=32)
    phone: str = Field("", max_length=20)
    address: str = Field("", max_length=128)


class ApplyFirstCard(Strict):
    person_id: DbId
    bank_code: str = Field(max_length=16)
    center_code: str = Field(max_length=16)


class StartBatch(Strict):
    center_code: str = Field(max_length=16)


class Collect(Strict):
    presented_citizen_id: str = Field(max_length=32)


class ChangePassword(Strict):
    old: str = Field(max_length=20)
    new: str = Field(max_length=20)
    new_again: str = Field(max_length=20)


class VerifyPassword(Strict):
    password: str = Field(max_length=20)


class ResetPassword(Strict):
    presented_citizen_id: str = Field(max_length=32)
    new: str | None = Field(None, max_length=20)


class Login(Strict):
    login: str = Field(max_length=32)
    password: str = Field(max_length=20)


class PresentedId(Strict):
    presented_citizen_id: str = Field(max_length=32)
    attorney_id: DbId | None = None
    agent_citizen_id: str | None = Field(None, max_length=32, description="an agent's own ID (with attorney_id)")


class OptionalPresentedId(Strict):
    presented_citizen_id: str | None = Field(None, max_length=32)


class ResetQueryPassword(Strict):
    person_id: DbId
    presented_citizen_id: str = Field(max_length=32)


class ErrorBody(BaseModel):
    """Every refusal: a machine-readable code and a message in the caller's language."""

    code: str
    message: str
    details: list[dict[str, Any]] | None = Field(None, description="which input was wrong (422 only)")
    tries_left: int | None = Field(None, description="a wrong password or PIN: attempts left before the lock")
    locked_until: str | None = Field(None, description="a locked password or PIN (423) whose lock ends by itself: "
                                     "when, ISO 8601 in UTC")
    reset_required: bool | None = Field(None, description="a locked password or PIN (423) that only a reset in "
                                        "person unlocks")
