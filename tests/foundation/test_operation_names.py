"""An operation's name says where it lives: its prefix is its module's name (`attorney.record` in
services/attorney.py), or one of the few homes listed here. Audit records, the portal's access log and
the API's operationIds carry these names, so a reader of any of them can open the right file."""

from __future__ import annotations

import importlib
import pkgutil

import sscard.services as services

# Prefixes older than this rule, whose operations live in a module named otherwise. New prefixes are not
# added here: name the operation after its module, or put it in the module its prefix names.
HOMES = {
    "bank": {"banking"},
    "ledger": {"banking"},  # the operator's ledger check (services/ledger.py holds the ledger itself)
    "card": {"cards", "enrolment"},  # enrolment: a first card's application
    "person": {"cards", "enrolment"},  # enrolment: registering a person
    "ss_loss": {"loss"},
    "bank_loss": {"loss"},
    "ss_password": {"passwords"},
    "query_password": {"passwords"},
    "portal": {"insurance"},
    "login": {"throttle"},
}


def _operations() -> dict[str, str]:
    """operation name -> the services module that declares it."""
    found = {}
    for info in pkgutil.iter_modules(services.__path__):
        module = importlib.import_module(f"{services.__name__}.{info.name}")
        for value in vars(module).values():
            name = getattr(value, "operation_name", None)
            if name and value.__module__ == module.__name__:
                found[name] = info.name
    return found


def test_every_operation_lives_in_the_module_its_name_says():
    wrong = {name: module for name, module in _operations().items()
             if module not in HOMES.get(name.split(".")[0], {name.split(".")[0]})}
    assert wrong == {}


def test_the_window_operations_are_found_by_their_names():
    ops = _operations()
    assert ops["window.person"] == "window" and ops["attorney.identity_check"] == "attorney"
    assert ops["card.collect"] == "cards" and ops["ss_password.reset_by_agent"] == "passwords"
    assert not [name for name in ops if name.startswith("counter.")]
