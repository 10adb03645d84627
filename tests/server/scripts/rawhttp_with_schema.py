"""@rawhttp together with @input_schema: refused at start-up."""
from azureml.contrib.services.aml_request import rawhttp
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("request", StandardPythonParameterType("x"))
@rawhttp
def run(request):
    return "never"
