"""Soak: play many seeded fault schedules through the deterministic simulation.

Each seed stands for one schedule (``random_schedule(seed)``: TWS restarts of up to four
minutes, drops, 1100/1101/1102, pacing errors, malformed frames, slow replies and order
acks, actor crashes, operator stop/start/restart, subscribe/unsubscribe, place/modify/
cancel), played against an in-process TWS on a virtual clock and checked after every step
and once settled (DESIGN §5). A failure prints the schedule, what broke and the command
that replays exactly that run; the exit status is 1 if any seed failed.

    python bench/soak.py                      # 100,000 seeds from 0
    python bench/soak.py --seed 7 --count 1   # replay seed 7
    python bench/soak.py --count 1000 --jobs 2

The runtime's log is silenced (thousands of reconnects); ``--verbose`` shows it at
WARNING for a replay.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import time
from collections.abc import Iterator

from ibkr_connector._simulation import SimulationFailure, simulate_seed


def _play(seed: int) -> tuple[int, str | None]:
    try:
        simulate_seed(seed)
    except SimulationFailure as exc:
        return seed, str(exc)
    return seed, None


def _results(seeds: range, jobs: int) -> Iterator[tuple[int, str | None]]:
    if jobs <= 1:
        yield from map(_play, seeds)
        return
    with multiprocessing.Pool(jobs) as pool:
        yield from pool.imap_unordered(_play, seeds, chunksize=16)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--count", type=int, default=100_000, help="how many seeds")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--verbose", action="store_true", help="the runtime's warnings")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.WARNING)
    else:
        logging.disable(logging.CRITICAL)
    seeds = range(args.seed, args.seed + args.count)
    started = time.perf_counter()
    failed: list[int] = []
    for done, (seed, failure) in enumerate(_results(seeds, args.jobs), start=1):
        if failure is not None:
            failed.append(seed)
            print(f"seed {seed} FAILED: {failure}\n", flush=True)
        if done % 1000 == 0:
            print(f"{done} runs, {len(failed)} failed, {time.perf_counter() - started:.1f} s",
                  flush=True)
    elapsed = time.perf_counter() - started
    print(f"{len(seeds)} runs in {elapsed:.1f} s ({elapsed / max(len(seeds), 1) * 1000:.1f} ms "
          f"a run), {len(failed)} failed{': ' + ', '.join(map(str, failed)) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
