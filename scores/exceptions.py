"""Domain errors raised by the write path; the API's exception handler turns each into its HTTP status."""

from datetime import datetime
from typing import Any


class ScoreboardError(Exception):
    http_status = 400
    code = "error"
    message = "The request could not be processed."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.message
        self.details = details
        super().__init__(self.message)


class UnknownActionType(ScoreboardError):
    http_status = 422
    code = "unknown_action_type"
    message = "This action type does not exist or is not active."


class ActionNotFound(ScoreboardError):
    http_status = 404
    code = "action_not_found"
    message = "No such action."


class NotYourAction(ScoreboardError):
    http_status = 403
    code = "forbidden"
    message = "This action belongs to another user."


class ActionNotStarted(ScoreboardError):
    http_status = 409
    code = "action_not_started"

    def __init__(self, status: str) -> None:
        super().__init__(f"This action is {status}; only a started action can change.", status=status)


class ActionTooFast(ScoreboardError):
    http_status = 422
    code = "action_too_fast"

    def __init__(self, earliest: datetime, seconds_remaining: float) -> None:
        super().__init__(
            "This action cannot be completed yet.",
            earliestCompletionAt=earliest.isoformat(),
            secondsRemaining=round(seconds_remaining, 3),
        )


class TooManyOpenActions(ScoreboardError):
    http_status = 409
    code = "too_many_open_actions"
    message = "You already have the maximum number of started actions; complete or cancel one first."


class DailyCapReached(ScoreboardError):
    http_status = 422
    code = "daily_cap_reached"
    message = "You have reached today's limit for this action type."


class ActionNotCompleted(ScoreboardError):
    http_status = 409
    code = "action_not_completed"

    def __init__(self, status: str) -> None:
        super().__init__(f"This action is {status}; only a completed action can be voided.", status=status)


class UserNotFound(ScoreboardError):
    http_status = 404
    code = "user_not_found"
    message = "No such user."


class UserBanned(ScoreboardError):
    http_status = 403
    code = "banned"
    message = "This user is banned."


class AccountInactive(ScoreboardError):
    http_status = 401
    code = "authentication_failed"
    message = "This account is inactive."
