"""`uvicorn sscard.api.asgi:application`: settings and policy from the environment."""

from .main import create_app

application = create_app()
