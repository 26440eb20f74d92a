"""What every backend returns: a Board of ranked Entries, serialised the same way whichever store answered."""

from dataclasses import dataclass, field
from datetime import datetime

from scores.leaderboard.periods import ALL_TIME


@dataclass(frozen=True)
class Entry:
    rank: int
    user_id: str
    username: str
    score: int

    def as_json(self) -> dict:
        return {"rank": self.rank, "userId": self.user_id, "username": self.username, "score": self.score}


@dataclass(frozen=True)
class Board:
    entries: list[Entry] = field(default_factory=list)
    last_updated: datetime | None = None
    version: int = 0
    period: str = ALL_TIME

    def as_json(self) -> dict:
        return {
            "data": [entry.as_json() for entry in self.entries],
            "lastUpdated": self.last_updated.isoformat() if self.last_updated else None,
            "version": self.version,
            "period": self.period,
        }
