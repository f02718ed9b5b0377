"""The app launched for real and driven through gradio_client, as an API user would."""
import pytest
from gradio_client import Client

from studio.cli import create_app


@pytest.fixture(scope="module")
def client():
    demo = create_app()  # what app.py, `ebm-studio` and `python -m studio` launch
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_playground_api_runs_the_engine(client):
    chains_fig, energy_fig, seeds = client.predict("Ring", 0.02, 0.2, 50, 16, 3, api_name="/playground")
    assert seeds == "Seeds used: 3-18"
    assert chains_fig and energy_fig  # plotly figures come back serialised


@pytest.mark.parametrize("args, message", [
    (("Ring", 0.02, 0.2, 0, 16, 0), "'Steps' must be between 1 and 1000; got 0"),
    (("Ring", 5.0, 0.2, 10, 16, 0), "'Step size' must be between 0.001 and 0.2; got 5.0"),
    (("Ring", 0.02, 0.2, 10, 16, -1), r"First seed must be a whole number between 0 and 2\*\*63 - 1; got -1"),
    (("Volcano", 0.02, 0.2, 10, 16, 0), "not in the list of choices"),
])
def test_playground_bad_input_gives_clear_message(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/playground")


def test_model_card_api(client):
    card = client.predict("toy-ring", api_name="/model_card")
    assert "ring energy" in card.lower()
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict("nope", api_name="/model_card")
