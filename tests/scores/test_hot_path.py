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


@pytest.mark.parametrize("suspicion_rules, budget", [("on", 6), ("off", 4)])
def test_a_completion_costs_at_most_four_queries_plus_two_for_the_suspicion_rules(
    as_alice, warm, settings, django_assert_max_num_queries, suspicion_rules, budget
):
    if suspicion_rules == "off":  # as in bench/e2e.py
        settings.SUSPICION_WINDOW_POINTS = settings.SUSPICION_MIN_DURATION_STREAK = 0
    action_id = as_alice.post(ACTIONS, {"actionType": "quick"}, format="json").json()["actionId"]
    # BEGIN, lock the action (its type and its owner's row joined, for the points and the ban check),
    # [points in the window, the pace streak,] one statement for the action's new state, the increment and the
    # ledger row (returning the period totals for the Redis boards), COMMIT
    with django_assert_max_num_queries(budget):
        response = as_alice.put(f"{ACTIONS}/{action_id}", {"status": "completed"}, format="json")
    assert response.status_code == 200 and response.json()["score"] == 20


def test_a_completion_answers_the_rank_its_board_write_left(as_alice, as_bob, alice, warm):
    # The rank comes back from the Redis board write itself (no separate read): it must be the board's rank.
    from scores import leaderboard

    def complete(client) -> dict:
        action_id = client.post(ACTIONS, {"actionType": "quick"}, format="json").json()["actionId"]
        return client.put(f"{ACTIONS}/{action_id}", {"status": "completed"}, format="json").json()

    complete(as_bob)
    assert complete(as_bob)["rank"] == 1  # bob 20 points, alice 10
    alice.refresh_from_db()
    assert leaderboard.rank_of(alice) == 2
    assert complete(as_alice)["rank"] == 2  # 20 each: bob reached it first
    body = complete(as_alice)
    assert (body["score"], body["rank"]) == (30, 1) and leaderboard.rank_of(alice) == 1


def test_repeated_completions_run_as_prepared_statements_on_postgresql(as_alice, warm, settings):
    # Server-side binding (DB_SERVER_SIDE_BINDING, on by default): after DB_PREPARE_THRESHOLD runs on one
    # connection PostgreSQL keeps the completion's statements planned instead of re-planning each one.
    from django.db import connection

    for _ in range(settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"] + 1):
        action_id = as_alice.post(ACTIONS, {"actionType": "quick"}, format="json").json()["actionId"]
        assert as_alice.put(f"{ACTIONS}/{action_id}", {"status": "completed"}, format="json").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("scores_scoreevent" in statement for statement in prepared), prepared
