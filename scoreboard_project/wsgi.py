import os
import sys

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scoreboard_project.settings")

application = get_wsgi_application()

# A threaded WSGI worker's request threads hand the GIL on only every 5 ms by default. The live-broadcast thread
# (scores.broadcast) spends its flush waiting on ~10 Redis round trips and needs the GIL back after each one, so in
# a busy worker a 2 ms flush took hundreds of milliseconds. A shorter interval lets it through sooner.
sys.setswitchinterval(settings.WSGI_SWITCH_INTERVAL_MS / 1000)
