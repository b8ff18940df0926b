"""A CDXJ index next to each finished WARC file, findable under onion and clearnet URLs.

cdxj-indexer indexes the file; for each capture of an onion URL that has a clearnet form
(``OnionMap.to_clearnet_url``) one more line is written under the clearnet SURT key with the
same offset, length and file, so replay tools (pywb) find the capture under either URL.
The index is sorted (spilling to temporary files beyond cdxj-indexer's sort buffer) and written
to a temporary name, then renamed: a ``.cdxj`` file is always complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from cdxj_indexer.main import CDXJIndexer

from crawler.tor.onion import OnionMap

CDXJ_SUFFIX = ".cdxj"


def cdxj_path(warc_path: Path) -> Path:
    """``x.warc.gz`` -> ``x.cdxj`` in the same directory."""
    name = warc_path.name
    for suffix in (".warc.gz", ".warc"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return warc_path.with_name(name + CDXJ_SUFFIX)


class ClearnetCDXJIndexer(CDXJIndexer):
    """cdxj-indexer's CDXJ lines, plus one under the clearnet URL for each onion capture."""

    def __init__(self, output: str, inputs: list[str], onion_map: OnionMap) -> None:
        super().__init__(output, inputs, sort=True)
        self.onion_map = onion_map

    def _do_write(self, urlkey: str, ts: str, index: dict, out) -> None:
        super()._do_write(urlkey, ts, index, out)
        url = index.get("url")
        clearnet_url = self.onion_map.to_clearnet_url(url) if url else None
        if clearnet_url and clearnet_url != url:
            clearnet_index = {**index, "url": clearnet_url}
            super()._do_write(self.get_url_key(clearnet_url), ts, clearnet_index, out)


def write_cdxj(warc_path: Path, onion_map: OnionMap, file_mode: int = 0o640) -> Path:
    """Index ``warc_path`` into :func:`cdxj_path`; returns that path.

    :raises OSError: if the WARC cannot be read or the index cannot be written (no partial
        ``.cdxj`` is left behind).
    """
    target = cdxj_path(warc_path)
    temporary = target.with_name(target.name + ".tmp")
    try:
        ClearnetCDXJIndexer(str(temporary), [str(warc_path)], onion_map).process_all()
        os.chmod(temporary, file_mode)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target
