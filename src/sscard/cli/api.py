"""`sscard api snapshot`: refresh the committed OpenAPI (docs/openapi.json) from the code."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    api_app = typer.Typer(no_args_is_help=True, help="The API's contract (docs/API.md).")
    app.add_typer(api_app, name="api")

    @api_app.command("snapshot")
    def snapshot(check: bool = typer.Option(False, "--check", help="Only compare; exit 1 when out of date.")) -> None:
        """Write the live OpenAPI to docs/openapi.json (pretty, sorted keys); --check lists breaks."""
        import json

        from ..api import snapshot as snap
        from ..composition import create_app

        live = create_app().openapi()
        if check:
            old = json.loads(snap.SNAPSHOT.read_text(encoding="utf-8"))
            breaks, differs = snap.compare(old, live)
            for line in breaks:
                typer.echo(f"BREAKING: {line}")
            if differs:
                typer.echo("docs/openapi.json is out of date: run `sscard api snapshot`")
                raise typer.Exit(1)
            typer.echo("docs/openapi.json matches the code")
            return
        typer.echo(f"wrote {snap.write(live)}")
