"""A deterministic, synthetic NYT-style onion mirror served over HTTP and HTTPS on loopback.

In tests::

    site = MirrorSite(articles=1000, onion_map=MIRROR_ONION_MAP, seed=0, edition=0)
    server = MirrorServer(site, host="127.0.0.1", http_port=0, https_port=0, sent_log_dir=None)
    server.start()  # then server.http_port, server.https_port; server.stop()

By hand, for demos and benchmarks (prints the ports and URLs; Ctrl-C stops it)::

    cd tests && ../.venv/bin/python -m mirror --articles 1000 --http-port 8080 --https-port 8443

Modules: :mod:`mirror.site` (content generated from (seed, index), ground truth, editions),
:mod:`mirror.pages` (HTML in three NYT markup eras, feeds, sitemaps, robots.txt),
:mod:`mirror.app` (routing by Host, validators, content coding), :mod:`mirror.misbehave`
(the ``/_test/`` endpoints, each documented there), :mod:`mirror.server` (raw-bytes HTTP/1.1
server, the sent-bytes log), :mod:`mirror.media` (images, CSS, JS), :mod:`mirror.tls`.
"""

from .server import MirrorServer
from .site import Article, Link, MirrorSite

__all__ = ["Article", "Link", "MirrorServer", "MirrorSite"]
