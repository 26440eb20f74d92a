"""Django's PostgreSQL backend with connection health checks that cost no round trip.

Django checks a reused connection (CONN_HEALTH_CHECKS) with `SELECT 1` at the start of each request, and its
psycopg pool checks each connection it hands out with an empty query: a round trip to PostgreSQL per request,
~9% of a completion's time under load. An idle connection receives nothing from the server unless something
happened to it: a backend that is terminated, or a server that shuts down or crashes, writes its FATAL message and
closes the socket. So a socket with nothing to read is taken as usable, and only one with something to read gets
the real check, which reads it and fails when the connection is gone.
"""

import select

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLDatabaseWrapper
from psycopg_pool import ConnectionPool


class DatabaseWrapper(PostgreSQLDatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None or self.connection.closed or self.connection.broken:
            return False
        if not has_data_waiting(self.connection.fileno()):
            return True
        return super().is_usable()

    @property
    def pool(self):
        """Django's own pool property, building a CheapCheckPool instead of a plain ConnectionPool."""
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = {**self.get_connection_params(), "autocommit": True}  # Django sets it later on
            pool = CheapCheckPool(
                kwargs=connect_kwargs, open=False, configure=self._configure_connection,
                checked=self.settings_dict["CONN_HEALTH_CHECKS"], **({} if pool_options is True else pool_options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]


class CheapCheckPool(ConnectionPool):
    """psycopg's pool, checking a connection it hands out by its socket first (see the module docstring).

    A dead one found means the server went away, so every idle connection is checked then: otherwise psycopg
    backs off 1 s, then 2 s, ... between the dead connections it draws one by one after a restart, and requests
    time out waiting for the pool (503) long after the database is back.
    """

    def __init__(self, *args, checked: bool, **kwargs) -> None:
        super().__init__(*args, check=self._check_cheaply if checked else None, **kwargs)

    def _check_cheaply(self, conn) -> None:
        if not (conn.closed or conn.broken or has_data_waiting(conn.fileno())):
            return
        try:
            self.check_connection(conn)
        except Exception:
            self.check()
            raise


def has_data_waiting(fileno: int) -> bool:
    poller = select.poll()  # not select.select(), which refuses descriptors above 1023
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))
