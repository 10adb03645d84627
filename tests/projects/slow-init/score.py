"""An entry script whose init() takes ten minutes: GET / stays 503 and a health wait must time out."""
import time


def init():
    time.sleep(600)


def run(raw_data):
    return "never reached"
