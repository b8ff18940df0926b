"""Run the mirror by hand, for demos and benchmarks.

    cd tests && ../.venv/bin/python -m mirror --articles 1000 --http-port 8080 --https-port 8443

prints the ports, the onion hosts it answers for and a few URLs, then serves until Ctrl-C.
Requests must carry the onion Host header, e.g.::

    curl -H 'Host: www.<onion A>' http://127.0.0.1:8080/robots.txt
    curl -k --connect-to ::127.0.0.1:8443 https://www.<onion A>/

``--edition N --new-articles K --updated-articles M`` serve a later "day" of the same site;
``--sent-log-dir DIR`` keeps the bytes of every exchange there.
"""

from __future__ import annotations

import argparse
import signal
import threading

from . import MirrorServer, MirrorSite


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mirror", description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edition", type=int, default=0)
    parser.add_argument("--new-articles", type=int, default=0)
    parser.add_argument("--updated-articles", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--https-port", type=int, default=0)
    parser.add_argument("--sent-log-dir", default=None)
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    site = MirrorSite(
        articles=args.articles,
        seed=args.seed,
        edition=args.edition,
        new_articles=args.new_articles,
        updated_articles=args.updated_articles,
    )
    server = MirrorServer(
        site,
        host=args.host,
        http_port=args.http_port,
        https_port=args.https_port,
        sent_log_dir=args.sent_log_dir,
    ).start()
    first = site.article_path(0)
    print(f"http_port {server.http_port}", flush=True)
    print(f"https_port {server.https_port}")
    print(f"site host   {site.www_host}  (also {site.site_onion})")
    print(f"static host {site.static_host}")
    print(f"articles    {site.total_articles}")
    for path in ("/", "/robots.txt", "/sitemaps/sitemap.xml", first):
        print(f"url         {site.onion_url(path)}")
    print(f"try: curl -H 'Host: {site.www_host}' {server.origin('http')}/robots.txt", flush=True)
    try:
        while not stopped.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
