"""Machine resources of a benchmark run: memory of the process tree per phase, disk space, CPU.

Memory is sampled by a background thread from ``/proc``: the resident set (RSS) and the
proportional set (PSS) of this process and of every descendant (the forked recompute workers).
RSS summed over forked processes counts the pages they still share with the parent once per
process; PSS divides each shared page among its sharers, so the summed PSS is what the tree really
occupies. Both are reported, with the kernel's own peaks (``getrusage``) beside them.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import resource
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from _common import log

T = TypeVar("T")

MIB = 2**20
GIB = 2**30


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        with suppress(OSError, ValueError):
            out.extend(int(x) for x in (task / "children").read_text().split())
    return out


def process_tree(root: int | None = None) -> list[int]:
    """``root`` (default: this process) and all its descendants."""
    pending = [root or os.getpid()]
    seen: list[int] = []
    while pending:
        pid = pending.pop()
        seen.append(pid)
        pending.extend(_children(pid))
    return seen


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass
class PhaseMemory:
    """Peaks of one phase (MiB), from the sampler."""

    phase: str
    seconds: float = 0.0
    tree_rss_mib: float = 0.0  # sum of RSS over the process and its descendants
    tree_pss_mib: float = 0.0  # sum of PSS (shared pages divided among sharers)
    self_rss_mib: float = 0.0  # this process alone
    processes: int = 1  # most processes seen at once
    samples: int = 0


@dataclass
class MemorySampler:
    """Samples the memory of the process tree every ``interval`` seconds; peaks per phase."""

    interval: float = 0.5
    heartbeat: float = 60.0
    phases: list[PhaseMemory] = field(default_factory=list)
    _current: PhaseMemory | None = None
    _started: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start the sampling thread (a daemon: it never keeps the process alive)."""
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the sampling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextmanager
    def phase(self, name: str) -> Iterator[PhaseMemory]:
        """Peaks of the code run inside, recorded as phase ``name`` (one sample at each end)."""
        current = PhaseMemory(name)
        with self._lock:
            self._current, self._started = current, time.perf_counter()
        self._sample(current)
        try:
            yield current
        finally:
            self._sample(current)
            with self._lock:
                current.seconds = time.perf_counter() - self._started
                self._current = None
            self.phases.append(current)
            log(
                f"memory: {name}: tree RSS peak {current.tree_rss_mib:,.0f} MiB, PSS peak "
                f"{current.tree_pss_mib:,.0f} MiB, {current.processes} process(es)"
            )

    def peak(self) -> PhaseMemory:
        """The largest figures over every phase so far."""
        out = PhaseMemory("all phases")
        for p in self.phases:
            out.tree_rss_mib = max(out.tree_rss_mib, p.tree_rss_mib)
            out.tree_pss_mib = max(out.tree_pss_mib, p.tree_pss_mib)
            out.self_rss_mib = max(out.self_rss_mib, p.self_rss_mib)
            out.processes = max(out.processes, p.processes)
            out.seconds += p.seconds
            out.samples += p.samples
        return out

    def _sample(self, target: PhaseMemory) -> None:
        pids = process_tree()
        rss = sum(_status_kib(pid, "VmRSS:") for pid in pids) / 1024
        pss = sum(_pss_kib(pid) for pid in pids) / 1024
        me = _status_kib(os.getpid(), "VmRSS:") / 1024
        with self._lock:
            target.tree_rss_mib = max(target.tree_rss_mib, rss)
            target.tree_pss_mib = max(target.tree_pss_mib, pss)
            target.self_rss_mib = max(target.self_rss_mib, me)
            target.processes = max(target.processes, len(pids))
            target.samples += 1

    def _run(self) -> None:
        last_beat = time.perf_counter()
        while not self._stop.wait(self.interval):
            with self._lock:
                current, started = self._current, self._started
            if current is None:
                continue
            self._sample(current)
            now = time.perf_counter()
            if now - last_beat >= self.heartbeat:
                last_beat = now
                # os.write, not print: a fork while this thread held stderr's lock would leave the
                # child's own progress lines blocked on it for ever.
                line = (
                    f"[{time.strftime('%H:%M:%S')}]   ... {current.phase}: {now - started:,.0f} s so far; "
                    f"tree RSS peak {current.tree_rss_mib:,.0f} MiB over {current.processes} process(es)\n"
                )
                with suppress(OSError):
                    os.write(2, line.encode())


def kernel_peaks_mib() -> tuple[float, float]:
    """The kernel's peak RSS of this process and of its largest waited-for child (MiB)."""
    return (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    )


def available_memory_mib() -> float:
    """``MemAvailable`` of the machine (MiB)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return math.nan


def run_forked(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Run each job in a forked child process at once; their results, in order.

    A child inherits the parent's memory (nothing is pickled on the way in); its result comes back
    pickled through a pipe. A child's exception is raised in the parent as a RuntimeError with the
    child's traceback. Jobs that use inherited database pools must drop them first.
    """
    context = multiprocessing.get_context("fork")
    children = []
    for job in jobs:
        receiver, sender = context.Pipe(duplex=False)

        def target(job: Callable[[], T] = job, sender: Any = sender) -> None:
            try:
                sender.send(("ok", job()))
            except BaseException:  # noqa: BLE001 - everything goes back to the parent
                sender.send(("error", traceback.format_exc()))
            finally:
                sender.close()

        process = context.Process(target=target, daemon=True)
        process.start()
        sender.close()
        children.append((process, receiver))
    results: list[T] = []
    failures = []
    for process, receiver in children:
        try:
            status, value = receiver.recv()
        except EOFError:
            status, value = "error", f"child {process.pid} died without an answer"
        process.join()
        if status == "ok":
            results.append(value)
        else:
            failures.append(str(value))
    if failures:
        raise RuntimeError("a forked job failed:\n" + "\n".join(failures))
    return results


# --- disk ---------------------------------------------------------------------------------------------


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent (statvfs needs an existing path)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Free bytes for an unprivileged writer on the filesystem of ``path``."""
    st = os.statvfs(existing_ancestor(path))
    return st.f_bavail * st.f_frsize


def same_filesystem(a: Path, b: Path) -> bool:
    """Whether two paths live on one filesystem."""
    return existing_ancestor(a).stat().st_dev == existing_ancestor(b).stat().st_dev


def gib(n: float) -> str:
    """Bytes as GiB with one decimal."""
    return f"{n / GIB:,.1f} GiB"


# --- CPU of PostgreSQL backends -----------------------------------------------------------------------


def process_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds so far of each of ``pids`` (from ``/proc``; missing ones skipped)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def load_average() -> str:
    """The 1/5/15-minute load averages."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"
