"""Request bodies: strict (unknown fields are 422), so a typo never passes silently."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterPerson(Strict):
    citizen_id: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=32)
    phone: str = Field("", max_length=20)
    address: str = Field("", max_length=128)


class ApplyFirstCard(Strict):
    person_id: int
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
    attorney_id: int | None = None


class OptionalPresentedId(Strict):
    presented_citizen_id: str | None = Field(None, max_length=32)


class ResetQueryPassword(Strict):
    person_id: int
    presented_citizen_id: str = Field(max_length=32)
