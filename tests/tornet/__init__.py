"""A private Tor network on loopback for the tests and the offline demo (see network.py)."""

from tornet.fetch import http_get, open_stream, socks_reply_code
from tornet.network import TorNetwork, TorNetworkError

__all__ = ["TorNetwork", "TorNetworkError", "http_get", "open_stream", "socks_reply_code"]
