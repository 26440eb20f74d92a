"""POST /api/v1/scores: a trusted game server awards the points of one action to a player."""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations import idempotency
from integrations.authentication import ApiKeyAuthentication, HasScope
from integrations.models import ApiClient
from integrations.serializers import AwardScoreSerializer
from scoreboard_project.errors import api_exception_handler
from scoreboard_project.ratelimits import rate_limit
from scores import leaderboard, services
from scores.exceptions import ScoreboardError

User = get_user_model()

IDEMPOTENCY_KEY_MAX_LENGTH = 255


class MissingIdempotencyKey(ScoreboardError):
    http_status = 400
    code = "idempotency_key_required"
    message = f"Send an Idempotency-Key header (1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable characters)."


def _by_client(request: Request) -> str:
    return f"client:{request.auth.pk}"


class AwardScoreView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    required_scope = ApiClient.SCOPE_AWARD

    @rate_limit("api.scores", rate_setting="RATE_LIMIT_API_CLIENT", key=_by_client)
    def post(self, request: Request) -> Response:
        key = request.META.get("HTTP_IDEMPOTENCY_KEY", "").strip()
        if not key or len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not key.isprintable():
            raise MissingIdempotencyKey()
        fingerprint = idempotency.request_hash(method=request.method, path=request.path, body=request._request.body)
        signature = request.META.get("HTTP_X_SIGNATURE", "") if request.auth.requires_signature else ""
        claim = idempotency.begin(client=request.auth, key=key, fingerprint=fingerprint, signature=signature)
        if isinstance(claim, idempotency.Replay):
            return Response(claim.body, status=claim.status, headers={"Idempotent-Replayed": "true"})
        try:
            response = self._award(request, claim)
        except (ScoreboardError, exceptions.APIException) as exc:
            # A refusal is this key's answer too: the same request will be refused the same way, without rework.
            response = api_exception_handler(exc, {"view": self, "request": request})
            if isinstance(exc, idempotency.IdempotencyInFlight):
                return response
            idempotency.finish(claim, status=response.status_code, body=response.data)
        except BaseException:
            idempotency.abandon(claim)
            raise
        return response

    def _award(self, request: Request, claim: Any) -> Response:
        body = AwardScoreSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        source = {"source": "api", "apiClient": request.auth.name, "idempotencyKey": claim.key}
        with transaction.atomic():
            idempotency.lock_claim(claim)
            action = services.award_action_points(
                user_id=body.validated_data["userId"], action_type_code=body.validated_data["actionType"], source=source
            )
            user = User.objects.get(pk=action.user_id)
            payload = {
                "status": "success",
                "userId": str(user.pk),
                "pointsAwarded": action.points_awarded,
                "score": user.score,
                "rank": None,
            }
            # The award and its stored response commit together: a retry can never pay twice.
            idempotency.finish(claim, status=200, body=payload)
        # The rank is read after the commit, once the board has applied the change.
        payload["rank"] = leaderboard.rank_of(user)
        idempotency.finish(claim, status=200, body=payload)
        return Response(payload)
