"""Start a private Tor network in front of a mirror that is already running, until Ctrl-C.

    cd tests && ../.venv/bin/python -m tornet --http-port 8080 --https-port 8443

The mirror's fixed onions (``MIRROR_ONION_MAP`` of tests/onions.py) map port 80 to
``--http-port`` and 443 to ``--https-port`` on 127.0.0.1. Prints the SOCKS and control ports.
"""

from __future__ import annotations

import argparse
import signal
import sys

from onions import MIRROR_ONION_MAP

from tornet import TorNetwork, TorNetworkError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tornet", description=__doc__.split("\n")[0])
    parser.add_argument("--http-port", type=int, required=True, help="mirror's HTTP port")
    parser.add_argument("--https-port", type=int, required=True, help="mirror's HTTPS port")
    parser.add_argument("--workdir", help="keep the tors' data and logs here (default: temporary)")
    parser.add_argument("--timeout", type=float, default=120, help="boot timeout in seconds")
    args = parser.parse_args(argv)
    ports = {80: args.http_port, 443: args.https_port}
    network = TorNetwork(args.workdir, {onion: ports for onion in MIRROR_ONION_MAP.values()})
    try:
        network.start(timeout=args.timeout, progress=print)
    except KeyboardInterrupt:
        return 130
    except TorNetworkError as exc:
        print(f"tor network failed: {exc}", file=sys.stderr)
        return 1
    print(f"SOCKS   {network.socks_url}")
    print(f"control {network.control_url} (cookie {network.client_cookie_path})")
    for domain, onion in MIRROR_ONION_MAP.items():
        print(f"{domain:12} -> {onion}")
    print("Ctrl-C to stop", flush=True)
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        return 0
    finally:
        network.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: TorNetwork.stop() runs
    sys.exit(main())
