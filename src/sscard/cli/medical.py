"""`sscard medical ...`: institutions, terminals, the monthly contribution credit (the benchmark is
`sscard bench medical`: sscard.bench)."""

from __future__ import annotations

import typer

from ..core.errors import SscardError
from ..core.money import format_yuan

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def register(app: typer.Typer) -> None:
    from . import console, fail, load_app

    medical_app = typer.Typer(no_args_is_help=True, help="Medical settlement: institutions and contributions.")
    app.add_typer(medical_app, name="medical")

    @medical_app.command("credit")
    def credit(
        month: str = typer.Option(..., help="YYYY-MM: the month whose contributions are credited"),
        amount: str = typer.Option("", help="yuan per person (default: policy medical.monthly_credit_fen)"),
        citizen_id: list[str] = typer.Option(None, "--citizen-id", help="only these people (repeatable)"),
        chunk: int = typer.Option(1000, min=1, help="people per transaction"),
    ) -> None:
        """Credit a month's contributions to personal accounts (all registered people, or those named).

        A person already credited for that month is skipped, so the job can be run again safely."""
        from sqlalchemy import select

        from ..core.money import yuan_to_fen
        from ..core.roles import CLI_OPERATOR
        from ..models.foundation import Person
        from ..services import medical

        sscard = load_app()
        try:
            fen = yuan_to_fen(amount) if amount else sscard.policy.medical.monthly_credit_fen
            if citizen_id:
                items = [{"citizen_id": c, "amount_fen": fen} for c in citizen_id]
            else:
                with sscard.db.session() as s:
                    items = [{"person_id": pid, "amount_fen": fen} for pid in s.scalars(select(Person.id))]
            totals = {"credited": 0, "skipped": 0, "total_fen": 0}
            for start in range(0, len(items), chunk):
                out = medical.credit_month(sscard, CLI_OPERATOR, month, items[start:start + chunk])
                for k in totals:
                    totals[k] += out[k]
        except SscardError as exc:
            fail(exc)
        finally:
            sscard.close()
        console.print(f"month {month}: credited {totals['credited']}, already credited {totals['skipped']}, "
                      f"total {format_yuan(totals['total_fen'])} yuan")

    @medical_app.command("add-institution")
    def add_institution(
        code: str, name: str,
        kind: str = typer.Option(..., help="hospital | pharmacy"),
        level: int | None = typer.Option(None, help="hospitals: 1, 2 or 3"),
        designated: bool = typer.Option(True, "--designated/--not-designated"),
        bank: str | None = typer.Option(None, help="bank code of the settlement account"),
        account_no: str = typer.Option("", help="settlement account number"),
    ) -> None:
        """Add a medical institution (designated for settlement unless --not-designated)."""
        from ..core.roles import CLI_OPERATOR
        from ..services import medical

        try:
            out = medical.add_institution(load_app(), CLI_OPERATOR, code, name, kind, level, designated,
                                          settlement_bank_code=bank, settlement_account_no=account_no)
        except SscardError as exc:
            fail(exc)
        console.print(out)

    @medical_app.command("add-terminal")
    def add_terminal(institution: str, code: str, name: str = "") -> None:
        """Add a hospital/pharmacy terminal to an institution (then: sscard user token --terminal CODE)."""
        from ..core.roles import CLI_OPERATOR
        from ..services import medical

        try:
            console.print(medical.add_terminal(load_app(), CLI_OPERATOR, institution, code, name))
        except SscardError as exc:
            fail(exc)

    @medical_app.command("institutions")
    def institutions() -> None:
        """List medical institutions."""
        from ..core.roles import CLI_OPERATOR
        from ..services import medical

        for inst in medical.list_institutions(load_app(), CLI_OPERATOR)["institutions"]:
            console.print(f"{inst['code']:<10} {inst['kind']:<9} L{inst['level'] or '-'} "
                          f"{'designated' if inst['designated'] else 'NOT designated':<15} {inst['name']}")
