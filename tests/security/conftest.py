"""Each attack asserts it failed visibly (the status a client sees) and that no score or ledger row changed."""

import pytest
from django.contrib.auth import get_user_model

from scores.integrity import find_problems
from scores.models import ScoreEvent


def _ledger_state() -> tuple:
    scores = tuple(get_user_model().objects.exclude(score=0).order_by("username").values_list("username", "score"))
    return scores, ScoreEvent.objects.count()


@pytest.fixture
def ledger_unchanged(db):
    """Use as a context: `with ledger_unchanged(): attack()`. Seed legitimate state before entering."""
    from contextlib import contextmanager

    @contextmanager
    def guard():
        before = _ledger_state()
        yield
        assert _ledger_state() == before, "the attack changed scores or the ledger"
        assert find_problems() == []

    return guard


def assert_error(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code
