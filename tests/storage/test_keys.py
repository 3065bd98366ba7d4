"""normalize_key: the one gate every key passes before touching a backend."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderhub.storage import MAX_KEY_LENGTH, InvalidKey, normalize_key


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a", "a"),
        ("a/b/c.exr", "a/b/c.exr"),
        ("a//b", "a/b"),
        ("./a/./b/", "a/b"),
        ("a/b/", "a/b"),
        ("frame 0001.exr", "frame 0001.exr"),
        ("ünïcödé/日本語/🎬.exr", "ünïcödé/日本語/🎬.exr"),
        ("...", "..."),  # three dots is a plain name
        ("..a/b..", "..a/b.."),
        ("a%2F..%2Fb", "a%2F..%2Fb"),  # keys are not URL-decoded: no hidden '..'
    ],
)
def test_valid_keys_are_canonicalised(key: str, expected: str) -> None:
    assert normalize_key(key) == expected


@pytest.mark.parametrize(
    ("key", "prefix"),
    [("a", "a/"), ("a/", "a/"), ("a//b//", "a/b/"), ("", ""), ("/", None), (".", "")],
)
def test_prefixes_keep_their_trailing_slash(key: str, prefix: str | None) -> None:
    if prefix is None:
        with pytest.raises(InvalidKey):
            normalize_key(key, is_prefix=True)
    else:
        assert normalize_key(key, is_prefix=True) == prefix


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/../../b",
        "a/..",
        "..",
        "/etc/passwd",
        "//server/share",
        "a\\..\\b",
        "C:\\Windows",
        "a\x00b",
        "a\nb",
        "tab\there",
        "del\x7f",
        "",
        ".",
        "./",
        "a" * (MAX_KEY_LENGTH + 1),
        "ü" * (MAX_KEY_LENGTH // 2 + 1),  # the limit is in UTF-8 bytes, not characters
        "lone\udcffsurrogate",  # what os.fsdecode makes of a non-UTF-8 file name
    ],
)
def test_escapes_and_junk_are_refused(key: str) -> None:
    with pytest.raises(InvalidKey):
        normalize_key(key)


def test_empty_is_allowed_only_when_asked() -> None:
    assert normalize_key("", allow_empty=True) == ""
    assert normalize_key("./", allow_empty=True) == ""


def test_the_longest_allowed_key() -> None:
    key = "a" * MAX_KEY_LENGTH
    assert normalize_key(key) == key


def test_non_text_is_refused() -> None:
    with pytest.raises(InvalidKey):
        normalize_key(b"bytes")  # type: ignore[arg-type]


def test_invalid_key_is_a_value_error_too() -> None:
    with pytest.raises(ValueError):
        normalize_key("../x")


# Segments built from characters that matter to paths, plus arbitrary text.
segment = st.one_of(
    st.sampled_from(["", ".", "..", "...", "a", "b.exr", " ", "~", "%2e%2e", "ü"]),
    st.text(min_size=1, max_size=8),
)
raw_keys = st.one_of(
    st.lists(segment, max_size=8).map("/".join),
    st.text(max_size=40),
)


def outcome(key: str, **kwargs: bool) -> str | None:
    try:
        return normalize_key(key, **kwargs)
    except InvalidKey:
        return None


@given(raw_keys, st.booleans())
def test_a_normalised_key_never_escapes(key: str, is_prefix: bool) -> None:
    result = outcome(key, is_prefix=is_prefix)
    if result is None:
        return
    assert not result.startswith("/")
    assert ".." not in result.split("/")
    assert "." not in result.split("/")
    assert "//" not in result
    assert "\\" not in result and "\x00" not in result
    assert len(result.encode()) <= MAX_KEY_LENGTH
    assert result.endswith("/") == (is_prefix and result != "")


@given(raw_keys, st.booleans())
def test_normalising_is_idempotent(key: str, is_prefix: bool) -> None:
    result = outcome(key, is_prefix=is_prefix, allow_empty=True)
    if result is not None:
        assert normalize_key(result, is_prefix=is_prefix, allow_empty=True) == result


@given(st.lists(st.sampled_from(["a", "b", "..", ".", ""]), min_size=1, max_size=6))
def test_dotdot_and_absolute_keys_are_refused_and_others_kept(parts: list[str]) -> None:
    key = "/".join(parts)
    if ".." in parts or key.startswith("/"):
        assert outcome(key, allow_empty=True) is None
    else:
        assert outcome(key, allow_empty=True) == "/".join(p for p in parts if p not in ("", "."))
