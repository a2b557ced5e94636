"""Rows read with Core, handed out as the ORM would have handed them out: detached objects.

The survey step's two reads (the person's contact, their open session) ran through the
ORM's query machinery (compile state, loading, the identity map) at about three times the
CPU of the statement itself. `detached` builds the object the way the ORM's loader does
(the class's ``__new__``, the column values, an identity key) without it, so callers get
the same objects they always got: readable after the transaction, never written back by a
session they are not in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlmodel import SQLModel

M = TypeVar("M", bound=SQLModel)


def detached(model: type[M], values: Mapping[Any, Any]) -> M:
    """`model`'s row with these column values (every column: keys are column names), as a
    detached object."""
    manager = manager_of_class(model)
    instance: M = manager.new_instance()
    instance.__dict__.update(values)
    make_transient_to_detached(instance)
    return instance


def set_stored(instance: SQLModel, values: Mapping[str, Any]) -> None:
    """Values the caller just wrote to the object's row itself (an UPDATE): the object shows
    them, and no session counts them as changes still to flush."""
    for key, value in values.items():
        set_committed_value(instance, key, value)
