"""City policies (RULES.md): named settings with the documented defaults.

Read from `sscard.toml` (path in SSCARD_CONFIG, default ./sscard.toml) and from SSCARD_* environment
variables with `__` between group and name, e.g. SSCARD_ACTIVATION__WINDOW_DAYS=90. Environment wins
over the file. A bad value stops start-up with a message naming the setting. The default ./sscard.toml is
optional; a file SSCARD_CONFIG names must exist (a typo stops start-up naming the path, RULES.md §12), and
an empty SSCARD_CONFIG means no file at all.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .identifiers import ascii_digits


def _whole_fen(value: Any) -> Any:
    """Money settings are integer fen: "20.00" or 20.0 (yuan written by mistake) must not become 20 fen."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("money is an integer number of fen")
    if isinstance(value, str) and not ascii_digits(value.strip().lstrip("-")):
        raise ValueError("money is an integer number of fen")
    return value


Fen = Annotated[int, BeforeValidator(_whole_fen)]


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _typed_as_declared(cls, value: Any, info: ValidationInfo) -> Any:
        """A TOML file has types: `window_days = true` or `linked = 1` is a mistake, which pydantic's lax mode
        read as 1 day and as yes (session 27: `true` for activation.window_days started a city with a 1-day
        window, silently). Environment variables are text and are parsed as before."""
        declared = cls.model_fields[info.field_name or ""].annotation
        if declared in (int, float) and isinstance(value, bool):
            raise ValueError("a number, not true or false")
        if declared is bool and isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("true or false, not a number")
        return value


class ProductionPolicy(_Group):
    working_days: int = Field(15, ge=0, le=120, description="card production time; 0 at instant-issue outlets")


class CardPolicy(_Group):
    validity_years: int = Field(10, ge=1, le=30, description="years between issue and expiry")
    uncollected_seal_days: int = Field(365, ge=1, description="an uncollected card is sealed after this")
    spec_version: str = Field("3.00", description="card specification version printed on the card")


class ActivationPolicy(_Group):
    window_days: int = Field(60, ge=1, le=3650, description="days after collection to activate the bank side")
    max_extension_days: int = Field(60, ge=0, le=3650, description="a bank supervisor's one extension")


class QueryPasswordPolicy(_Group):
    initial_source: Literal["card_number", "ss_number"] = Field(
        "card_number", description="initial query password: last 6 of the first card number, or of the SS number"
    )
    max_failures: int = Field(5, ge=1, le=20)
    lock_minutes: int = Field(30, ge=1, le=7 * 24 * 60)


class SsPasswordPolicy(_Group):
    max_failures: int = Field(3, ge=1, le=20, description="wrong SS application passwords in a row before lock")
    require_change_before_use: bool = Field(False, description="refuse medical use while the password is 123456")


class BankPinPolicy(_Group):
    max_failures: int = Field(3, ge=1, le=20)
    lock: Literal["next_day", "until_reset"] = Field("next_day", description="lock lasts until next midnight or reset")


class SsLossPolicy(_Group):
    temporary_days: int = Field(7, ge=1, le=365, description="a temporary (phone/portal) loss lapses after this")


class BankLossPolicy(_Group):
    oral_days: int = Field(5, ge=1, le=365, description="an oral (hotline) bank loss lapses after this")


class LossPolicy(_Group):
    linked: bool = Field(False, description="a loss on one side also records one on the other")


class RenewalPolicy(_Group):
    window_days: int = Field(60, ge=0, le=3650, description="renewal may be applied for this long before expiry")


class FeePolicy(_Group):
    replacement_fen: Fen = Field(2000, ge=0, le=100_000, description="production fee for lost/damaged/bank_change")


class BankPolicy(_Group):
    keep_pan_on_replacement: bool = Field(False, description="a replacement card keeps the old PAN")
    terminal_reversal_hours: int = Field(
        24, ge=1, le=168,
        description="an ATM or POS may reverse its own withdrawal or payment this long after it (R10.13); an "
                    "older one is refused and settled by the bank (within api.idempotency_keep_days: past it the "
                    "original's record is gone and the reversal finds nothing)")


class LimitsPolicy(_Group):
    atm_withdrawal_per_txn_fen: Fen = Field(250_000, ge=100)
    atm_withdrawal_per_day_fen: Fen = Field(2_000_000, ge=100)
    transfer_per_day_fen: Fen = Field(5_000_000, ge=100)
    payment_per_day_fen: Fen = Field(5_000_000, ge=100)


class MedicalPolicy(_Group):
    """Medical treatment and medicine purchase with the card (issue 5): how a bill is split."""

    deductible_level1_fen: Fen = Field(30_000, ge=0, le=10_000_000, description="annual deductible (起付线) at level-1 hospitals")
    deductible_level2_fen: Fen = Field(50_000, ge=0, le=10_000_000, description="annual deductible at level-2 hospitals")
    deductible_level3_fen: Fen = Field(80_000, ge=0, le=10_000_000, description="annual deductible at level-3 hospitals")
    ratio_level1_pct: int = Field(90, ge=0, le=100, description="pooled fund share of covered costs above the deductible, level 1")
    ratio_level2_pct: int = Field(85, ge=0, le=100, description="pooled fund share, level-2 hospitals")
    ratio_level3_pct: int = Field(80, ge=0, le=100, description="pooled fund share, level-3 hospitals")
    annual_cap_fen: Fen = Field(30_000_000, ge=0, description="most the pooled fund pays for one person in a year")
    personal_account_pays_deductible: bool = Field(True, description="the personal account may pay the deductible part")
    personal_account_pays_copay: bool = Field(True, description="the personal account may pay the co-payment on covered items")
    personal_account_pays_uncovered: bool = Field(False, description="the personal account may pay items outside the catalogue")
    insured_grace_months: int = Field(1, ge=0, le=12, description="a contribution credit this many months back still counts as insured")
    quote_valid_minutes: int = Field(30, ge=1, le=24 * 60, description="a pre-settlement can be settled for this long")
    monthly_credit_fen: Fen = Field(15_000, ge=0, le=1_000_000, description="default monthly personal-account credit (CLI credit command)")


class ApiPolicy(_Group):
    idempotency_keep_days: int = Field(
        7, ge=1, le=3650,
        description="an Idempotency-Key's first answer is kept this long (the nightly `sscard sweep` removes "
                    "older ones): a retry within it gets that answer, a request sent again after it runs anew")
    token_cache_seconds: int = Field(
        5, ge=0, le=300,
        description="a bearer token's lookup is reused this long (0: every request looks it up); "
                    "a revoked token stops working within it")
    rate_window_seconds: int = Field(
        10, ge=1, le=3600,
        description="the window of the per-caller request limits below (services.throttle.CallerRate)")
    terminal_requests_per_window: int = Field(
        100_000, ge=1, le=100_000_000,
        description="requests one terminal (ATM, POS, hospital, pharmacy, kiosk) may send in a window, over all its "
                    "tokens (10,000 a second: above what one server answers, so no load test of one token is cut "
                    "short; a city sets its own); past it 429 rate_limited")
    staff_requests_per_window: int = Field(
        100_000, ge=1, le=100_000_000,
        description="requests one staff user's API tokens may send in a window (10,000 a second, as a terminal's); "
                    "past it 429 rate_limited")
    cardholder_requests_per_window: int = Field(
        5_000, ge=1, le=100_000_000,
        description="requests one cardholder's API tokens may send in a window (500 a second: no person's app "
                    "comes near it, a script with a leaked password is cut off); past it 429 rate_limited")


class LoginPolicy(_Group):
    """Credential stuffing: wrong passwords from one client counted across all accounts and login doors."""

    client_failures_per_minute: int = Field(
        10, ge=1, le=10_000, description="wrong logins from one client address, any account, in a moving minute")
    client_failures_per_hour: int = Field(
        50, ge=1, le=100_000, description="wrong logins from one client address, any account, in a moving hour")
    staff_max_failures: int = Field(
        5, ge=1, le=20, description="wrong passwords in a row before a staff account's console login is locked")
    staff_lock_minutes: int = Field(
        15, ge=1, le=7 * 24 * 60, description="how long a staff account's console login stays locked")


class StoragePolicy(_Group):
    sqlite_synchronous: Literal["full", "extra", "normal"] = Field(
        "full",
        description="SQLite's PRAGMA synchronous on every connection (WAL mode). full: each commit is on disk "
                    "before it is answered. normal is for demos only: faster, but a power cut or OS crash can "
                    "take back payments and transfers already answered as done")


class Policy(BaseSettings):
    """Every city setting, with RULES.md defaults. Frozen: a running system's policy does not drift."""

    model_config = SettingsConfigDict(
        env_prefix="SSCARD_", env_nested_delimiter="__", extra="forbid", frozen=True, case_sensitive=False
    )

    production: ProductionPolicy = ProductionPolicy()
    card: CardPolicy = CardPolicy()
    activation: ActivationPolicy = ActivationPolicy()
    query_password: QueryPasswordPolicy = QueryPasswordPolicy()
    ss_password: SsPasswordPolicy = SsPasswordPolicy()
    bank_pin: BankPinPolicy = BankPinPolicy()
    ss_loss: SsLossPolicy = SsLossPolicy()
    bank_loss: BankLossPolicy = BankLossPolicy()
    loss: LossPolicy = LossPolicy()
    renewal: RenewalPolicy = RenewalPolicy()
    fee: FeePolicy = FeePolicy()
    bank: BankPolicy = BankPolicy()
    limits: LimitsPolicy = LimitsPolicy()
    medical: MedicalPolicy = MedicalPolicy()
    api: ApiPolicy = ApiPolicy()
    login: LoginPolicy = LoginPolicy()
    storage: StoragePolicy = StoragePolicy()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = config_file()
        if toml_path is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))

    def flat(self) -> dict[str, Any]:
        """`group.name -> value`, as `sscard policy show` prints it."""
        out: dict[str, Any] = {}
        for group_name in type(self).model_fields:
            group = getattr(self, group_name)
            for name in type(group).model_fields:
                out[f"{group_name}.{name}"] = getattr(group, name)
        return out

    def describe(self) -> list[tuple[str, Any, Any, str]]:
        """(setting, value, default, description) rows."""
        rows = []
        for group_name in type(self).model_fields:
            group = getattr(self, group_name)
            for name, f in type(group).model_fields.items():
                rows.append((f"{group_name}.{name}", getattr(group, name), f.default, f.description or ""))
        return rows


class PolicyError(ValueError):
    """Start-up stops with this: the message names each bad setting."""


def config_file() -> Path | None:
    """The policy file to read, or None for none (RULES.md §12).

    Unset SSCARD_CONFIG: ./sscard.toml, optional (missing: the defaults). An empty SSCARD_CONFIG: no file.
    Any other value names a file that must exist: an operator's typo used to start the city silently on the
    defaults (session 29); now it stops start-up naming the path."""
    value = os.environ.get("SSCARD_CONFIG")
    if value is None:
        return Path("sscard.toml")
    if not value.strip():
        return None
    path = Path(value)
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a file"
        raise PolicyError(f"SSCARD_CONFIG names a policy file that {what}: {path} "
                          "(leave SSCARD_CONFIG empty for no file)")
    return path


def load_policy(**overrides: Any) -> Policy:
    """Load and validate; `overrides` are groups as dicts, e.g. load_policy(bank_pin={"lock": "until_reset"})."""
    try:
        return Policy(**overrides)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # the file itself: said in one line, not traced
        path = os.environ.get("SSCARD_CONFIG", "sscard.toml")
        raise PolicyError(f"policy file {path} is not UTF-8 TOML: {exc}") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            setting = ".".join(str(p) for p in err["loc"])
            problems.append(f"{setting}: {err['msg']}")
        raise PolicyError("invalid policy setting(s): " + "; ".join(problems)) from None
