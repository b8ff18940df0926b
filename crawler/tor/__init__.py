"""Tor transport and control: SOCKS download handler, onion addresses, stem controller."""
