import pytest

from scores import broadcast


@pytest.fixture
def quick_broadcasts(settings):
    """A short coalescing window, and no pending change or last board left over from another test."""
    settings.LIVE_COALESCE_MS = 50
    broadcast.reset()
    yield
    broadcast.reset()
