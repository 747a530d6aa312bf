#!/usr/bin/env python3
"""What one durable write costs on this machine, by way of making it durable.

Writes 4 KiB at one of 200 offsets of a 1 MiB file (as SQLite's WAL is rewritten once
checkpointed) and makes it durable each time, 3 000 times per way, twice over: wall time and
this process's CPU time (user + system) per write. BENCHMARKS.md, "Tried and not kept".

usage: bench/flush-cost.py [DIRECTORY]   (default: the current one; use the state's disk)
"""
import mmap
import os
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "."
path = os.path.join(directory, "flush-cost.tmp")
N = 3000


def run(name, flags, sync=None):
    fd = os.open(path, os.O_RDWR | flags)
    page = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
    page.write(b"z" * 4096)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(N):
        os.pwritev(fd, [page], (i % 200) * 4096)
        if sync:
            sync(fd)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    os.close(fd)
    print(f"{name:24s} {wall / N * 1e6:7.1f} µs wall {cpu / N * 1e6:6.1f} µs CPU per write")


fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
os.pwrite(fd, b"x" * (1 << 20), 0)
os.fsync(fd)
os.close(fd)
try:
    for _ in range(2):
        run("write, no sync", 0)
        run("write + fsync", 0, os.fsync)
        run("write + fdatasync", 0, os.fdatasync)
        run("O_DSYNC write", os.O_DSYNC)
        run("O_DIRECT|O_DSYNC write", os.O_DIRECT | os.O_DSYNC)
finally:
    os.unlink(path)
