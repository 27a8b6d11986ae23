"""docs/RULES.md §11 ("Who may do what") is the readers' copy of the frame's declarations
(`services.access.DECLARATIONS`): every operation and query has its row, and the row's roles, scope and keyed
columns say what the declaration says. Session 28 found nine declarations without a row and six rows that had
drifted from the code (a pension credit said the operator could post one; the hotline agents' queue said `city`
where the frame checks `own`); a rule written twice drifts unless a test reads both."""

from __future__ import annotations

from pathlib import Path

from sscard.core.roles import Role
from sscard.services import access

RULES = Path(__file__).resolve().parents[2] / "docs" / "RULES.md"
SHORT = {"CH": Role.CARDHOLDER, "CL": Role.CLERK, "CS": Role.CENTER_SUPERVISOR, "T": Role.TELLER,
         "BS": Role.BANK_SUPERVISOR, "TM": Role.TERMINAL, "OP": Role.OPERATOR, "SYS": Role.SYSTEM}


def _rows() -> dict[str, list[str]]:
    text = RULES.read_text(encoding="utf-8")
    section = text[text.index("## 11. Who may do what"):]
    section = section[:section.index("\n## ", 10)]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0].split("`")[1]] = cells
    return rows


def _roles(cell: str) -> set[Role]:
    if cell == "all":
        return set(SHORT.values())
    if cell.startswith("all but "):
        return set(SHORT.values()) - {SHORT[r.strip()] for r in cell.removeprefix("all but ").split(",")}
    return {SHORT[r.strip()] for r in cell.split(",")}


def test_every_declared_operation_has_its_row_in_rules_section_11_saying_what_the_declaration_says():
    import importlib
    import pkgutil

    import sscard.services

    for module in pkgutil.iter_modules(sscard.services.__path__):  # every declaration made
        importlib.import_module(f"sscard.services.{module.name}")
    rows = _rows()
    # the product's declarations; not the `test.*` ones some tests declare to prove the frame refuses them
    # (in the same process when pytest-xdist gives both files to one worker)
    product = {name: d for name, d in access.DECLARATIONS.items() if not name.startswith("test.")}
    assert len(product) > 100
    missing = sorted(set(product) - set(rows))
    assert not missing, f"declared, with no row in docs/RULES.md §11: {missing}"
    unknown = sorted(set(rows) - set(product))
    assert not unknown, f"rows in docs/RULES.md §11 for no declaration: {unknown}"
    drifted = []
    for name, d in sorted(product.items()):
        _name, _function, roles, scope, keyed, *_rest = rows[name]
        said = (_roles(roles), scope.split()[0], keyed.startswith("yes"), "(query)" in _name)
        declared = (set(d.roles), str(d.scope), d.keyed and not d.read, d.read)
        if said != declared:
            drifted.append(f"{name}: the table says {said}, the declaration {declared}")
    assert not drifted, "\n".join(drifted)
    assert f"DECLARATIONS` ({len(product)} operations," in RULES.read_text(encoding="utf-8")
