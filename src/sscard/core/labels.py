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
# a center's cards by where they are, in the supervisor's day report (services.reports.center_day "cards")
REPORT_CARDS: dict[str, str] = {"applied": "已受理待制卡", "in_production": "制卡中", "awaiting_collection": "待领取"}

# Audit operations renamed by migration 0010_lifecycle: older records carry the old name, worded as the new.
RENAMED_OPERATIONS: dict[str, str] = {
    "counter.person": "window.person", "counter.card_number": "window.card_number",
    "counter.identity_check": "attorney.identity_check", "counter.visit": "attorney.visit",
    "counter.visit_identity": "attorney.visit_identity", "counter.end_visit": "attorney.end_visit",
    "counter.collect": "card.collect", "counter.collection_receipt": "card.collection_receipt",
    "counter.ss_password_reset_by_agent": "ss_password.reset_by_agent",
}

# The event a state machine refused (SscardError "illegal_transition"), in the words of the refusal a clerk or a
# teller reads: one kind per desk, since one event name means different things on each ("close": the bank's
# account; the hotline's callback request at the window).
WINDOW_EVENT: dict[str, str] = {
    "report_formal_loss": "正式挂失",
    "cancel_loss": "解除挂失",
    "collect": "领卡",
    "revoke": "撤销",
    "complete_batch": "制卡完成",
    "collection_receipt": "领卡回执",
}
BANK_EVENT: dict[str, str] = {
    "report_written_loss": "书面挂失",
    "report_oral_loss": "口头挂失",
    "cancel_loss": "解除挂失",
    "activate": "启用金融功能",
    "extend_activation": "延长启用期限",
    "freeze": "冻结",
    "unfreeze": "解除冻结",
    "close": "销户",
}

# Audit operations in words, for two audiences: (the staff's wording, the cardholder's wording). The window
# console's report counts what each clerk did in counter terms (补换卡受理: an application taken in; None:
# the report shows the operation's name); the portal's access log tells a cardholder what was done on their
# record (申请补换卡). Older records' renamed operations (RENAMED_OPERATIONS) are worded as the new.
AUDIT_OPERATIONS: dict[str, tuple[str | None, str]] = {
    "person.register": ("参保登记", "登记个人信息"),
    "person.find": (None, "查找个人信息"),
    "person.cards": (None, "查看社保卡信息"),
    "card.status": (None, "查看社保卡状态"),
    "ss_password.card_status": (None, "凭社保密码查看社保卡状态"),
    "card.apply_first": ("首次申领", "申领社保卡"),
    "card.collect": ("领卡", "领取社保卡"),
    "card.seal_uncollected": (None, "逾期未领封存"),
    "card.unseal": (None, "解除封存"),
    "window.person": (None, "查看个人信息"),
    "window.card_number": (None, "查看卡号"),
    "attorney.identity_check": ("身份核验", "核验身份"),
    "attorney.visit": (None, "查看办理记录"),
    "attorney.visit_identity": (None, "查看身份信息"),
    "attorney.end_visit": ("结束办理", "结束办理"),
    "card.collection_receipt": (None, "查看领卡回执"),
    "ss_password.reset_by_agent": ("代办重置社保应用密码", "代办重置社保应用密码"),
    "attorney.record": ("登记授权委托书", "登记授权委托书"),
    "attorney.revoke": ("撤销授权委托书", "撤销授权委托书"),
    "reversal.reverse": ("主管撤销经办业务", "服务网点主管撤销经办业务"),
    "attorney.list": (None, "查看授权委托书"),
    "attorney.view": (None, "查看授权委托书"),
    "ss_loss.report_temporary": ("临时挂失", "临时挂失登记"),
    "ss_loss.report_formal": ("社保正式挂失", "正式挂失"),
    "ss_loss.cancel": ("解除挂失", "解挂"),
    "loss.sweep_lapsed": (None, "临时挂失到期失效"),
    "replacement.apply": ("补换卡受理", "申请补换卡"),
    "replacement.apply_waived": ("补换卡受理（减免）", "申请补换卡（免收工本费）"),
    "replacement.receipt": (None, "查看收费收据"),
    "replacement.check": (None, "查看补换卡办理条件"),
    "replacement.complete_batch": ("制卡完成", "新卡制成"),
    "production.start_batch": ("送制新批次", "制卡"),
    "production.complete_batch": ("制卡完成", "新卡制成"),
    "ss_password.reset": ("重置社保应用密码", "重置社保应用密码"),
    "ss_password.change": (None, "社保应用密码修改"),
    "ss_password.verify": (None, "校验社保应用密码"),
    "query_password.reset": ("重置信息查询密码", "重置信息查询密码"),
    "query_password.change": (None, "信息查询密码修改"),
    "query_password.login": (None, "登录查询"),
    "bank.activate": (None, "启用金融功能"),
    "bank.extend_activation": (None, "延长启用期限"),
    "bank.deposit": (None, "存款"),
    "bank.withdraw": (None, "取款"),
    "bank.transfer": (None, "转账"),
    "bank.purchase": (None, "消费"),
    "bank.authorize_payment": (None, "预授权"),
    "bank.capture_payment": (None, "预授权完成"),
    "bank.void_payment": (None, "预授权撤销"),
    "bank.reverse_terminal": (None, "终端冲正"),
    "bank.balance": (None, "查询余额"),
    "bank.statement": (None, "查看账户明细"),
    "bank.freeze": (None, "冻结账户"),
    "bank.unfreeze": (None, "解除冻结"),
    "bank.close": (None, "销户"),
    "bank.reset_pin": (None, "重置银行密码"),
    "bank.change_pin": (None, "修改银行密码"),
    "bank.credit_pension": (None, "养老金入账"),
    "bank.expire_pending": (None, "预授权到期"),
    "bank_loss.report_oral": (None, "银行口头挂失"),
    "bank_loss.report_written": (None, "银行书面挂失"),
    "bank_loss.cancel": (None, "银行解挂"),
    "insurance.record_month": (None, "登记参保缴费"),
    "insurance.records": (None, "查看参保缴费记录"),
    "medical.pre_settle": (None, "医保预结算"),
    "medical.settle": (None, "医保结算"),
    "medical.refund": (None, "医保退费"),
    "medical.credit_month": (None, "医保个人账户划入"),
    "medical.settlement": (None, "查看医保结算单"),
    "medical.person_settlements": (None, "查看医保结算记录"),
    "medical.personal_account": (None, "查看医保个人账户"),
    "attorney.visit_actions": (None, "窗口查看可办理事项"),
    "bank_counter.customer": (None, "查看银行客户信息"),
    "bank_counter.statement": (None, "查看账户明细"),
    "bank_counter.slip": (None, "查看业务回单"),
    "bank_counter.confirmation": (None, "柜台办理前核对账户和最近交易"),
    "certificates.issue": (None, "开具参保证明"),
    "hotline.agent_request": (None, "热线转人工"),
    "hotline.agent_take": (None, "热线人工受理"),
    "hotline.agent_close": (None, "热线人工办结"),
    "hotline.bank_identify": (None, "银行热线身份验证"),
    "window.find_by_name": (None, "按姓名查找"),
    "window.queue": (None, "在待领卡名单中显示姓名"),
    "window.holder_collection_receipt": (None, "打印领卡回执"),
    "window.holder_fee_receipt": (None, "打印收费收据"),
    "window.reveal_citizen_id": (None, "查看完整身份号码"),
    "audit.read": (None, "查看操作记录"),
    "certificates.verify": (None, "参保证明被第三方凭验证码核验"),
}
# Declared operations and reads that never name a person in their audit record (the city's administration, a
# center's day, queues of many, a client's throttle) or that only cardholders call (their own acts are not in
# their access log): every other declaration has its words above (tests/test_catalogs.py), so a new one cannot
# show its code to a cardholder.
NOT_ABOUT_A_PERSON: frozenset[str] = frozenset({
    "city.add_bank", "city.add_center", "city.add_outlet", "city.add_terminal", "staff.add_user",
    "staff.login", "staff.issue_token", "staff.issue_terminal_keys", "medical.add_institution", "medical.add_terminal", "medical.set_designated",
    "medical.institutions", "ledger.check", "login.throttled", "throttle.caller_limited", "reports.center_day",
    "hotline.line_info", "hotline.sweep_idle_calls", "hotline.agent_queue", "events.feed", "retention.prune_keys",
    "reversal.candidates", "staff.disable", "staff.enable", "staff.reset_password", "staff.unlock",
    "staff.change_password", "staff.list",
})
OPERATION_STAFF: dict[str, str] = {op: staff for op, (staff, _) in AUDIT_OPERATIONS.items() if staff}
OPERATION_CARDHOLDER: dict[str, str] = {op: cardholder for op, (_, cardholder) in AUDIT_OPERATIONS.items()}
for _words in (OPERATION_STAFF, OPERATION_CARDHOLDER):
    _words.update({old: _words[new] for old, new in RENAMED_OPERATIONS.items() if new in _words})

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
    "report_cards": REPORT_CARDS,
    "window_event": WINDOW_EVENT,
    "bank_event": BANK_EVENT,
    "operation_staff": OPERATION_STAFF,
    "operation_cardholder": OPERATION_CARDHOLDER,
}


def label_zh(kind: str, value: str) -> str:
    """The Chinese label of `value` (the value itself when it has none: never an empty cell)."""
    return LABELS[kind].get(value, value)
