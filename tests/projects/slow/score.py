"""An entry script that sleeps 150 ms per request: slower than its latency gate allows."""
import time


def init():
    pass


def run(raw_data):
    time.sleep(0.15)
    return {"length": len(raw_data)}
