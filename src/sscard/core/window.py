"""What a service-center window may do for one card now (issue 15/17): one pure function over the two
state enums, whether a replacement is under way, the visit's power-of-attorney scope and the clerk's role.

The console shows every action this returns: allowed ones as buttons, refused ones disabled with their
reason, *before* any click. The services still check everything themselves (a forged form is refused
there); this is the same rules said once, for the page, instead of card-state conditions in templates.

Reasons (machine-readable; the console words them):
- `state`: the card's state does not allow it (the console does not offer it at all);
- `replacement_pending`: a replacement was already applied for;
- `not_in_poa`: the agent's power of attorney does not name it (RULES §7);
- `in_person_only`: only the cardholder in person may do it (RULES §5, §6: cancel a loss, reset the
  query password);
- `supervisor_only`: the fee waiver;
- `other_center`: a ready card is handed over only at the center where it waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from .states import BankStatus, SsStatus

S = SsStatus

# action -> the power-of-attorney scope an agent needs for it (None: never by an agent)
AGENT_SCOPE: dict[str, str | None] = {
    "formal_loss": "ss_loss.report_formal",
    "cancel_loss": None,
    "replace": "replacement.apply",
    "pay_fee": "replacement.pay_fee",
    "collect": "card.collect",
    "ss_password": "ss_password.reset",
    "query_password": None,
}
CARD_ACTIONS = ("formal_loss", "cancel_loss", "replace", "collect", "ss_password")
ISSUED = frozenset({S.NORMAL, S.TEMPORARY_LOSS, S.FORMAL_LOSS})
_STATES: dict[str, frozenset[SsStatus]] = {
    "formal_loss": frozenset({S.NORMAL, S.TEMPORARY_LOSS}),
    "cancel_loss": frozenset({S.TEMPORARY_LOSS, S.FORMAL_LOSS}),
    "replace": ISSUED,
    "collect": frozenset({S.READY}),
    "ss_password": ISSUED,
}
_BLOCKED_BY_REPLACEMENT = frozenset({"formal_loss", "cancel_loss", "replace"})


@dataclass(frozen=True)
class Allowed:
    action: str
    allowed: bool
    reason: str | None = None  # see the module docstring
    needs_scope: str | None = None  # for `not_in_poa`: the scope that would allow it

    def as_dict(self) -> dict[str, object]:
        return {"action": self.action, "allowed": self.allowed, "reason": self.reason,
                "needs_scope": self.needs_scope}


def _by_agent(action: str, agent_scope: frozenset[str] | None) -> Allowed | None:
    """None when the presenter may do it; else the refusal."""
    if agent_scope is None:
        return None
    needed = AGENT_SCOPE[action]
    if needed is None:
        return Allowed(action, False, "in_person_only")
    if needed not in agent_scope:
        return Allowed(action, False, "not_in_poa", needed)
    return None


def card_actions(ss: SsStatus | str, bank: BankStatus | str | None, *, replaced: bool,
                 agent_scope: frozenset[str] | None, supervisor: bool, ready_here: bool = True) -> dict[str, Allowed]:
    """Every window action on one card, each allowed or not with why. `agent_scope` is None for the
    cardholder in person, else the scope of the visit's (valid) power of attorney; `ready_here`: a ready
    card waits at this clerk's center."""
    ss = SsStatus(ss)
    out: dict[str, Allowed] = {}
    for action in CARD_ACTIONS:
        if ss not in _STATES[action]:
            out[action] = Allowed(action, False, "state")
        elif replaced and action in _BLOCKED_BY_REPLACEMENT:
            out[action] = Allowed(action, False, "replacement_pending")
        elif action == "collect" and not ready_here:
            out[action] = Allowed(action, False, "other_center")
        else:
            out[action] = _by_agent(action, agent_scope) or Allowed(action, True)
    out.update(replacement_options(ss, bank, agent_scope=agent_scope, supervisor=supervisor))
    return out


def replacement_options(ss: SsStatus | str, bank: BankStatus | str | None, *, agent_scope: frozenset[str] | None,
                        supervisor: bool) -> dict[str, Allowed]:
    """Within a replacement: how the fee may be paid, and whether the formal loss may be recorded with it."""
    ss = SsStatus(ss)
    pay = _by_agent("pay_fee", agent_scope)
    out = {
        "pay_cash": pay or Allowed("pay_cash", True),
        # a card payment needs the card at hand (not lost) and a usable bank account behind it
        "pay_card": pay or (Allowed("pay_card", True) if ss is S.NORMAL and bank == BankStatus.ACTIVE
                            else Allowed("pay_card", False, "state")),
        "waive": Allowed("waive", True) if supervisor else Allowed("waive", False, "supervisor_only"),
        "record_formal_loss": Allowed("record_formal_loss", False, "state") if ss is S.FORMAL_LOSS
        else (_by_agent("formal_loss", agent_scope) or Allowed("record_formal_loss", True)),
    }
    return {k: Allowed(k, v.allowed, v.reason, v.needs_scope) for k, v in out.items()}


def person_actions(*, agent_scope: frozenset[str] | None) -> dict[str, Allowed]:
    """Actions on the person rather than a card (the query password is the person's)."""
    return {"query_password": _by_agent("query_password", agent_scope) or Allowed("query_password", True)}
