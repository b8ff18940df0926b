"""A deterministic, synthetic NYT-style onion mirror served over HTTP and HTTPS on loopback.

See :mod:`mirror.server` for the server and its ``/_test/`` misbehaviour endpoints, and
:mod:`mirror.site` for the generated content and its ground truth.
"""

from .server import MirrorServer
from .site import Article, Link, MirrorSite

__all__ = ["Article", "Link", "MirrorServer", "MirrorSite"]
