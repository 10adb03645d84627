"""convert_to_provided_type=False: run() gets the raw JSON value of `data`, as on Azure; `scale` is converted."""
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])), convert_to_provided_type=False)
@input_schema("scale", StandardPythonParameterType(1))
def run(data, scale=1):
    return {"type": type(data).__name__, "data": data, "scale": scale}
