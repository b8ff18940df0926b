"""Scrapy signals of the Tor layer (send with ``crawler.signals.send_catch_log``)."""

#: ``circuit_failed(request, error)``: Tor could not build or keep a circuit to the onion
#: service (descriptor not found, introduction or rendezvous failed, TTL expired).
circuit_failed = object()

#: ``tor_unavailable(error)``: Tor's SOCKS port refused or dropped the connection; the crawl
#: pauses until Tor answers again or TOR_UNAVAILABLE_TIMEOUT runs out.
tor_unavailable = object()

#: ``tor_available()``: the SOCKS port answers again after ``tor_unavailable``. Receivers may
#: be coroutines; the crawl resumes once all have finished, unless one returned ``False``
#: (Tor is not ready), which closes the spider with reason ``tor_unavailable``.
tor_available = object()
