"""What the fault drill (bench/faults.py) checks after the faults: every acknowledged completion in the ledger exactly
once, verify_scores and check_leaderboard clean, every viewer on the final board; printed, and written as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from drill_load import CLIENT_TIMEOUT, Record, Viewer

BASE_DIR = Path(__file__).resolve().parent.parent


def check_and_report(args: argparse.Namespace, env: dict[str, str], record: Record, faults: dict, board: dict) -> bool:
    """The ledger and integrity checks after the drill, printed and written as JSON; whether the drill passed."""
    from django.db import connections

    connections.close_all()
    ledger = ledger_check(record)
    full_env = {**os.environ, **env}
    checks = {"verify_scores": manage("verify_scores", full_env),
              "check_leaderboard": manage("check_leaderboard", full_env)}
    config = {"mode": args.mode, "rate_limits": args.rate_limits, "workers": args.workers,
              "viewers": args.viewers, "wsgi_workers": args.wsgi_workers, "asgi_processes": args.asgi_processes}
    result = report(record, faults, ledger, checks, board, config)
    result["config"] = config
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"JSON written to {args.json}")
    return result["passed"]


def ledger_check(record: Record) -> dict:
    from django.db.models import Count

    from scores.models import Action, ScoreEvent

    completed = ScoreEvent.objects.filter(reason=ScoreEvent.Reason.ACTION_COMPLETED)
    acked = list(record.acknowledged)
    paid = dict(completed.filter(action_id__in=acked).values_list("action_id").annotate(n=Count("id")))
    paid = {str(key): value for key, value in paid.items()}
    statuses = dict(Action.objects.filter(pk__in=acked).values_list("pk", "status"))
    statuses = {str(key): value for key, value in statuses.items()}
    missing = [action for action in acked if paid.get(action, 0) == 0 or statuses.get(action) != "completed"]
    doubles = completed.values("action_id").annotate(n=Count("id")).filter(n__gt=1).count()
    total_paid = completed.aggregate(total=Count("id"))["total"]
    return {
        "acknowledged": len(acked),
        "acknowledged_missing": len(missing),
        "double_awards": doubles,
        "completions_in_ledger": total_paid,
        "committed_not_acknowledged": total_paid - len(acked),
        "of_which_a_retry_saw_completed": len(record.completed_on_retry),
    }


def manage(command: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "manage.py", command], cwd=BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return {"exit_code": done.returncode, "last_line": lines[-1] if lines else ""}


def final_board() -> list[tuple[str, int]]:
    from django.db import connections

    from scores import leaderboard

    try:
        return [(entry.user_id, entry.score) for entry in leaderboard.top(10).entries]
    finally:
        connections.close_all()


async def final_board_check(viewers: list[Viewer], limit: float = 20) -> dict:
    """After the load stops: seconds until every viewer shows the final top 10 (the relays' idle resync repairs
    a broadcast lost to an outage within LIVE_RESYNC_SECONDS)."""
    if not viewers:
        return {}
    final = await asyncio.to_thread(final_board)
    began = time.monotonic()

    def current() -> int:
        return sum(1 for state in viewers if state.last is not None and
                   [(row["userId"], row["score"]) for row in state.last["payload"]] == final)

    while current() < len(viewers) and time.monotonic() - began < limit:
        await asyncio.sleep(0.1)
    errors = sum((state.errors for state in viewers), Counter())
    return {"viewers": len(viewers), "with_final_board": current(),
            "seconds_until_all_had_it": round(time.monotonic() - began, 2) if current() == len(viewers) else None,
            "reconnects": sum(v.reconnects for v in viewers), "disconnect_reasons": dict(errors.most_common(5))}


def report(record: Record, faults: dict, ledger: dict, checks: dict, board: dict, config: dict) -> dict:
    phases = list(record.statuses)
    print("\nFault drill (production stack, private PostgreSQL and Redis; shared 2-core box, figures are noisy)")
    print(f"  {config}\n")
    for name, fault in faults.items():
        recover = fault["recover_seconds"]
        print(f"  {name:<28} dependency away {fault['down_seconds']:>6.2f} s; recovered after it was back: "
              f"completions {recover['completions']} s, /readyz {recover['readyz']} s")
    print("\n  responses per phase (status: count), slowest response")
    for phase in phases:
        counts = ", ".join(f"{status}: {count}" for status, count in sorted(record.statuses[phase].items()))
        print(f"  {phase:<28} {counts}   slowest {record.slowest[phase]:.2f} s")
    total = sum((record.statuses[phase] for phase in phases), Counter())
    print(f"\n  all phases: {dict(sorted(total.items()))}")
    print(f"  500s: {total.get('500', 0)}; 502/504 from nginx: {total.get('502', 0) + total.get('504', 0)}; "
          f"timeouts (> {CLIENT_TIMEOUT:.0f} s): {total.get('timeout', 0)}; 503 without Retry-After: "
          f"{record.missing_retry_after}; non-JSON errors: {record.not_json}")
    print(f"  ledger: {ledger}")
    print(f"  verify_scores: {checks['verify_scores']}; check_leaderboard: {checks['check_leaderboard']}")
    print(f"  live viewers: {board}")
    passed = (total.get("500", 0) == 0 and total.get("timeout", 0) == 0 and record.missing_retry_after == 0
              and ledger["acknowledged_missing"] == 0 and ledger["double_awards"] == 0
              and all(check["exit_code"] == 0 for check in checks.values()))
    print(f"\n  RESULT: {'PASS' if passed else 'FAIL'}\n")
    return {"faults": faults, "statuses": {phase: dict(record.statuses[phase]) for phase in phases},
            "slowest_seconds": {phase: round(record.slowest[phase], 3) for phase in phases},
            "totals": dict(total), "missing_retry_after": record.missing_retry_after, "non_json_errors": record.not_json,
            "ledger": ledger, "checks": checks, "viewers": board, "passed": passed}
