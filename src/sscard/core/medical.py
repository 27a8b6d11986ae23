"""How a medical bill is split (issue 5): pure rules, no database, integer fen only.

A bill is itemised (drug / treatment / material lines), each line covered by the catalogue or not.
At a designated hospital of level L:

1. covered costs first fill what is left of the year's deductible (起付线) for level L;
2. of the covered costs above it, the pooled fund (统筹基金) pays ratio(L) percent (rounded down to
   the fen), no more than what is left of the year's cap;
3. the rest is the patient's: the deductible part, the co-payment (covered, above the deductible,
   not paid by the fund, including anything over the cap) and the uncovered items;
4. the personal account (个人账户) pays what the policy lets it pay of those three parts, up to its
   balance; the remainder is self-pay, from the card's bank account or in cash.

Pharmacies have no pooled fund: covered medicine is all co-payment, the deductible does not move.
Always: fund + personal + self_pay == total, and none of them is negative.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SscardError, register_messages

if TYPE_CHECKING:
    from .policy import Policy

register_messages({
    "invalid_bill": (422, "费用明细无效：{reason}", "Invalid bill: {reason}"),
    "not_insured": (409, "该人员本月未参保缴费，不能使用医保结算", "This person is not insured this month (no contribution)"),
    "institution_not_designated": (
        403, "该医疗机构不是医保定点机构", "This institution is not designated for medical insurance settlement"),
    "not_a_medical_terminal": (403, "此终端不是定点医疗机构终端", "This terminal does not belong to a medical institution"),
    "ident_code_mismatch": (403, "卡识别码与卡号不符", "The card identification code does not match the card number"),
    "quote_invalid": (422, "预结算单无效", "The pre-settlement is not valid"),
    "quote_expired": (409, "预结算单已过期，请重新预结算", "The pre-settlement has expired: pre-settle again"),
    "quote_outdated": (
        409, "结算金额与预结算不一致，请重新预结算", "The split has changed since the pre-settlement: pre-settle again"),
    "quote_already_settled": (409, "该预结算单已结算", "This pre-settlement has already been settled"),
    "settlement_not_found": (404, "未找到该结算记录", "Settlement not found"),
    "already_refunded": (409, "该结算已退费", "This settlement has already been refunded"),
    "bank_payment_unavailable": (
        409, "暂不支持银行账户支付，请选择现金支付", "Payment from the bank account is not available: pay in cash"),
    "pin_required": (422, "银行账户支付须输入银行密码", "Paying from the bank account needs the bank PIN"),
})

LINE_CATEGORIES = ("drug", "treatment", "material")
INSTITUTION_KINDS = ("hospital", "pharmacy")
MAX_LINES = 200
MAX_LINE_FEN = 100_000_000  # 1,000,000.00 yuan on one line is already absurd


@dataclass(frozen=True)
class BillLine:
    category: str  # drug | treatment | material
    name: str
    amount_fen: int
    covered: bool
    code: str = ""


@dataclass(frozen=True)
class SplitRules:
    """The policy numbers a split needs (from core.policy.MedicalPolicy, chosen for the institution)."""

    pooled_fund: bool
    deductible_fen: int
    ratio_pct: int
    annual_cap_fen: int
    pa_pays_deductible: bool
    pa_pays_copay: bool
    pa_pays_uncovered: bool


@dataclass(frozen=True)
class Split:
    total_fen: int
    covered_fen: int
    uncovered_fen: int
    deductible_fen: int  # covered costs counted against this year's deductible by this bill
    copay_fen: int  # covered, above the deductible, not paid by the fund
    fund_fen: int
    personal_fen: int
    self_pay_fen: int

    def as_dict(self) -> dict[str, int | bool]:
        # its fields in their order, all ints (dataclasses.asdict deep-copies: 30x slower, per request)
        return dict(self.__dict__)


def rules_for(policy: Policy, kind: str, level: int | None) -> SplitRules:
    """The rules at an institution: `policy` is the whole Policy (its `medical` group is read)."""
    m = policy.medical
    if kind == "pharmacy":
        return SplitRules(False, 0, 0, 0, m.personal_account_pays_deductible, m.personal_account_pays_copay,
                          m.personal_account_pays_uncovered)
    if level not in (1, 2, 3):
        raise SscardError("invalid_request")
    return SplitRules(
        True,
        getattr(m, f"deductible_level{level}_fen"),
        getattr(m, f"ratio_level{level}_pct"),
        m.annual_cap_fen,
        m.personal_account_pays_deductible,
        m.personal_account_pays_copay,
        m.personal_account_pays_uncovered,
    )


def parse_lines(raw: Iterable[dict[str, Any]]) -> list[BillLine]:
    """Validate an itemised bill: 1..200 lines, known categories, whole positive fen, covered flag."""
    lines = []
    for item in raw:
        amount = item.get("amount_fen")
        if not isinstance(amount, int) or isinstance(amount, bool) or not (0 < amount <= MAX_LINE_FEN):
            raise SscardError("invalid_amount")
        category = item.get("category")
        if category not in LINE_CATEGORIES:
            raise SscardError("invalid_bill", reason=("费用类别须为药品、诊疗或材料", "category must be drug, treatment or material"))
        covered = item.get("covered")
        if not isinstance(covered, bool):
            raise SscardError("invalid_bill", reason=("须注明是否属于医保目录", "say whether each line is covered"))
        name = str(item.get("name", "")).strip()[:64]
        lines.append(BillLine(category, name, amount, covered, str(item.get("code", "")).strip()[:32]))
    if not lines or len(lines) > MAX_LINES:
        raise SscardError("invalid_bill", reason=("费用明细须有1至200行", "a bill has 1 to 200 lines"))
    return lines


def split_bill(
    lines: Iterable[BillLine],
    rules: SplitRules,
    *,
    deductible_used_fen: int,
    fund_used_fen: int,
    personal_balance_fen: int,
    use_personal_account: bool = True,
) -> Split:
    """Split one bill given the person's year so far and personal-account balance."""
    lines = list(lines)
    covered = sum(line.amount_fen for line in lines if line.covered)
    uncovered = sum(line.amount_fen for line in lines if not line.covered)
    total = covered + uncovered
    if rules.pooled_fund:
        deductible_left = max(0, rules.deductible_fen - max(0, deductible_used_fen))
        deductible = min(covered, deductible_left)
        above = covered - deductible
        cap_left = max(0, rules.annual_cap_fen - max(0, fund_used_fen))
        fund = min(above * rules.ratio_pct // 100, cap_left)
    else:
        deductible = 0
        fund = 0
    copay = covered - deductible - fund
    payable = 0
    if use_personal_account:
        payable += deductible if rules.pa_pays_deductible else 0
        payable += copay if rules.pa_pays_copay else 0
        payable += uncovered if rules.pa_pays_uncovered else 0
    personal = min(max(0, personal_balance_fen), payable)
    self_pay = total - fund - personal
    return Split(total, covered, uncovered, deductible, copay, fund, personal, self_pay)


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def parse_month(text: str) -> tuple[int, int]:
    """'2026-01' -> (2026, 1); anything else is invalid_request."""
    try:
        year_s, month_s = text.strip().split("-")
        year, month = int(year_s), int(month_s)
    except (ValueError, AttributeError):
        raise SscardError("invalid_request") from None
    if not (2000 <= year <= 2100 and 1 <= month <= 12) or len(month_s) != 2:
        raise SscardError("invalid_request")
    return year, month


def months_back(year: int, month: int, n: int) -> list[str]:
    """The month itself and the n months before it, as 'YYYY-MM' keys."""
    keys = []
    index = year * 12 + (month - 1)
    for back in range(n + 1):
        i = index - back
        keys.append(month_key(i // 12, i % 12 + 1))
    return keys
