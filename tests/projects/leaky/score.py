"""An entry script that leaks: each request appends 200 KB (filled, so resident) to a global list.

The 25 ms sleep bounds the rate (one run thread: at most 40 requests/s, about 8 MB/s), so a
short profile sees a steady climb without eating the machine.
"""
import time

kept = []


def init():
    pass


def run(raw_data):
    kept.append(b"\x01" * (200 * 1024))
    time.sleep(0.025)
    return {"kept": len(kept)}
