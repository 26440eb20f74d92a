from datetime import timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.utils.dateparse import parse_datetime
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.exceptions import NotAuthenticated, NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import AccountCheckedInService
from scoreboard_project.client_ip import client_ip
from scoreboard_project.ratelimits import rate_limit
from scores import leaderboard, services
from scores.models import Action, ActionType
from scores.serializers import (
    ActionSerializer,
    ActionTypeSerializer,
    LeaderboardQuerySerializer,
    StartActionSerializer,
    UpdateActionSerializer,
)

User = get_user_model()


def _require_own_path(request: Request, user_id: str) -> None:
    if user_id != "me" and user_id != str(request.user.pk):
        raise PermissionDenied("You can only act on your own actions.")


class ActionTypeListView(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        types = ActionType.objects.filter(is_active=True)
        return Response({"data": ActionTypeSerializer(types, many=True).data})


class NewestFirst(CursorPagination):
    ordering = ("-started_at", "-id")
    page_size = 20
    max_page_size = 100
    page_size_query_param = "limit"

    def get_page_size(self, request: Request) -> int:
        # DRF falls back to the default on a bad `limit`; the API answers 400, as the leaderboard does.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # isdigit() alone also passes "²" and 5,000-digit strings, which int() refuses.
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"limit": [f"limit must be an integer from 1 to {self.max_page_size}."]})
        return int(raw)

    def decode_cursor(self, request: Request) -> Cursor | None:
        # DRF checks a cursor's encoding, not its position, which goes to the database as a started_at value: an
        # edited one must be an invalid cursor (404), not a database error.
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                position = parse_datetime(cursor.position)
                if position is not None and position.tzinfo is not None:
                    position.astimezone(dt_timezone.utc)  # OverflowError for a date whose UTC is out of range
                valid = position is not None
            except (ValueError, OverflowError):
                valid = False
            if not valid:
                raise NotFound(self.invalid_cursor_message)
        return cursor

    def get_paginated_response(self, data: list) -> Response:
        return Response({"data": data, "next": self.get_next_link(), "previous": self.get_previous_link()})


class UserActionsView(AccountCheckedInService, APIView):
    checked_in_service = ("POST",)  # start_action reads (and locks) the caller's row

    def get(self, request: Request, user_id: str) -> Response:
        _require_own_path(request, user_id)
        paginator = NewestFirst()
        actions = Action.objects.filter(user=request.user).select_related("action_type")
        page = paginator.paginate_queryset(actions, request, view=self)
        return paginator.get_paginated_response(ActionSerializer(page, many=True).data)

    @rate_limit("actions.start", rate_setting="RATE_LIMIT_START_ACTION")
    def post(self, request: Request, user_id: str) -> Response:
        _require_own_path(request, user_id)
        body = StartActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        action = services.start_action(
            user=request.user,
            action_type_code=body.validated_data["actionType"],
            metadata=body.validated_data["metadata"],
            client_ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        data = ActionSerializer(action).data
        return Response({key: data[key] for key in ("actionId", "userId", "actionType", "status", "startedAt", "expiresAt")},
                        status=status.HTTP_201_CREATED)


class UserActionView(AccountCheckedInService, APIView):
    checked_in_service = ("PUT",)  # complete_action / cancel_action read the action's owner with the action

    @rate_limit("actions.complete", rate_setting="RATE_LIMIT_COMPLETE_ACTION")
    def put(self, request: Request, user_id: str, action_id: str) -> Response:
        _require_own_path(request, user_id)
        body = UpdateActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if body.validated_data["status"] == Action.Status.COMPLETED:
            action = services.complete_action(user=request.user, action_id=action_id)
        else:
            action = services.cancel_action(user=request.user, action_id=action_id)
        # A completion knows the new total from its own transaction, and the rank from its board write; else read.
        score = getattr(action, "resulting_total", None)
        user = request.user if score is not None else User.objects.get(pk=request.user.pk)
        if score is not None:
            user.score = score
        rank = action.resulting_rank if hasattr(action, "resulting_rank") else leaderboard.rank_of(user)
        return Response(
            {
                "actionId": str(action.pk),
                "status": action.status,
                "pointsAwarded": action.points_awarded,
                "score": user.score,
                "rank": rank,
                "completedAt": action.completed_at.isoformat() if action.completed_at else None,
            }
        )


class LeaderboardView(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        query = LeaderboardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit, period = query.validated_data["limit"], query.validated_data["period"]
        if query.validated_data.get("around") == "me":
            if not request.user.is_authenticated:
                raise NotAuthenticated()
            return Response(leaderboard.around(request.user, limit, period=period).as_json())
        return Response(leaderboard.top(limit, period=period).as_json())
