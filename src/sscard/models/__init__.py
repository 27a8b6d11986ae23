"""SQLAlchemy tables, one module per business area. Schema changes go through Alembic migrations."""

from . import counter, events, foundation, hotline, insurance, ledger, medical  # noqa: F401  (register tables)
from .base import Base

__all__ = ["Base"]
