"""The key format: shape, entropy, checksum, digest."""

from __future__ import annotations

import math
import re

import pytest

from tollhouse.errors import Unauthenticated
from tollhouse.ids import BASE62
from tollhouse.keys import MalformedKey, digest, generate_key, parse_key
from tollhouse.keys.format import CHECKSUM_LENGTH, RANDOM_LENGTH

SECRET = b"test-secret"


class TestGenerateKey:
    def test_key_is_th_env_then_28_base62(self) -> None:
        key = generate_key("live")
        assert re.fullmatch(r"th_live_[0-9A-Za-z]{28}", key)
        assert len(key) == len("th_live_") + RANDOM_LENGTH + CHECKSUM_LENGTH

    def test_env_is_embedded(self) -> None:
        assert generate_key("test").startswith("th_test_")

    def test_random_part_carries_at_least_128_bits(self) -> None:
        assert RANDOM_LENGTH * math.log2(len(BASE62)) >= 128
        bodies = {parse_key(generate_key()).body for _ in range(2000)}
        assert len(bodies) == 2000
        assert all(len(body) == RANDOM_LENGTH for body in bodies)
        # every base62 symbol shows up in random positions: not a narrowed alphabet
        assert set("".join(bodies)) == set(BASE62)

    @pytest.mark.parametrize("env", ["", "LIVE", "li_ve", "a" * 13, "prod!"])
    def test_bad_env_raises(self, env: str) -> None:
        with pytest.raises(ValueError):
            generate_key(env)


class TestParseKey:
    def test_generated_key_parses_to_env_and_body(self) -> None:
        key = generate_key("live")
        parsed = parse_key(key)
        assert parsed.env == "live"
        assert parsed.body == key[len("th_live_") : len("th_live_") + RANDOM_LENGTH]
        assert parsed.prefix == key[: len("th_live_") + 8]

    def test_every_single_character_typo_is_rejected(self) -> None:
        key = generate_key("live")
        typos = 0
        for position, original in enumerate(key):
            for replacement in BASE62 + "_-":
                if replacement == original:
                    continue
                typo = key[:position] + replacement + key[position + 1 :]
                with pytest.raises(MalformedKey):
                    parse_key(typo)
                typos += 1
        assert typos > 2000

    def test_dropped_or_added_character_is_rejected(self) -> None:
        key = generate_key()
        for position in range(len(key)):
            with pytest.raises(MalformedKey):
                parse_key(key[:position] + key[position + 1 :])
            with pytest.raises(MalformedKey):
                parse_key(key[:position] + "x" + key[position:])

    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "th_live_",
            "sk-proj-abcdefghijklmnopqrstuvwxyz0123",
            "Bearer th_live_0000000000000000000000000000",
            "th__0000000000000000000000000000",
            "th_live_000000000000000000000000000é",
            "th_live_" + "0" * 10_000,
        ],
    )
    def test_wrong_shape_is_rejected(self, raw: str) -> None:
        with pytest.raises(MalformedKey):
            parse_key(raw)

    def test_malformed_key_is_a_401_unauthenticated(self) -> None:
        with pytest.raises(Unauthenticated) as caught:
            parse_key("nope")
        assert caught.value.status == 401
        assert caught.value.code == "malformed-key"

    def test_error_and_repr_never_show_the_key(self) -> None:
        key = generate_key()
        typo = key[:-1] + ("0" if key[-1] != "0" else "1")
        with pytest.raises(MalformedKey) as caught:
            parse_key(typo)
        assert typo not in str(caught.value)
        assert typo not in repr(caught.value.to_problem())
        parsed = parse_key(key)
        assert parsed.body not in repr(parsed)


class TestDigest:
    def test_digest_is_64_hex_and_never_the_key(self) -> None:
        key = generate_key()
        value = digest(key, SECRET)
        assert re.fullmatch(r"[0-9a-f]{64}", value)
        assert value != key
        assert parse_key(key).body not in value

    def test_digest_is_stable_and_depends_on_secret(self) -> None:
        key = generate_key()
        assert digest(key, SECRET) == digest(key, SECRET)
        assert digest(key, SECRET) != digest(key, b"other-secret")
        assert digest(key, SECRET) != digest(generate_key(), SECRET)
