"""Every label of a value the core names, in one place: card states on both sides, replacement reasons,
how a fee was paid, insurance kinds, what the medical slip names.

The Chinese text is the label and also the gettext message id; its English is in the catalog
(locale/en/LC_MESSAGES/labels.po) under the kind as message context, so a label never borrows the
translation of the same Chinese used elsewhere (临时挂失 the state, not 临时挂失 the action). Pages
(the `label` filter), PDFs and the hotlines read them through sscard.i18n.label / i18n.bilingual.
"""

from __future__ import annotations

from .states import BankStatus, SsStatus

SS_STATUS: dict[str, str] = {
    SsStatus.APPLIED: "已申请",
    SsStatus.IN_PRODUCTION: "制卡中",
    SsStatus.READY: "待领取",
    SsStatus.SEALED: "已封存",
    SsStatus.NORMAL: "正常使用",
    SsStatus.TEMPORARY_LOSS: "临时挂失",
    SsStatus.FORMAL_LOSS: "正式挂失",
    SsStatus.CANCELLED: "已注销",
}
BANK_STATUS: dict[str, str] = {
    BankStatus.NOT_ACTIVATED: "金融功能未启用",
    BankStatus.ACTIVE: "正常",
    BankStatus.ORAL_LOSS: "口头挂失",
    BankStatus.WRITTEN_LOSS: "书面挂失",
    BankStatus.FROZEN: "已冻结",
    BankStatus.CLOSED: "已销户",
}
# why a card was issued (services.replacement.REASONS, and "first" for a first card)
REASON: dict[str, str] = {
    "first": "首次申领",
    "lost": "遗失补卡",
    "damaged": "损坏换卡",
    "expiring": "到期换卡",
    "data_change": "信息变更换卡",
    "bank_change": "更换银行",
}
# how a production fee was settled (services.replacement.METHODS)
FEE_METHOD: dict[str, str] = {"cash": "现金", "card": "刷卡", "waived": "减免"}
# the five insurances, in the order a record lists them (services.insurance.INSURANCE_TYPES)
INSURANCE_KIND: dict[str, str] = {
    "pension": "养老保险",
    "medical": "医疗保险",
    "unemployment": "失业保险",
    "work_injury": "工伤保险",
    "maternity": "生育保险",
}# the medical settlement slip: where, what, and how the part the funds do not pay was paid
INSTITUTION_KIND: dict[str, str] = {"hospital": "医院", "pharmacy": "定点药店"}
INSTITUTION_LEVEL: dict[str, str] = {"1": "一级", "2": "二级", "3": "三级"}
ITEM_CATEGORY: dict[str, str] = {"drug": "药品", "treatment": "诊疗", "material": "材料"}
SELF_PAY_METHOD: dict[str, str] = {"cash": "现金", "bank": "银行账户", "none": "无"}

# Audit operations renamed by migration 0010_lifecycle: older records carry the old name, worded as the new.
RENAMED_OPERATIONS: dict[str, str] = {
    "counter.person": "window.person", "counter.card_number": "window.card_number",
    "counter.identity_check": "attorney.identity_check", "counter.visit": "attorney.visit",
    "counter.visit_identity": "attorney.visit_identity", "counter.end_visit": "attorney.end_visit",
    "counter.collect": "card.collect", "counter.collection_receipt": "card.collection_receipt",
    "counter.ss_password_reset_by_agent": "ss_password.reset_by_agent",
}

LABELS: dict[str, dict[str, str]] = {
    "ss_status": SS_STATUS,
    "bank_status": BANK_STATUS,
    "reason": REASON,
    "fee_method": FEE_METHOD,
    "insurance_kind": INSURANCE_KIND,
    "institution_kind": INSTITUTION_KIND,
    "institution_level": INSTITUTION_LEVEL,
    "item_category": ITEM_CATEGORY,
    "self_pay_method": SELF_PAY_METHOD,
}


def label_zh(kind: str, value: str) -> str:
    """The Chinese label of `value` (the value itself when it has none: never an empty cell)."""
    return LABELS[kind].get(value, value)
