"""Hand-written tests beside the built-in checks: run with `pytest --mldeploy` in this folder.

The fixtures come from pytest-mldeploy: `scoring_client` talks to the deployment's running
service (started once per session, shared with the built-in checks); `mldeploy_deployment()` is
its parsed configuration.
"""


def test_predictions_are_ordered_like_the_model(scoring_client):
    low = [[-0.05] * 10]
    high = [[0.05] * 10]
    response = scoring_client.score(data=low + high)
    assert response.status_code == 200
    predicted_low, predicted_high = response.json()
    # Ridge on diabetes: larger standardized features mean a larger disease progression score.
    assert predicted_high > predicted_low


def test_wrong_width_is_a_client_error(scoring_client):
    response = scoring_client.score(data=[[1.0, 2.0, 3.0]])
    assert response.status_code == 400
    assert "message" in response.json()


def test_the_deployment_declares_limits(mldeploy_deployment):
    deployment = mldeploy_deployment()
    assert deployment.resources.memory_gb >= 0.5
