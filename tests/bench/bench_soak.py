"""Soak: N clients dictating real speech in real time for many minutes.

Starts ``tingxie-server --engine fake`` as a child process (fixed model cost per call),
then N clients (tests/hardening/soak.py) stream the real recordings of tests/data/speech
in a loop, in real time, 100 ms frames, a short pause between sentences; each client
reconnects every 6 utterances and cancels every 10th utterance halfway. Every few
seconds the server's resident memory, open file descriptors and threads (/proc) and its
live connections, sessions and tasks (/healthz) are sampled.

Checked (exit code 1 and "DRIFT" in the section when one fails):

- every final is exactly the fake engine's transcript of the whole recording;
- sessions and connections back to 0, the server's tasks back to their idle number and
  file descriptors back to the idle baseline (± 2) once the clients have left;
- memory: least-squares slope of RSS over the second half of the run below
  ``--max-rss-slope`` MiB per hour;
- latency: final p95 of the last 5 minutes at most 1.5 × that of minutes 1–5 (the
  first minute is warm-up; halves of the run for runs under 12 minutes).

    python tests/bench/bench_soak.py [--clients 8] [--minutes 30] [--sample-every 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.report import machine_description, percentile, write_section  # noqa: E402
from tests.conftest import load_recordings, spawn_fake_server  # noqa: E402
from tests.hardening.soak import (  # noqa: E402
    SoakReport,
    finals_by_minute,
    run_soak,
    slope_per_hour,
)

FD_TOLERANCE = 2
P95_GROWTH_LIMIT = 1.5


def latency_windows(report: SoakReport) -> tuple[str, list[float], str, list[float]]:
    """(label, latencies) of an early and a late window of the run, warm-up excluded."""
    minutes = finals_by_minute(report.finals)
    last = max(minutes) if minutes else 0
    if last >= 11:
        early = [x for m in range(1, 6) for x in minutes.get(m, [])]
        late = [x for m in range(last - 4, last + 1) for x in minutes.get(m, [])]
        return "minutes 2–6", early, f"minutes {last - 3}–{last + 1}", late
    half = report.duration_s / 2
    early = [f.latency_ms for f in report.finals if f.t < half]
    late = [f.latency_ms for f in report.finals if f.t >= half]
    return "first half", early, "second half", late


def verdicts(report: SoakReport, max_rss_slope: float) -> list[tuple[str, bool, str]]:
    """(check, passed, figures) for each soak criterion."""
    loaded = [s for s in report.samples if s.connections > 0]
    second_half = [s for s in loaded if s.t >= report.duration_s / 2]
    slope = slope_per_hour([(s.t, s.rss_kib / 1024) for s in second_half])
    early_label, early, late_label, late = latency_windows(report)
    p95_early, p95_late = percentile(early, 0.95), percentile(late, 0.95)
    base, settled = report.baseline, report.settled
    finals = report.finals
    return [
        (
            "finals exact",
            not report.wrong and not report.errors and bool(finals),
            f"{sum(f.exact for f in finals)}/{len(finals)} exact, "
            f"{len(report.errors)} server errors",
        ),
        (
            "no session leak",
            settled.sessions == 0 and settled.connections == 0,
            f"after the run: {settled.sessions} sessions, {settled.connections} connections "
            f"(peak {max((s.sessions for s in loaded), default=0)} sessions)",
        ),
        (
            "tasks back to idle",
            settled.tasks == base.tasks,
            f"server coroutines idle before {base.tasks}, "
            f"peak {max((s.tasks for s in loaded), default=0)}, idle after {settled.tasks}",
        ),
        (
            "file descriptors flat",
            settled.fds <= base.fds + FD_TOLERANCE,
            f"idle before {base.fds}, peak {max((s.fds for s in loaded), default=0)}, "
            f"idle after {settled.fds}",
        ),
        (
            "memory flat",
            slope <= max_rss_slope,
            f"RSS idle before {base.rss_kib / 1024:.1f} MiB, "
            f"peak {max((s.rss_kib for s in loaded), default=0) / 1024:.1f} MiB, "
            f"idle after {settled.rss_kib / 1024:.1f} MiB; slope over the second half "
            f"{slope:+.1f} MiB/h (limit {max_rss_slope:g})",
        ),
        (
            "latency p95 stable",
            p95_late <= P95_GROWTH_LIMIT * p95_early,
            f"final p95 {p95_early:.0f} ms ({early_label}) → {p95_late:.0f} ms ({late_label})",
        ),
    ]


def render(
    report: SoakReport, args: argparse.Namespace, checks: list[tuple[str, bool, str]]
) -> str:
    finals = report.finals
    audio_h = sum(t.audio_s for t in report.tallies) / 3600
    loaded = [s for s in report.samples if s.connections > 0]
    lines = [
        f"Machine: {machine_description()} (shared with other work during the run). "
        f"{report.clients} clients for {report.duration_s / 60:.1f} min against "
        f"`tingxie-server --engine fake` (model cost {args.per_batch_ms:g} ms per call + "
        f"{args.per_request_ms:g} ms per request, batches up to 16). Each client streams the "
        "12 speech recordings in a loop in real time (100 ms frames, 0.2–1 s pause between "
        "sentences), reconnects every 6 utterances and cancels every 10th utterance halfway. "
        f"Server sampled every {args.sample_every:g} s.",
        "",
        f"{len(finals)} finals ({audio_h:.2f} h of audio), "
        f"{sum(t.cancelled for t in report.tallies)} cancelled utterances, "
        f"{sum(t.connections for t in report.tallies)} connections opened.",
        "",
        "| check | result | figures |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {'OK' if ok else 'DRIFT'} | {text} |" for name, ok, text in checks]
    lines += [
        "",
        "Threads: idle before "
        f"{report.baseline.threads}, peak {max((s.threads for s in loaded), default=0)}, "
        f"idle after {report.settled.threads} (the model's worker threads are kept for reuse).",
        "",
        "Per minute (final latency = final received − stop sent, ms; server state at the "
        "minute's last sample):",
        "",
        "| minute | finals | final p50 | final p95 | RSS MiB | fds | threads | sessions |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for minute, latencies in finals_by_minute(finals).items():
        in_minute = [s for s in report.samples if int(s.t // 60) == minute]
        sample = in_minute[-1] if in_minute else None
        state = (
            f"{sample.rss_kib / 1024:.1f} | {sample.fds} | {sample.threads} | {sample.sessions}"
            if sample
            else "– | – | – | –"
        )
        lines.append(
            f"| {minute + 1} | {len(latencies)} | {statistics.median(latencies):.0f} "
            f"| {percentile(latencies, 0.95):.0f} | {state} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--per-batch-ms", type=float, default=40.0)
    parser.add_argument("--per-request-ms", type=float, default=4.0)
    parser.add_argument("--max-rss-slope", type=float, default=16.0, help="MiB per hour")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    proc, port = spawn_fake_server(
        "--fake-per-batch-ms",
        str(args.per_batch_ms),
        "--fake-per-request-ms",
        str(args.per_request_ms),
        quiet=False,
    )
    try:
        report = asyncio.run(
            run_soak(
                f"ws://127.0.0.1:{port}",
                proc.pid,
                port,
                load_recordings(),
                clients=args.clients,
                duration_s=args.minutes * 60,
                sample_every_s=args.sample_every,
            )
        )
    finally:
        proc.terminate()
        proc.wait(30)
    checks = verdicts(report, args.max_rss_slope)
    body = render(report, args, checks)
    print(body)
    if report.wrong or report.errors:
        print("wrong finals / errors:", *report.wrong[:10], *report.errors[:10], sep="\n  ")
    if not args.no_write:
        command = "python tests/bench/bench_soak.py " + " ".join(sys.argv[1:])
        write_section("Soak: clients streaming for many minutes", command.strip(), body)
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
