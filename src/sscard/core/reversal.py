"""A center supervisor's reversal of a clerk's action (RULES §1: "reversal of a clerk's action").

Which actions can be undone, and how, said once: the service (services.reversal) finds the action's audit
record, checks the conditions below and applies the steps; the console and the API list what `why_not`
lets through. Pure: no database, no clock of its own.

What may be reversed, and only when all of these hold:
- the action succeeded, at the supervisor's own center, and was a clerk's (not the supervisor's own: a
  reversal is a second person's decision, and a supervisor's action has nobody above it here);
- it was done today (Shanghai), the day the supervisor signs the day report for;
- it was not reversed already, and nothing changed its object since (a card whose state moved on, a power
  of attorney already revoked, an application already in a production batch): undoing an action that later
  ones rest on would undo them silently;
- a loss that also recorded the bank's (policy loss.linked) is not reversed here: the bank side is the bank's.

How (each step is one of the card's own state machine events, core.states, so no new state is reachable):
- a temporary SS loss reported in error: `cancel_loss`;
- a formal SS loss recorded in error: `cancel_loss`, then `report_temporary_loss` when the card was under a
  temporary loss before (it lapses after the policy's days from the reversal: the protection the
  cardholder asked for is not shortened);
- a loss cancelled in error: the loss again (`report_temporary_loss` or `report_formal_loss`);
- a first card applied for in error: the card `cancel`led and its not-yet-activated account closed, unless
  money reached that account (a pension, a deposit, a transfer in: credits are taken before activation), which
  a withdrawal would leave in a closed account nobody can pay out;
- a power of attorney recorded in error: revoked;
- a replacement applied for in error (`replacement.apply`, or a supervisor's `replacement.apply_waived`, which
  another supervisor of the center reverses: never its own), while its new card is not in a production batch
  and no money reached the new card's account: the new card `cancel`led and its account closed, the fee
  refunded the way it was paid, the old card left as it is (a formal loss recorded in the same application
  stays: it is the cardholder's report) (docs/RULES.md R6.15).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from .clock import SHANGHAI
from .states import SsStatus

S = SsStatus

REVERSER_ROLE = "center_supervisor"
REVERSED_ROLE = "clerk"


@dataclass(frozen=True)
class Reversible:
    """One kind of action that can be undone: what its audit record names, and the words a page shows."""

    object_type: str
    zh: str
    en: str


REVERSIBLE: dict[str, Reversible] = {
    "ss_loss.report_temporary": Reversible("card", "撤销临时挂失", "Undo the temporary loss"),
    "ss_loss.report_formal": Reversible("card", "撤销正式挂失", "Undo the formal loss"),
    "ss_loss.cancel": Reversible("card", "恢复被解除的挂失", "Restore the cancelled loss"),
    "card.apply_first": Reversible("card", "撤销首次申领", "Withdraw the first-card application"),
    "attorney.record": Reversible("power_of_attorney", "撤销授权委托书登记", "Revoke the recorded power of attorney"),
    "replacement.apply": Reversible("card", "撤销补换卡申请并退还工本费", "Withdraw the replacement and refund its fee"),
    "replacement.apply_waived": Reversible("card", "撤销补换卡申请（工本费已减免）",
                                           "Withdraw the replacement (its fee was waived)"),
}

# a new card's application: withdrawn while the card is not in a production batch (R6.15)
APPLICATIONS = frozenset({"card.apply_first", "replacement.apply", "replacement.apply_waived"})
REPLACEMENTS = frozenset({"replacement.apply", "replacement.apply_waived"})
# actions only a supervisor does: reversed by another supervisor of the center, never by the one who did it
SUPERVISORS_OWN = frozenset({"replacement.apply_waived"})

# why a reversal is refused (the `not_reversible` error's `why`), in both languages
WHY: dict[str, tuple[str, str]] = {
    "kind": ("此类业务不能撤销", "this kind of action cannot be reversed"),
    "refused": ("该业务未办成", "the action did not succeed"),
    "other_center": ("该业务不是本服务网点办理的", "the action was done at another service center"),
    "not_a_clerk": ("只能撤销经办人员办理的业务", "only a clerk's action can be reversed"),
    "not_today": ("只能撤销当日办理的业务", "only an action of today can be reversed"),
    "reversed": ("该业务已撤销", "the action was reversed already"),
    "changed": ("该业务之后已有其他变动", "something has changed since the action"),
    "bank_side": ("该业务同时办理了银行账户挂失，请到银行办理", "the action also reported the bank account lost: "
                  "that side is undone at the bank"),
    "in_production": ("该卡已进入制卡批次", "the card is already in a production batch"),
    "money": ("该卡的银行账户已有资金入账", "money has reached the card's bank account"),
    "own_action": ("本人办理的业务须由本网点另一名主管撤销", "your own action is reversed by another supervisor "
                   "of the center"),
    "fee_account": ("原卡银行账户已不能入账，工本费无法退回原卡", "the old card's account takes no credit: the "
                    "fee cannot go back to it"),
}


@dataclass(frozen=True)
class Action:
    """What the audit record of a clerk's action says, as the rules need it."""

    operation: str
    result: str
    actor_role: str
    place: str
    at: datetime
    before: str
    after: str
    linked_bank: bool
    actor_id: str = ""

    @property
    def day(self) -> date:
        return self.at.astimezone(SHANGHAI).date()


def why_not(action: Action, *, center_code: str, today: date, reversed_already: bool,
            reverser_id: str | None = None) -> str | None:
    """The reason (a key of WHY) the action cannot be reversed by a supervisor of `center_code` (staff id
    `reverser_id`) today, or None when it can, as far as its record tells (the service then checks that its
    object has not moved). An action only a supervisor does (SUPERVISORS_OWN: a fee waived) is reversed by
    another supervisor of the center, a second person as for a clerk's (R6.15)."""
    if action.operation not in REVERSIBLE:
        return "kind"
    if action.result != "ok":
        return "refused"
    if action.place != center_code:
        return "other_center"
    if action.operation in SUPERVISORS_OWN and action.actor_role == REVERSER_ROLE:
        if reverser_id is not None and action.actor_id == reverser_id:
            return "own_action"
    elif action.actor_role != REVERSED_ROLE:
        return "not_a_clerk"
    if action.day != today:
        return "not_today"
    if reversed_already:
        return "reversed"
    if action.linked_bank:
        return "bank_side"
    return None


def card_moved(action: Action, *, state: str, changed_at: datetime, in_batch: bool, replaced: bool,
               account_used: bool = False) -> str | None:
    """Why a card action can no longer be undone because its card moved on since (a WHY key), or None:
    another state, a later change (even one that came back to the same state), a production batch, a
    replacement applied for, or (a first card's or a replacement's application) money that reached the new
    card's account: its withdrawal closes the account, and a closed account's money could never be paid out
    (session 27)."""
    if action.operation in APPLICATIONS and in_batch:
        return "in_production"
    if action.operation in APPLICATIONS and account_used:
        return "money"
    if state != action.after or changed_at > action.at or replaced:
        return "changed"
    return None


def card_steps(action: Action) -> tuple[str, ...]:
    """The card's state machine events that undo a card action, from the state it left (`after`) back to
    the one it found (`before`)."""
    before = action.before
    if action.operation == "ss_loss.report_temporary":
        return ("cancel_loss",)
    if action.operation == "ss_loss.report_formal":
        return ("cancel_loss", "report_temporary_loss") if before == S.TEMPORARY_LOSS else ("cancel_loss",)
    if action.operation == "ss_loss.cancel":
        return ("report_formal_loss",) if before == S.FORMAL_LOSS else ("report_temporary_loss",)
    if action.operation in APPLICATIONS:  # the new card, still applied for
        return ("cancel",)
    raise ValueError(f"not a card action: {action.operation}")
