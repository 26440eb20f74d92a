import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from scores import services
from scores.models import ActionType, ScoreEvent

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_seed_demo_creates_scored_players_once(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    call_command("seed_demo")
    assert ActionType.objects.filter(is_active=True).count() == 4
    alice = User.objects.get(username="alice")
    assert alice.score == 120 and User.objects.filter(score__gt=0).count() == 12
    call_command("verify_scores")


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("seed_demo")
    assert not User.objects.exists()


def test_verify_scores_reports_drift(alice, quick_type, capsys):
    action = services.start_action(user=alice, action_type_code="quick")
    services.complete_action(user=alice, action_id=action.pk)
    call_command("verify_scores")

    User.objects.filter(pk=alice.pk).update(score=999)  # corruption behind the write path's back
    with pytest.raises(CommandError, match="1 integrity problem"):
        call_command("verify_scores")
    assert "ledger sums to 10" in capsys.readouterr().err


def test_verify_scores_reports_unpaid_completion(alice, quick_type):
    action = services.start_action(user=alice, action_type_code="quick")
    services.complete_action(user=alice, action_id=action.pk)
    ScoreEvent.objects.filter(action=action).update(delta=3, resulting_total=3)
    User.objects.filter(pk=alice.pk).update(score=3)
    with pytest.raises(CommandError):
        call_command("verify_scores")
