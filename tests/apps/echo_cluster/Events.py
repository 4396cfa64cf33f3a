"""The echo cluster's business logic: every message goes back to the client that sent it, as
it arrived in the worker (bytes from a binary frame, str from a text frame), through the
gateway: client -> gateway -> BusinessWorker -> gateway -> client."""
from gwgevent import Gateway


def on_message(client_id, message):
    Gateway.send_to_client(client_id, message)
