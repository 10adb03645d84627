"""Hand-written tests beside the built-in checks for the no-code ONNX deployment.

Run with `pytest --mldeploy` in this folder. Requests name the graph's inputs; answers name its outputs.
"""


def test_iris_classes(scoring_client):
    response = scoring_client.score(float_input=[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["label"] == [0, 2]
    assert len(answer["probabilities"]) == 2
    assert all(abs(sum(row) - 1.0) < 1e-4 for row in answer["probabilities"])


def test_wrong_width_is_a_client_error(scoring_client):
    response = scoring_client.score(float_input=[[5.1, 3.5, 1.4]])
    assert response.status_code == 400
    assert "float_input" in response.json()["message"]


def test_the_swagger_input_comes_from_the_graph(scoring_client):
    service_input = scoring_client.swagger()["definitions"]["ServiceInput"]
    rows = service_input["properties"]["float_input"]
    assert service_input["required"] == ["float_input"]
    assert rows["items"]["minItems"] == rows["items"]["maxItems"] == 4
    assert rows["items"]["items"]["type"] == "number"
