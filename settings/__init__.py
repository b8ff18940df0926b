"""Scrapy settings of onion-archiver.

Every setting can be overridden on the command line with ``-s NAME=VALUE``. The project's
own settings are documented next to their defaults here and in the README's settings table.
"""

BOT_NAME = "onion-archiver"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
COMMANDS_MODULE = "crawler.commands"

# --- Tor -------------------------------------------------------------------------------------
# Tor's SOCKS port. Only socks5h:// (SOCKS5, names resolved by Tor) is accepted.
TOR_SOCKS_URL = "socks5h://127.0.0.1:9050"
# Tor's control port: tcp://host:port or unix:/path. Cookie auth is tried first, then
# TOR_CONTROL_PASSWORD when set.
TOR_CONTROL_URL = "tcp://127.0.0.1:9051"
TOR_CONTROL_PASSWORD = None
# Launch a private tor (data directory TOR_LAUNCH_DIR) when none answers on the control port.
TOR_LAUNCH = False
TOR_LAUNCH_DIR = ".tor"
# Extra torrc options for the launched tor: {"Option": "value" or ["value", ...]} (JSON on
# the command line), e.g. Bridge/UseBridges, or DirAuthority lines of a private network.
TOR_LAUNCH_CONFIG = {}
# Seconds to wait for any answer on the control port before failing with a clear error.
TOR_CONTROL_TIMEOUT = 10
# How long to wait at start for Tor to bootstrap before giving up (seconds).
TOR_BOOTSTRAP_TIMEOUT = 120
# Circuit isolation: "host" gives each onion host its own SOCKS credentials (so its own
# circuits); "job" adds the job id so concurrent jobs never share circuits; "none" shares.
TOR_ISOLATION = "host"
# The job id of TOR_ISOLATION = "job" (1-64 characters); default: the JOBDIR folder name, or
# a fresh id per run when JOBDIR is not set.
TOR_ISOLATION_JOB = None
# While the SOCKS port is unreachable the crawl pauses and retries with backoff; after this
# many seconds without Tor it stops with a clear message.
TOR_UNAVAILABLE_TIMEOUT = 300
# Ask Tor for a new identity (NEWNYM) after this many consecutive circuit failures
# (0 disables), and on an HTTP 429 when TOR_NEWNYM_ON_429 is set. Tor rate-limits NEWNYM
# to one per 10 s; requests beyond that are coalesced, never sent early.
TOR_NEWNYM_AFTER_FAILURES = 5
TOR_NEWNYM_ON_429 = True

# Clearnet registrable domain -> onion address mirroring it (EOTK style: subdomains carry
# over). A JSON object string on the command line. Only hosts covered here are ever fetched.
ONION_MAP = {
    "nytimes.com": "nytimesn7cgmftshazwhfgzm37qxb44r64ytbb2dj3x62d2lljsciiyd.onion",
}

# --- WARC ------------------------------------------------------------------------------------
WARC_DIR = "warc_output"  # where WARC files (and their CDXJ index) are written
WARC_PREFIX = "onion-archiver"  # file name prefix; letters, digits, '-', '_' and '.' only
WARC_MAX_SIZE = 1_000_000_000  # rotate to a new file after this many bytes
WARC_MAX_IDLE = 600  # close the open file after this many seconds without a record
WARC_VERSION = "1.1"  # "1.1" or "1.0"
WARC_DIGEST = "sha1"  # "sha1" or "sha256", for WARC-Block-Digest and WARC-Payload-Digest
# Revisit records for payloads already archived: "url" (same URL), "any" (any URL), "off".
WARC_DEDUP = "url"
# Persistent capture index (sqlite): dedup across runs and incremental crawling. None:
# capture-index.sqlite3 in WARC_DIR, so it moves with the WARCs its revisits refer to.
CAPTURE_INDEX = None
WARC_CDXJ = True  # write a CDXJ index next to each finished WARC file
WARC_FILE_MODE = 0o640  # permissions of WARC and CDXJ files, and of scrapy extract's output
WARC_DIR_MODE = 0o750  # of WARC_DIR (and of scrapy extract's --format md folder) when created
# Put the operator's host name in warcinfo (off: WARCs carry no operator identity).
WARC_OPERATOR_HOSTNAME = False
# The Tor layer (crawler.tor.addon: download handler for http/https through TOR_SOCKS_URL,
# onion hosts only; onion scope and Tor availability middlewares; retry of circuit failures).
# The WARC writer (records every exchange of the Tor download handler) and its outlinks
# spider middleware.
ADDONS = {"crawler.tor.addon.TorAddon": 0, "crawler.warc.addon.WarcAddon": 10}

# --- Extraction (scrapy extract) -------------------------------------------------------------
# HTML payloads larger than this (bytes, after content decoding) are skipped as "too-large".
EXTRACT_MAX_HTML_BYTES = 20_000_000

# --- Crawling --------------------------------------------------------------------------------
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 2
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
DOWNLOAD_TIMEOUT = 90  # onion circuits are slow to build
# A response larger than this is cut off (recorded as WARC-Truncated: length): a gzip bomb or an
# endless stream cannot fill memory. Larger than any article page or image of a news site.
DOWNLOAD_MAXSIZE = 64 * 1024 * 1024
DOWNLOAD_WARNSIZE = 16 * 1024 * 1024
RETRY_TIMES = 3
# Retries of one URL in all, whatever retried it (HTTP errors, Tor circuit failures).
RETRY_TOTAL_MAX = 5
# Backoff before the n-th HTTP retry: RETRY_BACKOFF_BASE * 2**(n-1) s, at most RETRY_BACKOFF_MAX.
RETRY_BACKOFF_BASE = 2.0
# The same for Tor circuit failures and timeouts (RETRY_EXCEPTIONS); circuits rebuild fast.
RETRY_CIRCUIT_BACKOFF_BASE = 1.0
RETRY_BACKOFF_MAX = 120.0
# A 429/503 Retry-After makes the whole host wait; a longer one gives the URL up (seconds).
RETRY_AFTER_MAX = 600.0
# Spider (crawler/spiders/): read the Sitemap: lines of robots.txt of the start hosts.
SPIDER_SITEMAPS = True
# Extra regular expressions (onion or clearnet form) of URLs never to fetch, on top of the
# built-in login/subscription/account/ad/tracking exclusions. A list, or comma-separated.
SPIDER_EXCLUDE: list[str] = []
# Cap on a decompressed sitemap or feed (bytes); the sitemap protocol's own limit is 50 MB.
SPIDER_LISTING_MAX_SIZE = 50_000_000
# Also fetch the page requisites (images, CSS, JS) of captured articles, each at most
# SPIDER_REQUISITE_MAX_SIZE bytes (larger ones are cut off and logged by Scrapy).
SPIDER_PAGE_REQUISITES = False
SPIDER_REQUISITE_MAX_SIZE = 5_000_000
# Incremental runs (crawler/incremental.py) against CAPTURE_INDEX: an article captured less
# than INCREMENTAL_RECHECK_AFTER seconds ago with no newer sitemap lastmod is not requested.
INCREMENTAL_ENABLED = True
INCREMENTAL_RECHECK_AFTER = 7 * 24 * 3600
# Write the JSON crawl report ({WARC_DIR}/{WARC_PREFIX}-{start}-report.json) at the end.
CRAWL_REPORT = True
DOWNLOADER_MIDDLEWARES = {
    "crawler.policy.ExclusionMiddleware": 50,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.policy.RetryPolicyMiddleware": 550,
    "crawler.incremental.IncrementalMiddleware": 580,
}
# Scrapy's duplicate filter, also logging and counting redirect loops.
DUPEFILTER_CLASS = "crawler.policy.RedirectAwareDupeFilter"
# Scrapy's scheduler, parking retries (backoff) and requests to a host under Retry-After
# until due, so that no waiting request holds a download slot; RetryPolicyMiddleware needs it.
SCHEDULER = "crawler.policy.DelayingScheduler"
EXTENSIONS = {
    "crawler.report.CrawlReport": 500,
    "scrapy.extensions.periodic_log.PeriodicLog": 0,
}
# Progress every LOGSTATS_INTERVAL seconds (60 by default): Scrapy's LogStats line (pages/min)
# and, from PeriodicLog, the errors of that interval by kind (Tor errors, download exceptions,
# HTTP statuses, retries) and WARC records written.
PERIODIC_LOG_DELTA = {
    "include": [
        "tor/errors/",
        "downloader/exception_type_count/",
        "downloader/response_status_count/",
        "retry/",
        "warc/records",
    ]
}
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
# Scrapy's remote-control extension runs Python code sent to a local HTTP port: never in a
# crawler that must not be steered or leak.
REMOTE_CONTROL_ENABLED = False
USER_AGENT = "onion-archiver (+https://github.com/onion-archiver)"
FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"
