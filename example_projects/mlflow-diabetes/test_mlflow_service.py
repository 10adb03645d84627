"""Hand-written tests beside the built-in checks for the no-code MLflow deployment.

Run with `pytest --mldeploy` in this folder. The service speaks Azure's MLflow request format
(`input_data` in pandas' split orientation) and accepts `mlflow models serve`'s formats too.
"""
import json
from pathlib import Path

EXAMPLE = json.loads((Path(__file__).parent / "model" / "input_example.json").read_text())
COLUMNS = EXAMPLE["columns"]


def test_azure_and_mlflow_formats_agree(scoring_client):
    rows = EXAMPLE["data"]
    azure = scoring_client.score(input_data={"columns": COLUMNS, "index": [0, 1], "data": rows})
    split = scoring_client.score(dataframe_split={"columns": COLUMNS, "data": rows})
    records = scoring_client.score(dataframe_records=[dict(zip(COLUMNS, row)) for row in rows])
    instances = scoring_client.score(instances=[dict(zip(COLUMNS, row)) for row in rows])
    assert azure.status_code == 200, azure.text
    predictions = azure.json()
    assert len(predictions) == 2 and all(isinstance(p, float) for p in predictions)
    for other in (split, records, instances):
        assert other.status_code == 200, other.text
        assert other.json() == predictions


def test_columns_in_another_order_are_matched_by_name(scoring_client):
    rows = EXAMPLE["data"]
    reversed_columns = list(reversed(COLUMNS))
    reordered = scoring_client.score(input_data={"columns": reversed_columns, "data": [list(reversed(r)) for r in rows]})
    assert reordered.status_code == 200, reordered.text
    assert reordered.json() == scoring_client.score(input_data={"columns": COLUMNS, "data": rows}).json()


def test_a_missing_column_is_a_client_error(scoring_client):
    response = scoring_client.score(input_data={"columns": COLUMNS[:-1], "data": [row[:-1] for row in EXAMPLE["data"]]})
    assert response.status_code == 400
    assert "columns" in response.json()["message"]


def test_the_swagger_input_comes_from_the_signature(scoring_client):
    service_input = scoring_client.swagger()["definitions"]["ServiceInput"]
    frame = service_input["properties"]["input_data"]
    assert frame["properties"]["columns"]["enum"] == [COLUMNS]
    assert frame["properties"]["data"]["items"]["minItems"] == len(COLUMNS)
    assert service_input["required"] == ["input_data"]
