from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer

from accounts.authentication import refuse_if_banned
from accounts.serializers import LoginSerializer, RefreshTokenSerializer, RegisterSerializer
from accounts.services import register_user, revoke_refresh_token, rotate_refresh_token
from scoreboard_project.ratelimits import by_ip, rate_limit
from scores import leaderboard

User = get_user_model()


def _token_pair(access: str, refresh: str) -> dict:
    return {
        "accessToken": access,
        "refreshToken": refresh,
        "tokenType": "Bearer",
        "expiresIn": settings.ACCESS_TOKEN_LIFETIME_SECONDS,
    }


class CredentialView(APIView):
    """Takes credentials in the body, so ignores the Authorization header, but still answers 401 (not 403)."""

    permission_classes = [AllowAny]
    authentication_classes = []

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class RegisterView(CredentialView):

    @rate_limit("auth.register", rate_setting="RATE_LIMIT_REGISTER", key=by_ip)
    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = register_user(**serializer.validated_data)
        return Response({"userId": str(user.pk), "username": user.username}, status=status.HTTP_201_CREATED)


class LoginView(CredentialView):

    @rate_limit("auth.login", rate_setting="RATE_LIMIT_LOGIN", key=by_ip)
    def post(self, request: Request) -> Response:
        credentials = LoginSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        tokens = TokenObtainPairSerializer(data=credentials.validated_data, context={"request": request})
        tokens.is_valid(raise_exception=True)
        # Only after the password checked out, so the ban is not revealed to someone guessing passwords.
        refuse_if_banned(tokens.user)
        return Response(_token_pair(tokens.validated_data["access"], tokens.validated_data["refresh"]))


class RefreshView(CredentialView):

    def post(self, request: Request) -> Response:
        body = RefreshTokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            tokens = rotate_refresh_token(body.validated_data["refreshToken"])
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        return Response(_token_pair(tokens["access"], tokens["refresh"]))


class LogoutView(CredentialView):

    def post(self, request: Request) -> Response:
        body = RefreshTokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            revoke_refresh_token(body.validated_data["refreshToken"])
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    def get(self, request: Request) -> Response:
        user = User.objects.get(pk=request.user.pk)
        ranks = {period: leaderboard.rank_of(user, period=period) for period in leaderboard.PERIODS}
        return Response(
            {
                "userId": str(user.pk),
                "username": user.username,
                "score": user.score,
                "rank": ranks[leaderboard.ALL_TIME],
                "ranks": ranks,
            }
        )
