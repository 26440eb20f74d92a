"""Where the box's CPU goes during one phase of a benchmark: the server's processes, PostgreSQL's, Redis's, the load
generator's, the viewers' and the rest of the machine, from /proc (Linux only).

    split = CpuSplit({"server": server_pids, "viewers": [viewer_pid]})
    ... the phase ...
    per_operation_ms(*split.seconds(), completions)  # {"server": 3.1, "postgresql": 0.8, ..., "idle_percent": 2.0}

PostgreSQL's and Redis's processes are found by name, so the machine's shared services are counted whichever
cluster the benchmark uses. A process that exits during the phase loses its share (and it lands in "other").
"""

import os
from pathlib import Path

from fanout import cpu_seconds

_TICK = os.sysconf("SC_CLK_TCK")
_BY_NAME = {"postgresql": "postgres", "redis": "redis-server"}


def _seconds(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # exited since it was listed
        return 0.0


def _pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot; iowait counts as idle."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])  # guest time is already inside user
    return total - idle, total


class CpuSplit:
    def __init__(self, parties: dict[str, list[int]]) -> None:
        self._parties = {**parties, "load_generator": [os.getpid()]}
        self._before = self._snapshot()
        self._machine_before = _machine_ticks()

    def _snapshot(self) -> dict[str, dict[int, float]]:
        pids = {**self._parties, **{party: _pids_named(name) for party, name in _BY_NAME.items()}}
        return {party: {pid: _seconds(pid) for pid in group} for party, group in pids.items()}

    def seconds(self) -> tuple[dict[str, float], float]:
        """CPU seconds per party since the split began ("other": the rest of the machine), and the idle share in %."""
        after = self._snapshot()
        busy_after, total_after = _machine_ticks()
        busy = (busy_after - self._machine_before[0]) / _TICK
        spent = {
            party: sum(now - self._before[party].get(pid, 0.0) for pid, now in group.items())
            for party, group in after.items()
        }
        spent["other"] = max(0.0, busy - sum(spent.values()))
        idle = (total_after - self._machine_before[1]) / _TICK - busy
        return spent, round(100 * idle / max(idle + busy, 1e-9), 1)


def per_operation_ms(spent: dict[str, float], idle_percent: float, operations: int) -> dict[str, float]:
    per_operation = {party: round(seconds * 1000 / max(operations, 1), 2) for party, seconds in spent.items()}
    return {**per_operation, "idle_percent": idle_percent}


def describe(split: dict[str, float]) -> str:
    parts = [f"{party.replace('_', ' ')} {ms}" for party, ms in split.items() if party != "idle_percent"]
    busy = sum(ms for party, ms in split.items() if party != "idle_percent")
    return f"CPU ms per operation: {', '.join(parts)} (total {busy:.2f}); cores idle {split['idle_percent']}%"
