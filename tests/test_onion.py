"""v3 onion address validation and the EOTK-style clearnet <-> onion mapping."""

import base64
import json

import pytest
from onions import MIRROR_ONION_MAP

from crawler.tor.onion import (
    OnionAddressError,
    OnionMap,
    is_onion_host,
    onion_address_from_public_key,
    parse_onion_address,
)

NYT = "nytimesn7cgmftshazwhfgzm37qxb44r64ytbb2dj3x62d2lljsciiyd.onion"
WWW = MIRROR_ONION_MAP["nytimes.com"]
STATIC = MIRROR_ONION_MAP["nyt.com"]


def test_real_nyt_address_is_valid_and_round_trips():
    key = parse_onion_address("www." + NYT.upper())
    assert onion_address_from_public_key(key) == NYT


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("www.nytimes3xbfgragh.onion", "v2 onion address; Tor no longer supports"),
        ("nytimes.com", "no .onion suffix"),
        (NYT.replace("nytimes", "nytimez", 1), "bad checksum"),
        ("a" * 55 + ".onion", "has 55"),
        ("1" * 56 + ".onion", "not valid base32"),
    ],
)
def test_invalid_addresses_say_why(address, message):
    with pytest.raises(OnionAddressError, match=message):
        parse_onion_address(address)
    assert not is_onion_host(address)


def test_wrong_version_byte_is_rejected():
    raw = bytearray(base64.b32decode(NYT[:56].upper()))
    raw[34] = 4
    bad = base64.b32encode(bytes(raw)).decode().lower() + ".onion"
    with pytest.raises(OnionAddressError, match="version byte 4"):
        parse_onion_address(bad)


def test_map_carries_subdomains_both_ways():
    m = OnionMap(MIRROR_ONION_MAP)
    assert m.to_onion_host("www.nytimes.com") == "www." + WWW
    assert m.to_onion_host("static01.nyt.com") == "static01." + STATIC
    assert m.to_onion_host("nytimes.com") == WWW
    assert m.to_onion_host("evilnytimes.com") is None
    assert m.to_onion_host("www.example.org") is None
    assert m.to_clearnet_host("static01." + STATIC) == "static01.nyt.com"
    url = "https://www.nytimes.com/2016/12/10/world/middleeast/x.html?a=1#f"
    onion_url = m.to_onion_url(url)
    assert onion_url == f"https://www.{WWW}/2016/12/10/world/middleeast/x.html?a=1#f"
    assert m.to_clearnet_url(onion_url) == url
    assert m.to_clearnet_url("https://example.org/") == "https://example.org/"
    assert m.to_onion_url("https://user:pw@www.nytimes.com/") is None


def test_map_from_setting_rejects_bad_values():
    assert OnionMap.from_setting(json.dumps({"nytimes.com": NYT})).as_dict() == {"nytimes.com": NYT}
    with pytest.raises(ValueError, match="not valid JSON"):
        OnionMap.from_setting("{nope")
    with pytest.raises(OnionAddressError, match="v2"):
        OnionMap.from_setting({"nytimes.com": "nytimes3xbfgragh.onion"})
    with pytest.raises(ValueError, match="maps both"):
        OnionMap({"a.com": NYT, "b.com": NYT})
