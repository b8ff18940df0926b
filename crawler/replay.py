"""Replay captures in pywb, straight from a WARC directory: ``python -m crawler.replay``.

    python -m crawler.replay [WARC_DIR] [--port 8080] [--bind 127.0.0.1] [--collection NAME]

Serves one pywb collection (default ``onion-archiver``) whose index is the CDXJ the WARC writer
left next to each finished WARC in WARC_DIR (default ``warc_output``), so a capture is found
under its onion URL and its clearnet URL; nothing is copied. Open
``http://127.0.0.1:8080/<collection>/<URL>``. Replay is unframed (no pywb banner frame).

Why not pywb's own ``wayback`` command: captures of this crawler are often brotli-encoded, and
warcio (pywb's WARC reader) decodes brotli only through brotlipy's interface, whose ``brotli``
module is not the one Scrapy needs (Google's Brotli, installed by ``make setup``). This command
gives warcio a brotli decoder over Google's module before starting pywb.
"""

from gevent.monkey import patch_all

patch_all()  # pywb's servers need gevent's patches before anything else is imported

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import brotli  # noqa: E402
from pywb.apps.cli import wayback  # noqa: E402
from warcio.bufferedreaders import BufferedReader  # noqa: E402


class BrotliDecompressor:
    """brotlipy's streaming interface, which warcio uses, over Google's Brotli module."""

    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()
        self.unused_data: bytes | None = None

    def decompress(self, data: bytes) -> bytes:
        """Decode the next piece of the stream; raises ``brotli.error`` on corrupt input."""
        return self._decompressor.process(data)

    def flush(self) -> bytes:
        return b""


def install_brotli_for_warcio() -> None:
    """Make warcio (and so pywb) decode ``Content-Encoding: br`` with Google's Brotli."""
    BufferedReader.DECOMPRESSORS["br"] = BrotliDecompressor


def pywb_config(warc_dir: Path, collection: str) -> str:
    """pywb's config.yaml: one unframed collection reading *warc_dir* in place."""
    return (
        "framed_replay: false\n"
        "collections:\n"
        f"  {collection}:\n"
        f"    index_paths: {warc_dir}/\n"
        f"    archive_paths: {warc_dir}/\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.replay", description=__doc__)
    parser.add_argument("warc_dir", nargs="?", default="warc_output", metavar="WARC_DIR")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--collection", default="onion-archiver", help="collection name")
    args = parser.parse_args(argv)
    warc_dir = Path(args.warc_dir).resolve()
    if not warc_dir.is_dir():
        parser.error(f"{warc_dir} is not a directory")
    if not any(warc_dir.glob("*.cdxj")):
        parser.error(f"{warc_dir} has no CDXJ index (*.cdxj): no finished WARC file to replay")
    install_brotli_for_warcio()
    with tempfile.TemporaryDirectory(prefix="pywb-") as home:
        Path(home, "config.yaml").write_text(pywb_config(warc_dir, args.collection))
        os.chdir(home)  # pywb reads ./config.yaml
        print(
            f"replaying {warc_dir} at http://{args.bind}:{args.port}/{args.collection}/<URL>",
            flush=True,
        )
        wayback(["--bind", args.bind, "--port", str(args.port)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
