"""The write path's locking read of an action, with its type and its owner, in one statement.

Called only by scores.services inside its transaction. On PostgreSQL the statement's text is built once per process
from the models' tables and columns and its row becomes model instances directly: compiling the equivalent
select_related queryset on every call was a quarter of a completion's CPU. Elsewhere the queryset says the same.
"""

from functools import cache
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db import connection

from scores.models import Action, ActionType

User = get_user_model()

# The owner's columns the services read (the account checks, the board's username); the rest stay deferred.
OWNER_FIELDS = ("id", "username", "is_active", "is_banned")


def lock_action(action_id: UUID, *, lock_owner: bool) -> Action:
    """The action with `.action_type` and `.user` loaded, its row locked, and its owner's too when `lock_owner`
    (always in that order: the action, then the user). Raises Action.DoesNotExist."""
    if connection.vendor != "postgresql":
        locked = ("self", "user") if lock_owner else ("self",)
        return Action.objects.select_for_update(of=locked).select_related("action_type", "user").get(pk=action_id)
    action_fields, type_fields, owner_fields = _fields()
    with connection.cursor() as cursor:
        cursor.execute(_sql(lock_owner), [action_id])
        row = cursor.fetchone()
    if row is None:
        raise Action.DoesNotExist
    ends = (len(action_fields), len(action_fields) + len(type_fields))
    action = Action.from_db(connection.alias, action_fields, row[: ends[0]])
    action.action_type = ActionType.from_db(connection.alias, type_fields, row[ends[0]: ends[1]])
    action.user = User.from_db(connection.alias, owner_fields, row[ends[1]:])
    return action


@cache
def _fields() -> tuple[list[str], list[str], list[str]]:
    return tuple([field.attname for field in fields] for fields in _selected_fields())


@cache
def _selected_fields() -> tuple[list[Any], list[Any], list[Any]]:
    # In the models' own field order, as Model.from_db expects of a partial row.
    def concrete(model: Any, wanted: set[str] | None = None) -> list[Any]:
        return [field for field in model._meta.concrete_fields if wanted is None or field.name in wanted]

    action_columns = {"id", "user", "action_type", "status", "started_at", "completed_at", "points_awarded"}
    return concrete(Action, action_columns), concrete(ActionType), concrete(User, set(OWNER_FIELDS))


@cache
def _sql(lock_owner: bool) -> str:
    quote = connection.ops.quote_name
    selected = [f"{alias}.{quote(field.column)}"
                for alias, fields in zip("atu", _selected_fields()) for field in fields]
    action_type, owner = (quote(Action._meta.get_field(name).column) for name in ("action_type", "user"))
    return (
        f"SELECT {', '.join(selected)} FROM {quote(Action._meta.db_table)} a "
        f"JOIN {quote(ActionType._meta.db_table)} t ON t.{quote(ActionType._meta.pk.column)} = a.{action_type} "
        f"JOIN {quote(User._meta.db_table)} u ON u.{quote(User._meta.pk.column)} = a.{owner} "
        f"WHERE a.{quote(Action._meta.pk.column)} = %s FOR UPDATE OF a{', u' if lock_owner else ''}"
    )
