"""Query budgets of the two hottest endpoints, on PostgreSQL with the Redis boards, as `make serve` runs them."""

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis]

ACTIONS = "/api/v1/users/me/actions"


@pytest.fixture
def warm(as_alice, quick_type):
    """A first start and completion: the boards get built and the per-process caches filled."""
    from scores import leaderboard

    action_id = as_alice.post(ACTIONS, {"actionType": "quick"}, format="json").json()["actionId"]
    as_alice.put(f"{ACTIONS}/{action_id}", {"status": "completed"}, format="json")
    leaderboard.rebuild()


def test_a_start_costs_at_most_six_queries(as_alice, warm, django_assert_max_num_queries):
    # action type, BEGIN, lock the user (the ban check rides on it), count open actions, INSERT, COMMIT
    with django_assert_max_num_queries(6):
        assert as_alice.post(ACTIONS, {"actionType": "quick"}, format="json").status_code == 201


@pytest.mark.parametrize("suspicion_rules, budget", [("on", 8), ("off", 6)])
def test_a_completion_costs_at_most_six_queries_plus_two_for_the_suspicion_rules(
    as_alice, warm, settings, django_assert_max_num_queries, suspicion_rules, budget
):
    if suspicion_rules == "off":  # as in bench/e2e.py
        settings.SUSPICION_WINDOW_POINTS = settings.SUSPICION_MIN_DURATION_STREAK = 0
    action_id = as_alice.post(ACTIONS, {"actionType": "quick"}, format="json").json()["actionId"]
    # BEGIN, lock the action (its owner's row joined for the ban check), UPDATE the action,
    # UPDATE ... RETURNING the total, INSERT the ledger row returning the period totals for the Redis boards,
    # [points in the window, the pace streak,] COMMIT
    with django_assert_max_num_queries(budget):
        response = as_alice.put(f"{ACTIONS}/{action_id}", {"status": "completed"}, format="json")
    assert response.status_code == 200 and response.json()["score"] == 20
