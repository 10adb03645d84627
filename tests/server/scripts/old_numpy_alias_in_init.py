"""init() uses np.float, which numpy 1.24 removed."""
import numpy as np


def init():
    global scale
    scale = np.float(2)


def run(data):
    return data
