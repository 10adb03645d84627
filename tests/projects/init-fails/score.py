"""An entry script whose init() raises: the service must end Failed with this traceback as its reason."""
import os


def init():
    path = os.path.join(os.getenv("AZUREML_MODEL_DIR", ""), "constant.txt")
    raise RuntimeError(f"cannot load the model from {path}: checksum mismatch")


def run(raw_data):
    return "never reached"
