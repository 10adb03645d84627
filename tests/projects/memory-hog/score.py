"""An entry script whose init() holds 300 MB: under a 128 MB limit the kernel must OOM-kill it."""

hog = None


def init():
    global hog
    # bytearray(n) alone may map zero pages lazily; filling every page makes the memory resident.
    hog = bytearray(300 * 1024 * 1024)
    for i in range(0, len(hog), 4096):
        hog[i] = 1


def run(raw_data):
    return len(hog)
