"""What the migrations share: the column types they use, a table made from its columns with its keys and
constraints named by the naming convention, and its indexes.

The names are spelled out here (as models.base.NAMING makes them) rather than taken from the models' metadata,
so that a later change of the models cannot change what an old migration makes: a database migrated long ago
and a new one must hold the same schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op
from sqlalchemy.types import TypeEngine

from sscard.models.base import UtcDateTime

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # 64-bit ids; on SQLite the rowid (INTEGER)
INT = sa.Integer()
BIG = sa.BigInteger()
BOOL = sa.Boolean()
DATE = sa.Date()
JSON = sa.JSON()
TEXT = sa.Text()
TS = UtcDateTime(timezone=True)


def s(length: int) -> sa.String:
    """VARCHAR(length)."""
    return sa.String(length=length)


@dataclass(frozen=True)
class Nullable:
    type: TypeEngine


def null(type_: TypeEngine) -> Nullable:
    """A column that may hold NULL (columns are NOT NULL unless so marked)."""
    return Nullable(type_)


def columns(**types: TypeEngine | Nullable) -> list[sa.Column]:
    """The columns of a table, in order: `columns(id=INT, name=s(64), ended_at=null(TS))`."""
    return [sa.Column(name, t.type, nullable=True) if isinstance(t, Nullable) else sa.Column(name, t, nullable=False)
            for name, t in types.items()]


def create_table(
    name: str,
    cols: list[sa.Column],
    *,
    pk: str | tuple[str, ...] = "id",
    checks: Mapping[str, str] | None = None,
    fks: Mapping[str, str] | None = None,
    unique: Iterable[str | tuple[str, list[str]]] = (),
    index: Iterable[str] = (),
    indexes: Mapping[str, list[str]] | None = None,
    **kw: object,
) -> None:
    """Create table `name`, then its indexes. Each constraint is named by the convention:
    - `checks`: {suffix: SQL} -> ck_<table>_<suffix>;
    - `fks`: {column: referred table} -> a foreign key to <referred>.id named fk_<table>_<column>_<referred>;
    - `pk`: the primary key's column, or columns -> pk_<table>;
    - `unique`: a column (uq_<table>_<column>), or (name, columns);
    - `index`: a column indexed alone (ix_<table>_<column>); `indexes`: {name: columns}.
    In the CREATE TABLE the columns come first, then checks, foreign keys, primary key and unique constraints,
    each in the order given (SQLAlchemy writes constraints in the order they were made: all are made here)."""
    constraints: list[sa.Constraint] = [sa.CheckConstraint(sql, name=op.f(f"ck_{name}_{suffix}"))
                                        for suffix, sql in (checks or {}).items()]
    constraints += [sa.ForeignKeyConstraint([column], [f"{referred}.id"], name=op.f(f"fk_{name}_{column}_{referred}"))
                    for column, referred in (fks or {}).items()]
    constraints.append(sa.PrimaryKeyConstraint(*((pk,) if isinstance(pk, str) else pk), name=op.f(f"pk_{name}")))
    constraints += [sa.UniqueConstraint(u, name=op.f(f"uq_{name}_{u}")) if isinstance(u, str)
                    else sa.UniqueConstraint(*u[1], name=u[0]) for u in unique]
    op.create_table(name, *cols, *constraints, **kw)
    for column in index:
        op.create_index(op.f(f"ix_{name}_{column}"), name, [column], unique=False)
    for index_name, index_columns in (indexes or {}).items():
        op.create_index(index_name, name, index_columns, unique=False)


def drop_tables(*names: str) -> None:
    """Drop tables in the order given (their indexes go with them)."""
    for name in names:
        op.drop_table(name)
