"""Alertmanager's own test cases, as data: inputs and the results Alertmanager expects.

Source: prometheus/alertmanager at 68fb2d57 (the file and test function are named on each
table); the regular-expression probes were answered by Debian's amtool 0.25.0. Go string
literals are written here as the Python strings they denote. Used by test_am_conformance.py.
"""

from __future__ import annotations

EQ, NE, RE, NRE = "=", "!=", "=~", "!~"

# --- matcher/parse/parse_test.go TestMatchers: input → matchers, or Alertmanager's exact error.
UTF8_MATCHERS: list[tuple[str, list[tuple[str, str, str]] | str]] = [
    ("", []),
    ("{}", []),
    ("{foo=bar}", [("foo", EQ, "bar")]),
    ("{foo=bar,}", [("foo", EQ, "bar")]),
    ("{foo!=bar}", [("foo", NE, "bar")]),
    ("{foo=~[a-z]+}", [("foo", RE, "[a-z]+")]),
    ("{foo!~[a-z]+}", [("foo", NRE, "[a-z]+")]),
    ("{foo=🙂}", [("foo", EQ, "🙂")]),
    ("{foo=🙂bar}", [("foo", EQ, "🙂bar")]),
    ("foo=bar", [("foo", EQ, "bar")]),
    ("foo=bar,", [("foo", EQ, "bar")]),
    ("foo!=bar", [("foo", NE, "bar")]),
    ("foo=~[a-z]+", [("foo", RE, "[a-z]+")]),
    ("foo!~[a-z]+", [("foo", NRE, "[a-z]+")]),
    ('{"foo"="bar"}', [("foo", EQ, "bar")]),
    ('{"foo"="bar",}', [("foo", EQ, "bar")]),
    ('{"foo"!="bar"}', [("foo", NE, "bar")]),
    ('{"foo"=~"[a-z]+"}', [("foo", RE, "[a-z]+")]),
    ('{"foo"=~"\\\\d+"}', [("foo", RE, "\\d+")]),
    ('{"foo"!~"[a-z]+"}', [("foo", NRE, "[a-z]+")]),
    ('{"foo"="🙂"}', [("foo", EQ, "🙂")]),
    ('{"foo"="\\xf0\\x9f\\x99\\x82"}', [("foo", EQ, "🙂")]),
    ('{"foo"="\\U0001f642"}', [("foo", EQ, "🙂")]),
    ('{"foo"="🙂bar"}', [("foo", EQ, "🙂bar")]),
    ('{"foo"="bar\\n"}', [("foo", EQ, "bar\n")]),
    ('{"foo"="bar\\t"}', [("foo", EQ, "bar\t")]),
    ('{"foo"="\\"bar\\""}', [("foo", EQ, '"bar"')]),
    ('{"foo"="bar\\\\"}', [("foo", EQ, "bar\\")]),
    ('"foo"="bar"', [("foo", EQ, "bar")]),
    ('"foo"="bar",', [("foo", EQ, "bar")]),
    ("{foo=bar,bar!=baz}", [("foo", EQ, "bar"), ("bar", NE, "baz")]),
    ('{foo="bar",bar!="baz"}', [("foo", EQ, "bar"), ("bar", NE, "baz")]),
    ("foo=bar,bar!=baz", [("foo", EQ, "bar"), ("bar", NE, "baz")]),
    ('foo="bar",bar!="baz"', [("foo", EQ, "bar"), ("bar", NE, "baz")]),
    (",", "0:1: unexpected ,: expected label name"),
    ("{,}", "1:2: unexpected ,: expected label name"),
    ("{", "0:1: end of input: expected close brace"),
    ("}", "0:1: }: expected opening brace"),
    ("foo=bar}", "0:8: }: expected opening brace"),
    ("{foo=bar", "0:8: end of input: expected close brace"),
    ('{foo=:"bar"}', '6:11: unexpected "bar": expected a comma or close brace'),
    ('{foo="bar\\w"}', '5:12: "bar\\w": invalid input'),
    ('{"foo"=~"\\d+"}', '8:13: "\\d+": invalid input'),
    ("{foo=bar\\n}", "8:9: \\: invalid input: expected a comma or close brace"),
    ('{"foo"="\\xf0\\x9f"}', '7:17: "\\xf0\\x9f": invalid input'),
]

# --- matcher/parse/parse_test.go TestMatcher: exactly one matcher (orderwatch: API `filter`).
UTF8_MATCHER: list[tuple[str, tuple[str, str, str] | str]] = [
    ("{foo=bar}", ("foo", EQ, "bar")),
    ("{foo=bar,}", ("foo", EQ, "bar")),
    ("{foo!=bar}", ("foo", NE, "bar")),
    ("{foo=~[a-z]+}", ("foo", RE, "[a-z]+")),
    ("{foo!~[a-z]+}", ("foo", NRE, "[a-z]+")),
    ("{foo=🙂}", ("foo", EQ, "🙂")),
    ('{"foo"="\\xf0\\x9f\\x99\\x82"}', ("foo", EQ, "🙂")),
    ('{"foo"="\\U0001f642"}', ("foo", EQ, "🙂")),
    ("{foo=🙂bar}", ("foo", EQ, "🙂bar")),
    ("foo=bar", ("foo", EQ, "bar")),
    ("foo=bar,", ("foo", EQ, "bar")),
    ("foo!=bar", ("foo", NE, "bar")),
    ("foo=~[a-z]+", ("foo", RE, "[a-z]+")),
    ("foo!~[a-z]+", ("foo", NRE, "[a-z]+")),
    ('{"foo"="bar"}', ("foo", EQ, "bar")),
    ('{"foo"="bar",}', ("foo", EQ, "bar")),
    ('{"foo"!="bar"}', ("foo", NE, "bar")),
    ('{"foo"=~"[a-z]+"}', ("foo", RE, "[a-z]+")),
    ('{"foo"!~"[a-z]+"}', ("foo", NRE, "[a-z]+")),
    ('{"foo"="🙂"}', ("foo", EQ, "🙂")),
    ('{"foo"="🙂bar"}', ("foo", EQ, "🙂bar")),
    ('{"foo"="bar\\n"}', ("foo", EQ, "bar\n")),
    ('{"foo"="bar\\t"}', ("foo", EQ, "bar\t")),
    ('{"foo"="\\"bar\\""}', ("foo", EQ, '"bar"')),
    ('{"foo"="bar\\\\"}', ("foo", EQ, "bar\\")),
    ('"foo"="bar"', ("foo", EQ, "bar")),
    ('"foo"="bar",', ("foo", EQ, "bar")),
    ("", "no matchers"),
    ("{}", "no matchers"),
    ("foo=bar,bar=baz", "expected 1 matcher, found 2"),
    ('foo="\\xf0\\x9f"', '4:14: "\\xf0\\x9f": invalid input'),
]

# --- pkg/labels/parse_test.go TestMatchers (the classic parser): input → matchers, or "error".
# orderwatch reads matchers as the UTF-8 parser does (Alertmanager's utf8-strict-mode). Where
# the classic parser answers differently, the last item is the UTF-8 parser's answer and
# orderwatch's (Alertmanager's error text), and the case is listed in the README.
ERROR = "error"
CLASSIC_MATCHERS: list[tuple[str, object] | tuple[str, object, str]] = [
    ("{}", []),
    (",", ERROR),
    ("{,}", ERROR),
    ("{foo='}", [("foo", EQ, "'")], "5:6: ': invalid input: expected label value"),
    ("{foo=`}", [("foo", EQ, "`")], "5:6: `: invalid input: expected label value"),
    ('{foo=\\"}', [("foo", EQ, '"')], "5:6: \\: invalid input: expected label value"),
    ("{foo=bar}", [("foo", EQ, "bar")]),
    ('{foo="bar"}', [("foo", EQ, "bar")]),
    ("{foo=~bar.*}", [("foo", RE, "bar.*")]),
    ('{foo=~"bar.*"}', [("foo", RE, "bar.*")]),
    ("{foo!=bar}", [("foo", NE, "bar")]),
    ('{foo!="bar"}', [("foo", NE, "bar")]),
    ("{foo!~bar.*}", [("foo", NRE, "bar.*")]),
    ('{foo!~"bar.*"}', [("foo", NRE, "bar.*")]),
    ('{foo="bar", baz!="quux"}', [("foo", EQ, "bar"), ("baz", NE, "quux")]),
    ('{foo="bar", baz!~"quux.*"}', [("foo", EQ, "bar"), ("baz", NRE, "quux.*")]),
    ('{foo="bar",baz!~".*quux", derp="wat"}', [("foo", EQ, "bar"), ("baz", NRE, ".*quux"), ("derp", EQ, "wat")]),
    ('{foo="bar", baz!="quux", derp="wat"}', [("foo", EQ, "bar"), ("baz", NE, "quux"), ("derp", EQ, "wat")]),
    ('{foo="bar", baz!~".*quux.*", derp="wat"}',
     [("foo", EQ, "bar"), ("baz", NRE, ".*quux.*"), ("derp", EQ, "wat")]),
    ('{foo="bar", instance=~"some-api.*"}', [("foo", EQ, "bar"), ("instance", RE, "some-api.*")]),
    ('{foo=""}', [("foo", EQ, "")]),
    ('{foo="bar,quux", job="job1"}', [("foo", EQ, "bar,quux"), ("job", EQ, "job1")]),
    ('{foo = "bar", dings != "bums", }', [("foo", EQ, "bar"), ("dings", NE, "bums")]),
    ("foo=bar,dings!=bums", [("foo", EQ, "bar"), ("dings", NE, "bums")]),
    ('{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
     [("quote", EQ, "She said: \"Hi, ladies! That's gender-neutral…\"")]),
    ('statuscode=~"5.."', [("statuscode", RE, "5..")]),
    ("tricky=~~~", [("tricky", RE, "~~")], "8:9: ~: invalid input: expected label value"),
    ('trickier==\\\\=\\=\\"', [("trickier", EQ, '=\\=\\="')], "9:10: unexpected =: expected label value"),
    ('contains_quote != "\\"" , contains_comma !~ "foo,bar" , ',
     [("contains_quote", NE, '"'), ("contains_comma", NRE, "foo,bar")]),
    ("{foo=bar}}", [("foo", EQ, "bar}")], "9:10: }: expected end of input"),
    ("{foo=bar}},}", [("foo", EQ, "bar}}")], "9:10: }: expected end of input"),
    ("{foo=,bar=}}", [("foo", EQ, ""), ("bar", EQ, "}")], "5:6: unexpected ,: expected label value"),
    ("{foo=bar\\t}", [("foo", EQ, "bar\\t")], "8:9: \\: invalid input: expected a comma or close brace"),
    ("{foo=bar\\n}", [("foo", EQ, "bar\n")], "8:9: \\: invalid input: expected a comma or close brace"),
    ("{foo=bar\\}", [("foo", EQ, "bar\\")], "8:9: \\: invalid input: expected a comma or close brace"),
    ("{foo=bar\\\\}", [("foo", EQ, "bar\\")], "8:9: \\: invalid input: expected a comma or close brace"),
    ('{foo=bar\\"}', [("foo", EQ, 'bar"')], "8:9: \\: invalid input: expected a comma or close brace"),
    ("job=", [("job", EQ, "")], "end of input: expected label value"),
    ('job="value', ERROR),
    ('job=value"', ERROR),
    ('trickier==\\\\=\\=\\""', ERROR),
    ('contains_unescaped_quote = foo"bar', ERROR),
    ('{invalid-name = "valid label"}', ERROR, [("invalid-name", EQ, "valid label")]),  # UTF-8 label names
    ('{foo=~"invalid[regexp"}', ERROR),
    ('"{foo=\\"bar"}', ERROR),
    ('"foo=\\"bar"', ERROR),
    ('"foo=\\"bar\\""', ERROR),
    ('"foo=\\"bar\\"', ERROR),
    ('"{foo=\\"bar\\"}"', ERROR),
    ('"foo="bar""', ERROR),
    ("{{foo=", ERROR),
    ("{foo=", [("foo", EQ, "")], "end of input: expected label value"),
    ("{foo=}b", [("foo", EQ, "}b")], "5:6: unexpected }: expected label value"),
]

# --- pkg/labels/matcher_test.go TestMatcher: (op, pattern, label value, matches)
MATCHES = [
    (EQ, "bar", "bar", True), (EQ, "bar", "foo-bar", False), (NE, "bar", "bar", False),
    (NE, "bar", "foo-bar", True), (RE, "bar", "bar", True), (RE, "bar", "foo-bar", False),
    (RE, ".*bar", "foo-bar", True), (NRE, "bar", "bar", False), (NRE, "bar", "foo-bar", True),
    (NRE, ".*bar", "foo-bar", False), (RE, "foo.bar", "foo-bar", True), (RE, "foo\\.bar", "foo-bar", False),
    (RE, "foo\\.bar", "foo.bar", True), (EQ, "foo\nbar", "foo\nbar", True), (RE, "foo.bar", "foo\nbar", False),
    (RE, "(?s)foo.bar", "foo\nbar", True), (EQ, '~!="', '~!="', True),
]

# --- pkg/labels/matcher_test.go TestMatcherString: (name, op, value, printed)
STRINGS = [
    ("foo", EQ, "bar", 'foo="bar"'), ("foo", NE, "bar", 'foo!="bar"'), ("foo", RE, "bar", 'foo=~"bar"'),
    ("foo", NRE, "bar", 'foo!~"bar"'), ("foo", EQ, "back\\slash", 'foo="back\\\\slash"'),
    ("foo", EQ, 'double"quote', 'foo="double\\"quote"'), ("foo", EQ, "new\nline", 'foo="new\\nline"'),
    ("foo", EQ, "tab\tstop", 'foo="tab\tstop"'), ("foo", EQ, "🙂", 'foo="🙂"'),
    ("foo!", NE, "bar", '"foo!"!="bar"'), ("foo🙂", EQ, "bar", 'foo🙂="bar"'), ("foo bar", EQ, "baz", '"foo bar"="baz"'),
]

# --- Regular expressions of route matchers, answered by amtool 0.25.0 (`config routes test`; Go's
# RE2): (pattern, value of label x, matches) or (pattern, None, error text). Not peer test cases: probes.
REGEX_PROBES: list[tuple[str, str | None, bool | str]] = [
    ("[[:alpha:]]+", "abc", True),
    ("\\pL+", "日本", True),
    ("\\p{Han}+", "采购", True),
    ("(?=a)a", None, "invalid perl operator"),
    ("a{,2}", "aa", False),
    ("a{,2}", "a{,2}", True),
    ("\\d+", "１２３", False),
    ("\\w+", "采购部", False),
    ("(?i)abc", "ABC", True),
    ("a|b", "a", True),
    ("a|b", "ab", False),
    (".", "é", True),
    ("\\z", "", True),
    (".+", "", False),
    ("(a+)+$", "a" * 60 + "b", False),
    ("(a)\\1", None, "invalid escape sequence"),
    ("a)|(b", "b", True),
    ("\\Qa.b\\E", "a.b", True),
    ("\\Qa.b\\E", "axb", False),
]

# --- inhibit/inhibit_test.go. Rules as orderwatch alerts-file entries; (sources, target, muted).
INHIBIT_RULES_MATCHES = [  # TestInhibitRuleMatches
    {"source_match": {"s1": "1"}, "target_match": {"t1": "1"}, "equal": ["e"]},
    {"source_match": {"s2": "1"}, "target_match": {"t2": "1"}, "equal": ["e"]},
]
INHIBIT_RULES_MATCHERS = [  # TestInhibitRuleMatchers
    {"source_matchers": ['s1="1"'], "target_matchers": ['t1!="1"'], "equal": ["e"]},
    {"source_matchers": ['s2="1"'], "target_matchers": ['t2="1"'], "equal": ["e"]},
]
INHIBIT_SOURCES = [{"s1": "1", "t1": "2", "e": "1"}, {"s2": "1", "t2": "1", "e": "1"}]
INHIBIT_MATCHES_CASES = [  # (target, muted)
    ({"t1": "1", "e": "1"}, True), ({"t2": "1", "e": "1"}, True), ({"t1": "1", "t3": "1", "e": "1"}, True),
    ({"t1": "1", "t2": "1", "e": "1"}, True), ({"t1": "0", "e": "1"}, False),
    ({"s1": "1", "t1": "1", "e": "1"}, True), ({"s2": "1", "t2": "1", "e": "1"}, False),
    ({"t1": "1", "e": "0"}, False),
]
INHIBIT_MATCHERS_CASES = [
    ({"t1": "1", "e": "1"}, False), ({"t2": "1", "e": "1"}, True), ({"t1": "1", "t3": "1", "e": "1"}, False),
    ({"t1": "1", "t2": "1", "e": "1"}, True), ({"t1": "0", "e": "1"}, True),
    ({"s1": "1", "t1": "1", "e": "1"}, False), ({"s2": "1", "t2": "1", "e": "1"}, True),
    ({"t1": "1", "e": "0"}, False),
]
# TestInhibit: rule s="1" → t="1", equal e; which alerts are muted given the active ones.
INHIBIT_TIMELINE = [
    ("only alertOne", [{"t": "1", "e": "f"}], []),
    ("alertOne and alertTwo", [{"t": "1", "e": "f"}, {"s": "1", "e": "f"}], [{"t": "1", "e": "f"}]),
    ("alertTwo resolved", [{"t": "1", "e": "f"}], []),
]
# TestInhibitRuleHasEqual: (name, open source alerts, equal, target, found); resolved sources are
# not open, so they are not given.
INHIBIT_HAS_EQUAL = [
    ("no source alerts", [], [], {"a": "b"}, False),
    ("no equal labels, any source alerts satisfies the requirement", [{}], [], {"a": "b"}, True),
    ("matching but already resolved", [], ["a", "b"], {"a": "b", "b": "c"}, False),
    ("matching and unresolved", [{"a": "b", "c": "f"}], ["a"], {"a": "b"}, True),
    ("equal label does not match", [], ["a"], {"a": "b"}, False),
]

# --- dispatch/route_test.go: the routing trees verbatim (Alertmanager's route YAML).
ROUTE_MATCH = """
receiver: 'notify-def'
routes:
- match:
    owner: 'team-A'
  receiver: 'notify-A'
  routes:
  - match:
      env: 'testing'
    receiver: 'notify-testing'
    group_by: [...]
  - match:
      env: "production"
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - match_re:
      env: "produ.*"
      job: ".*"
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- match_re:
    owner: 'team-(B|C)'
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- match:
    group_by: 'role'
  group_by: ['role']
  routes:
  - match:
      env: 'testing'
    receiver: 'notify-testing'
    routes:
    - match:
        wait: 'long'
      group_wait: 2m
"""
ROUTE_MATCHERS = """
receiver: 'notify-def'
routes:
- matchers: ['{owner="team-A"}', '{level!="critical"}']
  receiver: 'notify-A'
  routes:
  - matchers: ['{env="testing"}', '{baz!~".*quux"}']
    receiver: 'notify-testing'
    group_by: [...]
  - matchers: ['{env="production"}']
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - matchers: [ env=~"produ.*", job=~".*"]
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- matchers: [owner=~"team-(B|C)"]
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- matchers: [group_by="role"]
  group_by: ['role']
  routes:
  - matchers: ['{env="testing"}']
    receiver: 'notify-testing'
    routes:
    - matchers: [wait="long"]
      group_wait: 2m
"""
ROUTE_MATCHERS_AND_MATCH = """
receiver: 'notify-def'
routes:
- matchers: ['{owner="team-A"}', '{level!="critical"}']
  receiver: 'notify-A'
  routes:
  - matchers: ['{env="testing"}', '{baz!~".*quux"}']
    receiver: 'notify-testing'
    group_by: [...]
  - match:
      env: "production"
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - matchers: [ env=~"produ.*", job=~".*"]
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- match_re:
    owner: 'team-(B|C)'
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- matchers: [group_by="role"]
  group_by: ['role']
  routes:
  - matchers: ['{env="testing"}']
    receiver: 'notify-testing'
    routes:
    - matchers: [wait="long"]
      group_wait: 2m
"""
ROUTE_TREES = {"TestRouteMatch": ROUTE_MATCH, "TestRouteMatchers": ROUTE_MATCHERS,
               "TestRouteMatchersAndMatch": ROUTE_MATCHERS_AND_MATCH}


def _opts(receiver: str, group_by: tuple[str, ...] = (), group_all: bool = False, wait: float = 30.0,
          interval: float = 300.0, repeat: float = 4 * 3600.0) -> dict[str, object]:
    return {"receiver": receiver, "group_by": set(group_by), "all": group_all, "wait": wait,
            "interval": interval, "repeat": repeat}


# The table the three tests share: alert labels → the options of each route that takes it, in order.
ROUTE_TABLE = [
    ({"owner": "team-A"}, [_opts("notify-A")]),
    ({"owner": "team-A", "env": "unset"}, [_opts("notify-A")]),
    ({"owner": "team-C"}, [_opts("notify-BC", ("foo", "bar"), wait=120.0)]),
    ({"owner": "team-A", "env": "testing"}, [_opts("notify-testing", group_all=True)]),
    ({"owner": "team-A", "env": "production"},
     [_opts("notify-productionA", wait=60.0), _opts("notify-productionB", ("job",), repeat=3600.0)]),
    ({"group_by": "role"}, [_opts("notify-def", ("role",))]),
    ({"env": "testing", "group_by": "role"}, [_opts("notify-testing", ("role",))]),
    ({"env": "testing", "group_by": "role", "wait": "long"}, [_opts("notify-testing", ("role",), wait=120.0)]),
]
# TestRouteWalk: receivers in pre-order over ROUTE_MATCH.
ROUTE_WALK = ["notify-def", "notify-A", "notify-testing", "notify-productionA", "notify-productionB",
              "notify-BC", "notify-def", "notify-testing", "notify-testing"]
# TestInheritParentGroupByAll
INHERIT_GROUP_BY_ALL = """
routes:
- match:
    env: 'parent'
  group_by: ['...']
  routes:
  - match:
      env: 'child1'
  - match:
      env: 'child2'
    group_by: ['foo']
"""

# --- config/config_test.go: whole files → Alertmanager's error (orderwatch says it in its own words,
# given here as a fragment), or None when it loads.
CONFIG_CASES = [
    ("TestDefaultReceiverExists", "route:\n   group_wait: 30s\n", "root route must specify a default receiver",
     "names no receivers"),
    ("TestReceiverNameIsUnique", "route:\n    receiver: team-X\n\nreceivers:\n- name: 'team-X'\n- name: 'team-X'\n",
     'notification config name "team-X" is not unique', "receiver name 'team-X' is used twice"),
    ("TestReceiverExists", "route:\n    receiver: team-X\n\nreceivers:\n- name: 'team-Y'\n",
     'undefined receiver "team-X" used in route', "receiver 'team-X' is not defined"),
    ("TestReceiverExistsForDeepSubRoute",
     ("route:\n    receiver: team-X\n    routes:\n      - match:\n          foo: bar\n        routes:\n"
     "        - match:\n            foo: bar\n          receiver: nonexistent\n\nreceivers:\n- name: 'team-X'\n"),
     'undefined receiver "nonexistent" used in route', "receiver 'nonexistent' is not defined"),
    ("TestGroupByHasNoDuplicatedLabels",
     "route:\n  group_by: ['alertname', 'cluster', 'service', 'cluster']\n\nreceivers:\n- name: 'team-X-mails'\n",
     'duplicated label "cluster" in group_by', "duplicated label 'cluster' in group_by"),
    ("TestWildcardGroupByWithOtherGroupByLabels",
     ("route:\n  group_by: ['alertname', 'cluster', '...']\n  receiver: team-X-mails\nreceivers:\n"
     "- name: 'team-X-mails'\n"),
     "cannot have wildcard group_by (`...`) and other labels at the same time",
     "cannot have wildcard group_by (`...`) and other labels at the same time"),
    ("TestContinueErrorInRouteRoot",
     "route:\n    receiver: team-X-mails\n    continue: true\n\nreceivers:\n- name: 'team-X-mails'\n",
     "cannot have continue in root route", "the root route cannot 'continue'"),
    ("TestGroupIntervalIsGreaterThanZero",
     "route:\n    receiver: team-X-mails\n    group_interval: 0s\n\nreceivers:\n- name: 'team-X-mails'\n",
     "group_interval cannot be zero", "group_interval must be more than 0"),
    ("TestRepeatIntervalIsGreaterThanZero",
     "route:\n    receiver: team-X-mails\n    repeat_interval: 0s\n\nreceivers:\n- name: 'team-X-mails'\n",
     "repeat_interval cannot be zero", "repeat_interval must be more than 0"),
    ("TestRootRouteHasNoMatcher[match]",
     "route:\n  receiver: team-X\n  match:\n    severity: critical\nreceivers:\n- name: team-X\n",
     "root route must not have any matchers", "the root route takes every alert: it has no matchers"),
    ("TestRootRouteHasNoMatcher[matchers]",
     "route:\n  receiver: team-X\n  matchers:\n    - severity=critical\nreceivers:\n- name: team-X\n",
     "root route must not have any matchers", "the root route takes every alert: it has no matchers"),
    ("TestGroupByEmptyOverride",
     ("route:\n  receiver: 'default'\n  group_by: ['alertname', 'cluster']\n  routes:\n    - group_by: []\n\n"
     "receivers:\n  - name: 'default'\n"), None, None),
]
