"""The phases of one layout's end-to-end run (bench/e2e.py): reads, viewers, starts, completions, cycles, delivery
and the integrity checks, in that order, against a started stack. Every loop is bounded in count and time."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cpu_split import CpuSplit, describe, per_operation_ms
from deploy.stack import Stack
from http_load import Http, hammer, ms, pct
from ws_viewer import Received, ViewerProcess, board_rows, board_spreads, delivery_latencies

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS = BASE_DIR / "bench" / "results"
START = b'{"actionType": "tap"}'
COMPLETE = b'{"status": "completed"}'


class LayoutRun:
    """One layout under load: each phase adds its figures to `result` and prints them as it ends."""

    def __init__(self, stack: Stack, mode: str, args: argparse.Namespace, tokens: list[str]) -> None:
        self.stack, self.mode, self.args, self.tokens = stack, mode, args, tokens
        self.port = stack.port
        self.result: dict = {}
        self.viewers = ViewerProcess([0], 0)
        self.started: list[tuple[str, str]] = []  # (token, action id)
        self.acknowledged: list[str] = []
        self.acknowledged_at: dict[str, float] = {}
        self.in_top_ten: set[str] = set()  # completions whose payer ranked 1-10 after it: each one changed the board
        self.measured: set[str] = set()  # the completions phase's: delivery is measured on these, not the cycles'

    async def reads(self) -> None:
        """The ceiling (a bare Django view through the whole middleware stack), then board reads."""
        for name, path in (("ceiling_healthz", "/healthz"), ("get_leaderboard", "/api/v1/leaderboard")):
            self.result[name] = await hammer(self.port, self.args.connections, self.args.seconds,
                                             lambda client, index, path=path: _status(client.request("GET", path)))
            print(f"GET {path}: {self.result[name]['per_second']}/s", flush=True)

    async def connect_viewers(self) -> None:
        began = time.monotonic()
        ports = [self.stack.live_port] if self.args.viewers_direct else [self.port]
        self.viewers = ViewerProcess(ports, self.args.viewers)
        connected = await self.viewers.start()
        self.result["viewers_connect_seconds"] = round(time.monotonic() - began, 1)
        print(f"{connected} viewers connected in {self.result['viewers_connect_seconds']} s", flush=True)

    async def starts(self) -> None:
        """Start the actions the completions phase will complete, spread over the players."""
        plan = [self.tokens[i % len(self.tokens)] for i in range(self.args.actions)]

        async def start_one(client: Http, index: int) -> int | None:
            if not plan:
                return None
            token = plan.pop()
            status, body = await client.request("POST", "/api/v1/users/me/actions", token, START)
            if status == 201:
                self.started.append((token, json.loads(body)["actionId"]))
            return status

        self.result["starts"] = await hammer(self.port, self.args.connections, self.args.seconds * 4, start_one)
        print(f"starts: {self.result['starts']['per_second']}/s ({len(self.started)} started)", flush=True)

    async def completions(self) -> None:
        """Complete the started actions flat out, with each party's CPU and the broadcast lag measured meanwhile."""
        await self.viewers.clear()
        queue = list(self.started)
        random.Random(1).shuffle(queue)

        async def complete_one(client: Http, index: int) -> int | None:
            return await self._complete(client, *queue.pop()) if queue else None

        lag_before = await broadcast_lag_buckets(self.port)
        server = self.stack.pids()
        split = CpuSplit({**server, "viewers": [self.viewers.process.pid] if self.viewers.process.pid else []})
        profiler = _start_profiler(self.stack, self.mode) if self.args.profile else None
        figures = self.result["completions"] = await hammer(self.port, self.args.connections, self.args.seconds * 3,
                                                            complete_one, rate=self.args.completion_rate)
        self.measured = set(self.acknowledged)
        if profiler is not None:
            profiler.wait(timeout=60)
        spent, idle_percent = split.seconds()
        figures["server_cpu_seconds"] = round(sum(spent[party] for party in server), 1)
        figures["cpu_ms_per_completion"] = per_operation_ms(spent, idle_percent, figures["requests"])
        figures["broadcast_lag_ms"] = lag_percentiles(lag_before, await broadcast_lag_buckets(self.port))
        print(f"completions: {figures['per_second']}/s p50 {figures['p50_ms']} ms p95 {figures['p95_ms']} ms "
              f"p99 {figures['p99_ms']} ms; broadcast lag (first commit of a window to group_send, from /metrics "
              f"buckets) {figures['broadcast_lag_ms']}", flush=True)
        print(describe(figures["cpu_ms_per_completion"]), flush=True)

    async def cycles(self) -> None:
        """Start-then-complete loops, one player per connection at a time."""

        async def cycle_one(client: Http, index: int) -> int | None:
            token = self.tokens[index % len(self.tokens)]
            status, body = await client.request("POST", "/api/v1/users/me/actions", token, START)
            if status != 201:
                return status
            return await self._complete(client, token, json.loads(body)["actionId"])

        self.result["cycles"] = await hammer(self.port, min(self.args.connections, len(self.tokens)),
                                             self.args.seconds, cycle_one)
        print(f"start+complete cycles: {self.result['cycles']['per_second']}/s", flush=True)

    async def delivery(self) -> None:
        """Let the last broadcast land, then measure delivery and compare each viewer's last board with the final."""
        rows = await asyncio.to_thread(ledger_rows)
        # Only a change that reaches the top 10 is broadcast; a change outside it shows up in the next board that
        # some other change triggers, which can be seconds later between phases, so it is not a delivery sample.
        # The cycles phase's completions are not samples either: they run flat out even when the completions
        # phase is paced (--completion-rate).
        completions = [(*rows[action_id], self.acknowledged_at[action_id]) for action_id in self.acknowledged
                       if action_id in rows and action_id in self.in_top_ten and action_id in self.measured]
        final_rows: list = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            status, body = await Http(self.port).request("GET", "/api/v1/leaderboard")
            final_rows = [(r["userId"], r["score"]) for r in json.loads(body)["data"]]
            if await self.viewers.behind(final_rows) == 0:
                break
        figures = self.result["delivery"] = delivery(await self.viewers.report(), completions, final_rows)
        print(f"delivery to {figures['viewers']} viewers: p50 {figures['p50_ms']} ms p99 {figures['p99_ms']} ms max "
              f"{figures['max_ms']} ms from the ledger timestamp, p50 {figures['from_acknowledgement_p50_ms']} ms p99 "
              f"{figures['from_acknowledgement_p99_ms']} ms from the client's 200 (one board, first to last viewer: "
              f"p50 {figures['board_spread_p50_ms']} ms), missing final board: {figures['missing_final_board']}",
              flush=True)

    async def integrity(self, stack_env: dict[str, str]) -> None:
        checks = self.result["integrity"] = await asyncio.to_thread(integrity, stack_env, self.acknowledged)
        counts = {k: v for k, v in checks.items() if k not in ("verify_scores", "check_leaderboard")}
        print(f"integrity: {'clean' if checks['clean'] else 'NOT CLEAN'} ({counts})", flush=True)

    async def _complete(self, client: Http, token: str, action_id: str) -> int:
        status, body = await client.request("PUT", f"/api/v1/users/me/actions/{action_id}", token, COMPLETE)
        if status == 200:
            self.acknowledged.append(action_id)
            self.acknowledged_at[action_id] = time.time()
            rank = json.loads(body)["rank"]
            if rank is not None and rank <= 10:
                self.in_top_ten.add(action_id)
        return status


# --- What the database holds after ---------------------------------------------------------------------------------


def ledger_rows() -> dict[str, tuple[int, float]]:
    from scores.models import ScoreEvent

    return {str(action_id): (version, created.timestamp())
            for version, action_id, created in ScoreEvent.objects.values_list("id", "action_id", "created_at")}


def integrity(stack_env: dict[str, str], acknowledged: list[str]) -> dict:
    """verify_scores, check_leaderboard, and every acknowledged completion paid exactly once."""
    from django.db import connection
    from django.db.models import Count

    from scores.models import ScoreEvent

    result = {}
    for command in ("verify_scores", "check_leaderboard"):
        run = subprocess.run([sys.executable, "manage.py", command], cwd=BASE_DIR, env=stack_env,
                             capture_output=True, text=True, timeout=300)
        result[command] = {"exit": run.returncode, "output": (run.stdout + run.stderr).strip()[-400:]}
    paid = dict(ScoreEvent.objects.filter(action_id__isnull=False).values("action_id")
                .annotate(n=Count("id")).values_list("action_id", "n"))
    paid = {str(action_id): count for action_id, count in paid.items()}
    result["acknowledged_completions"] = len(acknowledged)
    result["acknowledged_missing_from_ledger"] = sum(1 for action_id in acknowledged if action_id not in paid)
    result["actions_paid_more_than_once"] = sum(1 for count in paid.values() if count > 1)
    connection.close()
    result["clean"] = (all(result[c]["exit"] == 0 for c in ("verify_scores", "check_leaderboard"))
                       and result["acknowledged_missing_from_ledger"] == 0 and result["actions_paid_more_than_once"] == 0)
    return result


# --- What the viewers received -------------------------------------------------------------------------------------


def delivery(viewers: list[Received], completions: list[tuple[int, float, float]], final_rows: list) -> dict:
    """`completions`: (version, ledger timestamp, time the client got the 200). The commit lies between the two: the
    ledger timestamp is taken inside the transaction (an upper bound for the latency), the 200 comes after the
    commit (a lower bound; it can even be negative when the board beat the response)."""
    sample = random.Random(7).sample(completions, min(len(completions), 200))
    latencies, undelivered = delivery_latencies(viewers, [(version, ledger) for version, ledger, _ in sample])
    after_ack, _ = delivery_latencies(viewers, [(version, acked) for version, _, acked in sample])
    missing_final = sum(1 for viewer in viewers if board_rows(viewer.last_board) != final_rows)
    per_viewer = [len(viewer.received) for viewer in viewers] or [0]
    spreads = board_spreads(viewers)
    return {"board_spread_p50_ms": ms(pct(spreads, 0.5)), "board_spread_max_ms": ms(max(spreads) if spreads else None),
            "viewers": len(viewers), "p50_ms": ms(pct(latencies, 0.5)), "p99_ms": ms(pct(latencies, 0.99)),
            "max_ms": ms(max(latencies) if latencies else None), "samples": len(latencies),
            "from_acknowledgement_p50_ms": ms(pct(after_ack, 0.5)), "from_acknowledgement_p99_ms": ms(pct(after_ack, 0.99)),
            "messages_per_viewer": round(statistics.mean(per_viewer), 1), "missing_final_board": missing_final,
            "sample_completions_never_delivered": undelivered,
            "closed_by_server": sum(1 for viewer in viewers if viewer.closed)}


async def broadcast_lag_buckets(port: int) -> dict[float, float]:
    """The cumulative buckets of scoreboard_broadcast_lag_seconds from /metrics (loopback is an internal network)."""
    status, body = await Http(port).request("GET", "/metrics")
    buckets: dict[float, float] = {}
    for line in body.decode().splitlines() if status == 200 else []:
        if line.startswith("scoreboard_broadcast_lag_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def lag_percentiles(before: dict[float, float], after: dict[float, float]) -> dict:
    """p50/p99 of the flushes between the two readings, as the upper bound of their histogram bucket."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return {"flushes": 0}

    def bound_of(q: float) -> float | None:
        bound = next(bound for bound, count in counts.items() if count >= q * total)
        return None if bound == float("inf") else round(bound * 1000)

    return {"flushes": int(total), "p50_at_most": bound_of(0.5), "p99_at_most": bound_of(0.99)}


async def _status(awaitable) -> int:
    status, _ = await awaitable
    return status


def _start_profiler(stack: Stack, mode: str) -> subprocess.Popen | None:
    pid = stack.gunicorn.pid if mode == "split" else stack.daphnes[0].pid
    out = RESULTS / f"profile-{mode}.svg"
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print("py-spy not installed (pip install py-spy); no profile", file=sys.stderr)
        return None
    return subprocess.Popen([str(spy), "record", "--subprocesses", "--pid", str(pid), "--duration", "8",
                             "--rate", "200", "--format", "raw", "--output", str(out.with_suffix(".txt")), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
