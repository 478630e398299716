"""Key-name conversion between Kubernetes camelCase and Ansible snake_case, as in the Operator SDK.

The rules reproduce ``internal/ansible/paramconv/paramconv.go`` of
github.com/operator-framework/ansible-operator-plugins (itself based on iancoleman/strcase),
quirks included, so that a playbook written for the Operator SDK's Ansible operator sees the
same variable names here:

* ``to_snake`` splits words where the case changes (``sizeK8sBuckets`` -> ``size_k8s_buckets``,
  ``JSONData`` -> ``_json_data``) and at spaces, ``_`` and ``-``. A key that starts with an
  upper-case ASCII letter gets a leading ``_`` (``ThisThing`` -> ``_this_thing``), except when its
  first word is one of the SDK's initialisms.
* Only three initialisms are special: ``HTTP``, ``URL`` and ``IP`` (with a plural ``s``:
  ``egressIPs`` -> ``egress_ips``). Others (``ID``, ``API``, ``JSON``...) are split by the case
  rule alone, so ``userIDs`` becomes ``user_i_ds``, exactly as in the SDK.
* A letter-digits-letter-digits run gets word breaks (``a1b2`` -> ``a_1_b2``).

Case tests are ASCII-only, as in Go. For ASCII keys (Kubernetes field names are ASCII in practice)
the results are identical to the SDK's; beyond ASCII, Python's Unicode case mappings and an
approximation of Go's word breaking are used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

#: The SDK's special words (its ``wordMapping``): lower-case word -> initialism.
_INITIALISMS: Mapping[str, str] = {"http": "HTTP", "url": "URL", "ip": "IP"}

#: A letter, digits, then a letter and digits: word breaks go before and after the first digits.
#: Kubernetes object names: an RFC 1123 label (namespaces, most names; at most 63 characters)
#: and an RFC 1123 subdomain (dotted labels; at most 253), as the API server checks them.
DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DNS_LABEL_RE = re.compile(DNS_LABEL)
DNS_SUBDOMAIN_RE = re.compile(rf"(?=.{{1,253}}$){DNS_LABEL}(\.{DNS_LABEL})*")

#: The name part of a label key, and a label value (empty allowed): at most 63 characters.
_LABEL_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label key (``[prefix/]name``), or None when it is one."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and DNS_SUBDOMAIN_RE.fullmatch(prefix)):
        return f"label key {key!r}: the prefix must be a DNS subdomain like example.com"
    if not name or len(name) > 63 or not _LABEL_NAME_RE.fullmatch(name):
        return (
            f"label key {key!r}: the name must be 1-63 characters of letters, digits, '-', '_' "
            "and '.', starting and ending with a letter or digit"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a Kubernetes label value, or None when it is one (empty is one)."""
    if value and (len(value) > 63 or not _LABEL_NAME_RE.fullmatch(value)):
        return (
            f"label value {value!r}: at most 63 characters of letters, digits, '-', '_' and "
            "'.', starting and ending with a letter or digit"
        )
    return None


_NUMBER_RUN = re.compile(r"([a-zA-Z])([0-9]+)([a-zA-Z][0-9]+)")

_DELIMITERS = frozenset(" _-")

#: Characters that do not end a word for Go's title caser (Unicode MidLetter, MidNumLet and
#: Single_Quote, ASCII part); two of them in a row do.
_MID_WORD = frozenset(".:'")


def _is_upper(ch: str) -> bool:
    return "A" <= ch <= "Z"


def _is_lower(ch: str) -> bool:
    return "a" <= ch <= "z"


def _go_upper(text: str) -> str:
    """Upper-case with one-character mappings only, like Go (``ß`` stays ``ß``)."""
    return "".join(up if len(up := ch.upper()) == 1 else ch for ch in text)


def _in_word(ch: str) -> bool:
    """Whether Go's title caser treats ``ch`` as part of a word (Unicode word-break letter)."""
    if ch.isascii():
        return ch.isalnum()
    # Ideographs and kana are not word letters in Unicode's word-break rules.
    return ch.isalnum() and not unicodedata.name(ch, "").startswith(
        ("CJK ", "IDEOGRAPHIC", "HIRAGANA", "KATAKANA")
    )


def _split_number_runs(name: str) -> str:
    return _NUMBER_RUN.sub(r"\1 \2 \3", name)


def _isolate_initialisms(value: str) -> str:
    """Put ``_`` around the first occurrence of each initialism, upper-casing a plural ``s``.

    ``egressIP`` -> ``egress_IP``, ``egressIPsEgress`` -> ``egress_IPS_Egress``. The SDK walks a Go
    map (random order); the initialisms cannot overlap, so the order does not change the result.
    """
    for word in _INITIALISMS.values():
        start = value.find(word)
        if start < 0:
            continue
        end = start + len(word)
        if end == len(value):
            value = f"{value[:start]}_{word}"
        elif value[end] == "s":
            rest = value[end + 1 :]
            if not rest:
                value = f"{value[:start]}_{word}S"
            elif start == 0:
                value = f"{word}S_{rest}"
            else:
                value = f"{value[:start]}_{word}S_{rest}"
        elif start == 0:
            value = f"{word}_{value[end:]}"
        else:
            value = f"{value[:start]}_{word}_{value[end:]}"
    return value


def to_snake(name: str) -> str:
    """Convert a camelCase or PascalCase key to snake_case, as the Operator SDK does.

    >>> to_snake("sizeK8sBuckets"), to_snake("egressIPs"), to_snake("ThisThing")
    ('size_k8s_buckets', 'egress_ips', '_this_thing')
    """
    text = _split_number_runs(name).strip(" ")
    if not text:
        return ""  # the SDK would panic here
    prefix = "_" if _is_upper(text[0]) else ""
    # An all-capitals key (THIS_IS_SKIP) is left alone: "SKIP" holds no initialism "IP".
    if _go_upper(text) != text:
        text = _isolate_initialisms(text)

    words: list[str] = []
    word = ""
    # Position of the current character in the current word: a case change is a break only
    # after the word's first character.
    position = -1
    for index, ch in enumerate(text):
        position += 1
        following = text[index + 1] if index + 1 < len(text) else ""
        case_changes = (_is_upper(ch) and _is_lower(following)) or (
            _is_lower(ch) and _is_upper(following)
        )
        if position > 0 and case_changes:
            if _is_upper(ch):
                # "JSONData" at "D": "JSON" is a word, "D" starts the next one.
                words.append(word.lower())
                word = ch
                position = 0
            else:
                # "sizeK8s" at "e": "size" is a word, the next one starts at "K".
                words.append((word + ch).lower())
                word = ""
                position = -1
        elif ch in _DELIMITERS:
            words.append(word.lower())
            word = ""
            position = -1
        else:
            word += ch
    words.append(word.lower())

    joined = "_".join(words)
    return joined if words[0] in _INITIALISMS else prefix + joined


def _title(word: str) -> str:
    """Title-case like Go's ``cases.Title``: the first cased letter of each word up, the rest down.

    Uncased characters (digits) do not start a word (``8sk`` -> ``8Sk``); other non-alphanumeric
    characters end it, except a single ``.``, ``:`` or ``'``.
    """
    out: list[str] = []
    in_word = False
    previous_mid = False
    for ch in word:
        mid = ch in _MID_WORD
        if previous_mid and mid:
            in_word = False
        if ch.lower() != ch.upper():  # a cased letter
            out.append(ch.lower() if in_word else ch.title())
            in_word = True
        else:
            out.append(ch)
            if not mid and not _in_word(ch):
                in_word = False
        previous_mid = mid
    return "".join(out)


def to_camel(name: str) -> str:
    """Convert a snake_case key to camelCase, as the Operator SDK does (the inverse of to_snake).

    The first word is kept as written, later ones are title-cased; ``http``, ``url`` and ``ip``
    become ``HTTP``, ``URL`` and ``IP`` anywhere. A leading ``_`` gives PascalCase.

    >>> to_camel("size_k8s_buckets"), to_camel("egress_ip"), to_camel("_this_thing")
    ('sizeK8sBuckets', 'egressIP', 'ThisThing')
    """
    text = _split_number_runs(name).strip(" ")
    words = re.split(r"[ _-]", text)
    return "".join(
        _INITIALISMS.get(word) or (_title(word) if index else word)
        for index, word in enumerate(words)
    )


def snake_keys(value: Any) -> Any:
    """Return ``value`` with every mapping key converted by :func:`to_snake`, at every depth.

    Mappings become dicts and lists (or tuples) become lists; other values are returned as they
    are. As in the SDK, keys that convert to the same name collapse (the last one wins).
    """
    if isinstance(value, Mapping):
        return {
            (to_snake(key) if isinstance(key, str) else key): snake_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [snake_keys(item) for item in value]
    return value


def plural_of(kind: str) -> str:
    """The plural of a kind: lower-cased + ``s``; ``es`` after s, x, ch, sh; ``y`` -> ``ies``.

    >>> plural_of("Website"), plural_of("Proxy"), plural_of("Box"), plural_of("Gateway")
    ('websites', 'proxies', 'boxes', 'gateways')
    """
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh", "z")):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"
