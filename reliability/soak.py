"""A long steady run: any 5xx, memory growth per worker, p99 drift.

`make soak` (10 minutes; SOAK_SECONDS changes it): the service with two workers on its own
PostgreSQL, under a steady mixed load of 200 requests a second."""

import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from reliability.chaos import DATABASE, environment
from reliability.load import TRANSPORT_ERROR, Load, percentile
from tests.support import Postgres, Server, bearer

WARM_UP = 60.0  # seconds before memory and latency are taken as the baseline


@dataclass
class Report:
    seconds: int
    requests: int
    rate: float
    server_errors: int
    no_answer: int
    p50_ms: float
    p99_ms: float
    p99_first_minute_ms: float  # the first minute after the warm-up
    p99_last_minute_ms: float
    rss_mib: dict[str, tuple[float, float]]  # worker pid -> (after warm-up, at the end)
    lost_writes: int

    @property
    def p99_drift(self) -> float:
        return self.p99_last_minute_ms / self.p99_first_minute_ms

    @property
    def worst_rss_growth(self) -> float:
        return max(end / start - 1 for start, end in self.rss_mib.values())


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for {pid}")


async def soak(directory: Path, seconds: float) -> Report:
    with (
        Postgres(directory) as postgres,
        Server("--workers", "2", env=environment(postgres)) as server,
    ):
        load = Load(server.url, bearer(await asyncio.to_thread(server.token)))
        start = time.monotonic()
        running = asyncio.create_task(load.run())
        await asyncio.sleep(min(WARM_UP, seconds / 5))
        baseline = {pid: rss_mib(pid) for pid in server.workers()}
        await asyncio.sleep(seconds - (time.monotonic() - start))
        final = {pid: rss_mib(pid) for pid in server.workers()}
        load.stop()
        await running
        lost = await load.lost_writes(postgres.dsn(DATABASE))

    def p99_between(begin: float, end: float) -> float:
        window = [s.latency for s in load.samples if begin <= s.start - start < end]
        return round(percentile(window, 0.99) * 1000, 1)

    warm = min(WARM_UP, seconds / 5)
    minute = min(60.0, (seconds - warm) / 2)
    latencies = [s.latency for s in load.samples]
    return Report(
        seconds=round(seconds),
        requests=len(load.samples),
        rate=round(len(load.samples) / seconds, 1),
        server_errors=sum(1 for s in load.samples if s.status >= 500),
        no_answer=sum(1 for s in load.samples if s.status == TRANSPORT_ERROR),
        p50_ms=round(percentile(latencies, 0.50) * 1000, 1),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 1),
        p99_first_minute_ms=p99_between(warm, warm + minute),
        p99_last_minute_ms=p99_between(seconds - minute, seconds),
        # A worker that was replaced has no pair: that is itself a failure.
        rss_mib={
            str(pid): (round(baseline[pid], 1), round(final.get(pid, float("nan")), 1))
            for pid in baseline
        },
        lost_writes=lost,
    )


def table(report: Report) -> str:
    rss = "; ".join(
        f"{start} → {end} MiB ({(end / start - 1) * 100:+.1f} %)"
        for start, end in report.rss_mib.values()
    )
    rows = [
        ("Duration", f"{report.seconds} s at {report.rate} requests/s"),
        ("Requests", f"{report.requests:,}"),
        ("5xx answers", str(report.server_errors)),
        ("Requests with no answer", str(report.no_answer)),
        ("Latency p50 / p99", f"{report.p50_ms} ms / {report.p99_ms} ms"),
        (
            "p99, first minute after warm-up → last minute",
            f"{report.p99_first_minute_ms} ms → {report.p99_last_minute_ms} ms "
            f"({report.p99_drift:.2f}x)",
        ),
        ("RSS per worker, after warm-up → end", rss),
        ("Lost acknowledged writes", str(report.lost_writes)),
    ]
    return "\n".join(["| Measure | Value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows])


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    with tempfile.TemporaryDirectory(prefix="user-service-soak-") as scratch:
        report = asyncio.run(soak(Path(scratch), seconds))
    print(table(report))
    out = Path(".data/reliability/soak.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(report), indent=2))
    print(f"\n(also in {out})", file=sys.stderr)
    healthy = (
        report.server_errors == 0
        and report.lost_writes == 0
        and report.worst_rss_growth < 0.10
        and report.p99_drift <= 1.5
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
