"""The split of a bill (core.medical), table-driven, and its invariant as a hypothesis property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sscard.core.errors import SscardError
from sscard.core.medical import BillLine, SplitRules, months_back, parse_lines, rules_for, split_bill
from sscard.core.policy import load_policy

DEFAULT = load_policy()
L3 = rules_for(DEFAULT, "hospital", 3)  # deductible 800.00, 80 %, cap 300,000.00
L1 = rules_for(DEFAULT, "hospital", 1)  # deductible 300.00, 90 %
PHARMACY = rules_for(DEFAULT, "pharmacy", None)


def bill(covered: int = 0, uncovered: int = 0) -> list[BillLine]:
    lines = []
    if covered:
        lines.append(BillLine("drug", "阿莫西林胶囊", covered, True))
    if uncovered:
        lines.append(BillLine("material", "自费材料", uncovered, False))
    return lines


# (case, rules, covered, uncovered, deductible_used, fund_used, balance) ->
#   (deductible, fund, copay, personal, self_pay)
CASES = [
    ("all under the deductible, paid from the personal account",
     L3, 50_000, 0, 0, 0, 100_000, (50_000, 0, 0, 50_000, 0)),
    ("crossing the deductible: 800 then 80 % of the rest",
     L3, 200_000, 0, 0, 0, 1_000_000, (80_000, 96_000, 24_000, 104_000, 0)),
    ("crossing with part of the deductible already met",
     L3, 100_000, 0, 60_000, 0, 0, (20_000, 64_000, 16_000, 0, 36_000)),
    ("deductible already met this year: fund from the first fen",
     L3, 100_000, 0, 80_000, 0, 0, (0, 80_000, 20_000, 0, 20_000)),
    ("level-1 hospital: lower deductible, 90 %",
     L1, 100_000, 0, 0, 0, 0, (30_000, 63_000, 7_000, 0, 37_000)),
    ("cap nearly reached: the fund pays only what is left",
     L3, 100_000, 0, 80_000, 29_990_000, 0, (0, 10_000, 90_000, 0, 90_000)),
    ("cap reached: the fund pays nothing",
     L3, 100_000, 0, 80_000, 30_000_000, 50_000, (0, 0, 100_000, 50_000, 50_000)),
    ("uncovered items are self-pay by default, even with a rich personal account",
     L3, 0, 30_000, 0, 0, 1_000_000, (0, 0, 0, 0, 30_000)),
    ("mixed bill: personal account pays deductible and co-pay, not the uncovered part",
     L3, 100_000, 20_000, 0, 0, 1_000_000, (80_000, 16_000, 4_000, 84_000, 20_000)),
    ("personal account short: it pays its balance, the rest is self-pay",
     L3, 100_000, 0, 0, 0, 30_000, (80_000, 16_000, 4_000, 30_000, 54_000)),
    ("pharmacy: no pooled fund, covered medicine from the personal account",
     PHARMACY, 12_345, 0, 0, 0, 100_000, (0, 0, 12_345, 12_345, 0)),
    ("pharmacy: uncovered goods are self-pay",
     PHARMACY, 5_000, 7_000, 0, 0, 100_000, (0, 0, 5_000, 5_000, 7_000)),
    ("rounding: the fund share is rounded down to the fen",
     L3, 80_002, 0, 0, 0, 0, (80_000, 1, 1, 0, 80_001)),
]


@pytest.mark.parametrize(("case", "rules", "covered", "uncovered", "ded_used", "fund_used", "balance", "want"),
                         CASES, ids=[c[0] for c in CASES])
def test_split_table(case, rules, covered, uncovered, ded_used, fund_used, balance, want):
    s = split_bill(bill(covered, uncovered), rules, deductible_used_fen=ded_used, fund_used_fen=fund_used,
                   personal_balance_fen=balance)
    assert (s.deductible_fen, s.fund_fen, s.copay_fen, s.personal_fen, s.self_pay_fen) == want
    assert s.fund_fen + s.personal_fen + s.self_pay_fen == s.total_fen == covered + uncovered


def test_personal_account_may_pay_uncovered_items_when_the_policy_says_so():
    policy = load_policy(medical={"personal_account_pays_uncovered": True})
    s = split_bill(bill(0, 30_000), rules_for(policy, "hospital", 3), deductible_used_fen=0, fund_used_fen=0,
                   personal_balance_fen=1_000_000)
    assert (s.personal_fen, s.self_pay_fen) == (30_000, 0)


def test_personal_account_not_paying_the_deductible_when_the_policy_says_so():
    policy = load_policy(medical={"personal_account_pays_deductible": False})
    s = split_bill(bill(200_000), rules_for(policy, "hospital", 3), deductible_used_fen=0, fund_used_fen=0,
                   personal_balance_fen=1_000_000)
    assert (s.deductible_fen, s.fund_fen, s.personal_fen, s.self_pay_fen) == (80_000, 96_000, 24_000, 80_000)


def test_other_ratios_deductible_and_cap_from_the_policy():
    policy = load_policy(medical={"deductible_level3_fen": 120_000, "ratio_level3_pct": 70, "annual_cap_fen": 50_000})
    s = split_bill(bill(300_000), rules_for(policy, "hospital", 3), deductible_used_fen=0, fund_used_fen=0,
                   personal_balance_fen=0)
    # 1,200 deductible; 70 % of 1,800 = 1,260 but the cap is 500
    assert (s.deductible_fen, s.fund_fen, s.self_pay_fen) == (120_000, 50_000, 250_000)


def test_the_cardholder_may_keep_the_personal_account_out_of_it():
    s = split_bill(bill(50_000), L3, deductible_used_fen=0, fund_used_fen=0, personal_balance_fen=1_000_000,
                   use_personal_account=False)
    assert (s.personal_fen, s.self_pay_fen) == (0, 50_000)


def test_a_refund_then_the_same_bill_again_gives_the_same_split():
    first = split_bill(bill(200_000), L3, deductible_used_fen=0, fund_used_fen=0, personal_balance_fen=500_000)
    # the refund restores usage and balance; the same bill then splits the same way
    again = split_bill(bill(200_000), L3, deductible_used_fen=first.deductible_fen - first.deductible_fen,
                       fund_used_fen=first.fund_fen - first.fund_fen, personal_balance_fen=500_000)
    assert again == first
    # while without the refund, the second visit no longer pays the deductible
    second = split_bill(bill(200_000), L3, deductible_used_fen=first.deductible_fen, fund_used_fen=first.fund_fen,
                        personal_balance_fen=500_000 - first.personal_fen)
    assert second.deductible_fen == 0 and second.fund_fen == 160_000


def test_bill_lines_are_validated():
    with pytest.raises(SscardError) as e:
        parse_lines([])
    assert e.value.code == "invalid_bill"
    with pytest.raises(SscardError) as e:
        parse_lines([{"category": "drug", "amount_fen": 12.5, "covered": True}])
    assert e.value.code == "invalid_amount"
    with pytest.raises(SscardError) as e:
        parse_lines([{"category": "food", "amount_fen": 100, "covered": True}])
    assert e.value.code == "invalid_bill"
    with pytest.raises(SscardError) as e:
        parse_lines([{"category": "drug", "amount_fen": 100}])
    assert e.value.code == "invalid_bill"


def test_insured_months_look_back_across_the_new_year():
    assert months_back(2026, 1, 1) == ["2026-01", "2025-12"]
    assert months_back(2026, 5, 0) == ["2026-05"]


line_st = st.builds(BillLine, st.sampled_from(["drug", "treatment", "material"]), st.just("x"),
                    st.integers(1, 5_000_000), st.booleans())
rules_st = st.builds(SplitRules, st.booleans(), st.integers(0, 200_000), st.integers(0, 100),
                     st.integers(0, 50_000_000), st.booleans(), st.booleans(), st.booleans())


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(line_st, min_size=1, max_size=12), rules=rules_st,
       ded_used=st.integers(0, 300_000), fund_used=st.integers(0, 60_000_000), balance=st.integers(0, 10_000_000),
       use_pa=st.booleans())
def test_property_fund_personal_and_self_pay_add_up_to_the_bill(lines, rules, ded_used, fund_used, balance, use_pa):
    s = split_bill(lines, rules, deductible_used_fen=ded_used, fund_used_fen=fund_used,
                   personal_balance_fen=balance, use_personal_account=use_pa)
    assert s.fund_fen + s.personal_fen + s.self_pay_fen == s.total_fen == sum(x.amount_fen for x in lines)
    for value in (s.fund_fen, s.personal_fen, s.self_pay_fen, s.deductible_fen, s.copay_fen,
                  s.covered_fen, s.uncovered_fen):
        assert value >= 0 and isinstance(value, int)
    assert s.personal_fen <= balance
    assert s.fund_fen <= max(0, rules.annual_cap_fen - fund_used) or not rules.pooled_fund
    assert s.fund_fen <= s.covered_fen
    assert s.deductible_fen + ded_used <= max(rules.deductible_fen, ded_used)
    if not rules.pooled_fund:
        assert s.fund_fen == 0
    if not use_pa:
        assert s.personal_fen == 0
