"""Request bodies: strict (unknown fields are 422), so a typo never passes silently."""

from __future__ import annotations

import re
from typing import Annotated, Any, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, field_validator

# NUL and other control characters, and lone surrogates: PostgreSQL refuses NUL in text and no
# database can encode a lone surrogate, so they would end as a 500. They are never valid input.
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def clean_text(value: Any) -> Any:
    if isinstance(value, str) and _BAD_CHARS.search(value):
        raise ValueError("control characters are not allowed")
    return value


CleanStr = Annotated[str, AfterValidator(clean_text)]
# Row ids are 32-bit in the schema: a larger number can only be "not found", and is refused as input.
DbId = Annotated[int, Field(ge=1, le=2_147_483_647)]


MAX_FEN = 10**12  # 100 million yuan: far above any card's business, far below any integer limit
Fen = Annotated[StrictInt, Field(gt=0, le=MAX_FEN)]
"""A positive amount of money: a JSON integer of fen, never 100.0, "100" or true."""
FenOrZero = Annotated[StrictInt, Field(ge=0, le=MAX_FEN)]


def _strict_money(info: Any) -> bool:
    """A field holds only strict integers (or None): StrictInt itself, or inside Optional."""
    if any(getattr(m, "strict", False) for m in info.metadata):
        return True
    args = [a for a in get_args(info.annotation) if a is not type(None)]
    return bool(args) and all(
        get_origin(a) is Annotated and any(getattr(m, "strict", False) for m in get_args(a)[1:]) for a in args
    )


class Strict(BaseModel):
    """The one base of every request body: unknown fields refused, no control characters, and money
    only as strict integers of fen (a `*_fen` field of any other type fails when the class is made)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return clean_text(value)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, info in cls.model_fields.items():
            if name.endswith("_fen") and not _strict_money(info):
                raise TypeError(f"{cls.__name__}.{name}: money must be a strict integer of fen (schemas.Fen)")


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
