"""Key-name conversion: the Operator SDK's paramconv test table, its quirks, and round trips."""

from __future__ import annotations

from collections import OrderedDict
from types import MappingProxyType

import pytest

from bridge.model.names import snake_keys, to_camel, to_snake

# TestToSnake in internal/ansible/paramconv/paramconv_test.go
# (github.com/operator-framework/ansible-operator-plugins).
SDK_TO_SNAKE = [
    ("var", "var"),
    ("888", "888"),
    ("k8s_var", "k8s_var"),
    ("_k8s_var", "_k8s_var"),
    ("k8s var", "k8s_var"),
    ("ThisShouldHaveUnderscores", "_this_should_have_underscores"),
    ("sizeK8sBuckets", "size_k8s_buckets"),
    ("_CanYou_Handle_mixedVars", "_can_you_handle_mixed_vars"),
    ("this_should_be_a_noop", "this_should_be_a_noop"),
    ("egressIPs", "egress_ips"),
    ("egressIPsEgress", "egress_ips_egress"),
    ("egressIPsegress", "egress_ips_egress"),
    ("IPsegress", "_ips_egress"),
    ("egressIP", "egress_ip"),
    ("egressIPEgress", "egress_ip_egress"),
    ("egressIPegress", "egress_ip_egress"),
    ("URLegressIPEgressHTTP", "url_egress_ip_egress_http"),
    ("URLsegressIPsEgressHTTPs", "_urls_egress_ips_egress_https"),
    ("THIS_IS_SKIP_NOT_SK_IP", "_this_is_skip_not_sk_ip"),
]

# TestMapToSnake: keys that are already snake_case stay as they are.
SDK_MAP_TO_SNAKE = ["var", "var_var", "size_k8s_test", "888"]

# Further cases, each checked against the SDK's Go code: only HTTP, URL and IP are special;
# other initialisms are split by the case rule alone.
SDK_QUIRKS = [
    ("JSONData", "_json_data"),
    ("userIDs", "user_i_ds"),
    ("HTTPSProxy", "http_s_proxy"),
    ("HTTPProxy", "http_proxy"),
    ("myHTTPServer", "my_http_server"),
    ("IPs", "__ips"),
    ("IP", "ip"),
    ("IPAddress", "ip_address"),
    ("podIP", "pod_ip"),
    ("hostIPs", "host_ips"),
    ("serviceURL", "service_url"),
    ("httpProxy", "http_proxy"),
    ("apiVersion", "api_version"),
    ("replicaCount", "replica_count"),
    ("k8sVersion", "k8s_version"),
    ("v1beta1", "v1beta1"),
    ("a1b2", "a_1_b2"),
    ("aB", "ab"),  # a case change right after a word's first letter is no break
    ("foo-bar", "foo_bar"),
    ("  padded  ", "padded"),
    ("Ünïcode_ärger", "ünïcode_ärger"),  # only an ASCII capital earns the leading "_"
]


@pytest.mark.parametrize(("name", "expected"), SDK_TO_SNAKE + SDK_QUIRKS)
def test_to_snake(name: str, expected: str) -> None:
    assert to_snake(name) == expected


@pytest.mark.parametrize("name", SDK_MAP_TO_SNAKE)
def test_snake_case_names_are_kept(name: str) -> None:
    assert to_snake(name) == name


@pytest.mark.parametrize("name", ["", "   "])
def test_to_snake_of_nothing_is_empty(name: str) -> None:
    # The SDK panics on these; a resource cannot break the bridge with an empty key.
    assert to_snake(name) == ""


# TestToCamel and TestMapToCamel.
SDK_TO_CAMEL = [
    ("app_test", "appTest"),
    ("_app_test", "AppTest"),
    ("_app_test_k8s", "AppTestK8s"),
    ("var_k8s", "varK8s"),
    ("egressIPs", "egressIPs"),
    ("var", "var"),
    ("appService", "appService"),
    ("app_8sk_", "app8Sk"),
    ("_app_8sk_test", "App8SkTest"),
]

CAMEL_QUIRKS = [
    ("ip_address", "IPAddress"),  # the initialisms are upper-cased even as the first word
    ("egress_ip", "egressIP"),
    ("egress_ips", "egressIps"),
    ("http_proxy", "HTTPProxy"),
    ("service_url", "serviceURL"),
    ("size_k8s_buckets", "sizeK8sBuckets"),
    ("a1b2", "a1B2"),
    ("foo__bar", "fooBar"),
    ("foo-bar baz", "fooBarBaz"),
    ("a_TITLE", "aTitle"),  # later words are title-cased: the rest goes lower-case
    ("a.b_c.d", "a.bC.d"),
    ("", ""),
]


@pytest.mark.parametrize(("name", "expected"), SDK_TO_CAMEL + CAMEL_QUIRKS)
def test_to_camel(name: str, expected: str) -> None:
    assert to_camel(name) == expected


NORMAL_OPTION_NAMES = [
    "a",
    "replicas",
    "replica_count",
    "image_pull_policy",
    "size_k8s_buckets",
    "api_version",
    "node_selector",
    "tls_enabled",
    "db_host",
    "ip_address",
    "egress_ip",
    "egress_ips",
    "http_proxy",
    "service_url",
    "max_surge2",
    "_pascal_case",
]


@pytest.mark.parametrize("name", NORMAL_OPTION_NAMES)
def test_round_trip(name: str) -> None:
    camel = to_camel(name)
    assert "_" not in camel
    assert to_snake(camel) == name


def test_snake_keys_converts_at_every_depth() -> None:
    spec = {
        "replicaCount": 3,
        "podTemplate": {
            "nodeSelector": {"diskType": "ssd"},
            "containers": [{"imagePullPolicy": "Always", "ports": [8080, {"hostIP": "::"}]}],
        },
        "egressIPs": ["10.0.0.1"],
        "emptyThing": {},
        "nothing": None,
    }
    assert snake_keys(spec) == {
        "replica_count": 3,
        "pod_template": {
            "node_selector": {"disk_type": "ssd"},
            "containers": [{"image_pull_policy": "Always", "ports": [8080, {"host_ip": "::"}]}],
        },
        "egress_ips": ["10.0.0.1"],
        "empty_thing": {},
        "nothing": None,
    }


def test_snake_keys_leaves_values_alone() -> None:
    assert snake_keys({"someKey": "someValue"}) == {"some_key": "someValue"}
    assert snake_keys(["camelCase", 1, 2.5, True, None]) == ["camelCase", 1, 2.5, True, None]
    assert snake_keys("camelCase") == "camelCase"


def test_snake_keys_accepts_any_mapping_and_returns_plain_containers() -> None:
    value = MappingProxyType({"outerKey": OrderedDict(innerKey=("tupleItem", {"deepKey": 1}))})
    converted = snake_keys(value)
    assert converted == {"outer_key": {"inner_key": ["tupleItem", {"deep_key": 1}]}}
    assert type(converted) is dict
    assert type(converted["outer_key"]) is dict
    assert type(converted["outer_key"]["inner_key"]) is list


def test_snake_keys_does_not_change_its_input() -> None:
    spec = {"someKey": {"otherKey": [1]}}
    converted = snake_keys(spec)
    converted["some_key"]["other_key"].append(2)
    assert spec == {"someKey": {"otherKey": [1]}}


def test_snake_keys_keeps_non_string_keys() -> None:
    assert snake_keys({1: {"someKey": 2}}) == {1: {"some_key": 2}}


def test_colliding_keys_collapse_last_wins() -> None:
    assert snake_keys({"fooBar": 1, "foo_bar": 2}) == {"foo_bar": 2}
