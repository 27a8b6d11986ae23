"""Request bodies: strict (unknown fields are 422), so a typo never passes silently."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return clean_text(value)


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
