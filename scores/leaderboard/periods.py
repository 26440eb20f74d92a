"""The boards' time windows: all-time, the UTC day and the ISO week (Monday 00:00 UTC to the next Monday)."""

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

ALL_TIME = "all-time"
DAILY = "daily"
WEEKLY = "weekly"
PERIODS = (ALL_TIME, DAILY, WEEKLY)

# A period board outlives its window by this much, so a write that was in flight at midnight finds it; then Redis
# drops it on its own.
EXPIRY_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Window:
    """One board: a period and, for daily and weekly, the half-open span [start, end) of ledger rows it sums."""

    period: str
    key: str
    start: datetime | None = None
    end: datetime | None = None

    @property
    def is_all_time(self) -> bool:
        return self.start is None

    def expires_at(self, now: datetime) -> datetime | None:
        """When Redis may drop this board: never for all-time, else a grace period after the window closes."""
        if self.end is None:
            return None
        return max(self.end, now) + EXPIRY_GRACE


def containing(period: str, moment: datetime) -> Window:
    """The window of `period` that contains `moment`. Raises ValueError for an unknown period."""
    if period == ALL_TIME:
        return Window(ALL_TIME, ALL_TIME)
    day = moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == DAILY:
        return Window(DAILY, f"{DAILY}:{day.date().isoformat()}", day, day + timedelta(days=1))
    if period == WEEKLY:
        monday = day - timedelta(days=day.weekday())
        year, week, _ = monday.isocalendar()
        return Window(WEEKLY, f"{WEEKLY}:{year}-W{week:02d}", monday, monday + timedelta(days=7))
    raise ValueError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")


def current(period: str) -> Window:
    """The window of `period` that contains now."""
    return containing(period, datetime.now(timezone.utc))


def all_containing(moment: datetime) -> list[Window]:
    """Every board a score change at `moment` belongs to."""
    return [containing(period, moment) for period in PERIODS]
