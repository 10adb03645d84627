"""Several typed parameters: a dict holding a numpy array, an int with a default, a string list."""
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("features", StandardPythonParameterType({"rows": NumpyParameterType(np.array([[1.0, 2.0, 3.0]])),
                                                       "scale": 1.5}))
@input_schema("top", StandardPythonParameterType(2))
@input_schema("tags", StandardPythonParameterType(["a", "b"]))
@output_schema(StandardPythonParameterType({"sum": 1.0, "top": 2, "tags": ["a"]}))
def run(features, tags, top=3):
    rows = features["rows"]
    assert isinstance(rows, np.ndarray), type(rows)
    return {"sum": float(rows.sum() * features["scale"]), "top": top, "tags": tags}
