"""Planted fault: an ONNX graph whose output JSON cannot carry: y = sqrt(-(x*x) - 1) is NaN for every x.

Built with onnx.helper (no training); onnxruntime runs it without complaint.
"""
from pathlib import Path

from onnx import TensorProto, helper, save

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["squared"]),
        helper.make_node("Add", ["squared", "one"], ["shifted"]),
        helper.make_node("Neg", ["shifted"], ["negative"]),
        helper.make_node("Sqrt", ["negative"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "nan_graph", [x], [y], initializer=[one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(HERE / "models" / "nan.onnx"))
