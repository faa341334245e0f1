"""Alertmanager's time-interval test cases, as data (inputs and the results Alertmanager expects).

Source: prometheus/alertmanager at 68fb2d57, timeinterval/timeinterval_test.go; each table is
named after the Go variable or test function it comes from, each case by its comment there
(or its position). Times are Go's RFC822Z strings ("02 Jan 06 15:04 +0000"). Intervals are
written in Alertmanager's YAML. Used by test_timeintervals.py.
"""

from __future__ import annotations

# --- timeIntervalTestCases (TestContainsTime): interval YAML, times inside, times outside.
CONTAINS_TIME: list[tuple[str, str, list[str], list[str]]] = [
    ("empty interval", "{}",
     ["02 Jan 06 15:04 +0000", "03 Jan 07 10:04 +0000", "04 Jan 06 09:04 +0000"], []),
    ("9am to 5pm, monday to friday",
     "{times: [{start_time: '09:00', end_time: '17:00'}], weekdays: ['monday:friday']}",
     ["04 May 20 15:04 +0000", "05 May 20 10:04 +0000", "09 Jun 20 09:04 +0000"],
     ["03 May 20 15:04 +0000", "04 May 20 08:59 +0000", "05 May 20 05:00 +0000"]),
    ("Easter 2020", "{days_of_month: ['4:6'], months: ['4'], years: ['2020']}",
     ["04 Apr 20 15:04 +0000", "05 Apr 20 00:00 +0000", "06 Apr 20 23:05 +0000"],
     ["03 May 18 15:04 +0000", "03 Apr 20 23:59 +0000", "04 Jun 20 23:59 +0000", "06 Apr 19 23:59 +0000",
      "07 Apr 20 00:00 +0000"]),
    ("negative days of month, last 3 days of each month", "{days_of_month: ['-3:-1']}",
     ["31 Jan 20 15:04 +0000", "30 Jan 20 15:04 +0000", "29 Jan 20 15:04 +0000", "30 Jun 20 00:00 +0000",
      "29 Feb 20 23:05 +0000"],
     ["03 May 18 15:04 +0000", "27 Jan 20 15:04 +0000", "03 Apr 20 23:59 +0000", "04 Jun 20 23:59 +0000",
      "06 Apr 19 23:59 +0000", "07 Apr 20 00:00 +0000", "01 Mar 20 00:00 +0000"]),
    ("AEST 9AM to 5PM, Monday to Friday",
     "{times: [{start_time: '09:00', end_time: '17:00'}], weekdays: ['monday:friday'], location: Australia/Sydney}",
     ["06 Apr 21 13:00 +1000"], ["06 Apr 21 13:00 +0000"]),
    ("alternative timezone during daylight savings time",
     ("{times: [{start_time: '09:00', end_time: '17:00'}], weekdays: ['monday:friday'], months: ['11'],"
     " location: Australia/Sydney}"),
     ["01 Nov 21 09:00 +1100", "31 Oct 21 22:00 +0000"], ["31 Oct 21 21:00 +0000"]),
    ("last-day mutes should not shift during spring-forward months",
     "{days_of_month: ['-1'], location: America/New_York}",
     ["31 Mar 21 12:00 -0400"], ["30 Mar 21 12:00 -0400"]),
]

# The same table's case "Check out of bound days are clamped to month boundaries" is a Go struct
# (months 6, days of month -31:31) that the loader refuses ("end day must be negative if start day
# is negative"), in Alertmanager as here: it is checked on TimeInterval itself.
CLAMPED = ("out of bound days are clamped to month boundaries", {"months": ((6, 6),), "days_of_month": ((-31, 31),)},
           ["30 Jun 20 00:00 +0000", "01 Jun 20 00:00 +0000"], ["31 May 20 00:00 +0000", "1 Jul 20 00:00 +0000"])

# --- timeStringTestCases (TestParseTimeString): a `times` entry → (start minute, end minute) or an error.
TIME_STRINGS: list[tuple[str, tuple[int, int] | None]] = [
    ("{'start_time': '00:00', 'end_time': '24:00'}", (0, 1440)),
    ("{'start_time': '01:35', 'end_time': '17:39'}", (95, 1059)),
    ("{'start_time': '09:35', 'end_time': '09:39'}", (575, 579)),
    ("{'start_time': '17:31', 'end_time': '17:31'}", None),  # begin and end times are the same
    ("{'start_time': '12:30', 'end_time': '24:01'}", None),  # end time out of range
    ("{'start_time': '09:30', 'end_time': '07:41'}", None),  # start time greater than end time
    ("{'start_time': '24:00', 'end_time': '17:41'}", None),  # start out of range and greater than end
    ("{'start_time': '14:03'}", None),  # no range specified
]

# --- yamlUnmarshalTestCases (TestYamlUnmarshal): a list of intervals → contains/excludes, or the exact error.
YAML_UNMARSHAL: list[tuple[str, str, list[str], list[str], str | None]] = [
    ("simple business hours", "[{weekdays: ['monday:friday'], times: [{start_time: '09:00', end_time: '17:00'}]}]",
     ["08 Jul 20 09:00 +0000", "08 Jul 20 16:59 +0000"], ["08 Jul 20 05:00 +0000", "08 Jul 20 08:59 +0000"], None),
    ("negative indices and ranges",
     ("[{weekdays: ['monday:friday', 'sunday'], months: ['january:march'], days_of_month: ['-7:-1'],"
     " years: ['2020:2025', '2030:2035'], times: [{start_time: '09:00', end_time: '17:00'}]}]"),
     ["27 Jan 21 09:00 +0000", "28 Jan 21 16:59 +0000", "29 Jan 21 13:00 +0000", "31 Mar 25 13:00 +0000",
      "31 Jan 35 13:00 +0000"],
     ["30 Jan 21 13:00 +0000", "01 Apr 21 13:00 +0000", "30 Jan 26 13:00 +0000", "31 Jan 35 17:01 +0000"], None),
    ("business hours without a trailing newline",
     "[{weekdays: ['monday:friday'], times: [{start_time: '09:00', end_time: '17:00'}]}]",
     ["01 Apr 21 13:00 +0000"], [], None),
    ("invalid start time", "[{times: [{start_time: '01:99', end_time: '23:59'}]}]", [], [],
     "couldn't parse timestamp 01:99, invalid format"),
    ("invalid end time", "[{times: [{start_time: '00:00', end_time: '99:99'}]}]", [], [],
     "couldn't parse timestamp 99:99, invalid format"),
    ("start day before end day", "[{weekdays: ['friday:monday']}]", [], [], "start day cannot be before end day"),
    ("invalid weekdays", "[{weekdays: ['blurgsday:flurgsday']}]", [], [], "blurgsday is not a valid weekday"),
    ("numeric weekdays aren't allowed", "[{weekdays: ['1:3']}]", [], [], "1 is not a valid weekday"),
    ("negative numeric weekdays aren't allowed", "[{weekdays: ['-2:-1']}]", [], [], "-2 is not a valid weekday"),
    ("0 day of month", "[{days_of_month: ['0']}]", [], [], "0 is not a valid day of the month: out of range"),
    ("start day of month < 0", "[{days_of_month: ['-50:-20']}]", [], [],
     "-50 is not a valid day of the month: out of range"),
    ("end day of month > 31", "[{days_of_month: ['1:50']}]", [], [],
     "50 is not a valid day of the month: out of range"),
    ("negative indices should work", "[{days_of_month: ['1:-1']}]", [], [], None),
    ("end day must be negative if begin day is negative", "[{days_of_month: ['-15:5']}]", [], [],
     "end day must be negative if start day is negative"),
    ("negative end date before positive start date", "[{days_of_month: ['10:-25']}]", [], [],
     "end day -25 is always before start day 10"),
    ("months regardless of case", "[{months: ['January:december']}]", [], [], None),
    ("time zones may be specified by location", "[{years: ['2020:2022'], location: 'Australia/Sydney'}]",
     [], [], None),
    ("invalid start month", "[{months: ['martius:june']}]", [], [], "martius is not a valid month"),
    ("invalid end month", "[{months: ['march:junius']}]", [], [], "junius is not a valid month"),
    ("start month after end month", "[{months: ['december:january']}]", [], [],
     "end month january is before start month december"),
    ("start year after end year", "[{years: ['2022:2020']}]", [], [], "end year 2020 is before start year 2022"),
]

# --- completeTestCases (TestTimeIntervalComplete): one interval → contains/excludes.
COMPLETE: list[tuple[str, str, list[str], list[str]]] = [
    ("weekdays, times, days of month, years and months together",
     ("{weekdays: ['monday:wednesday', 'saturday', 'sunday'], times: [{start_time: '13:00', end_time: '15:00'}],"
     " days_of_month: ['1', '10', '20:-1'], years: ['2020:2023'], months: ['january:march']}"),
     ["10 Jan 21 13:00 +0000", "30 Jan 21 14:24 +0000"],
     ["09 Jan 21 13:00 +0000", "20 Jan 21 12:59 +0000", "02 Feb 21 13:00 +0000"]),
    ("broken clamping (begin after the end of the month)",
     "{days_of_month: ['30:31'], years: ['2020:2023'], months: ['february']}",
     [], ["28 Feb 21 13:00 +0000"]),
]

# --- TestIntervener_Mutes: evenings and weekends in Sydney; an instant → the intervals that mute it.
INTERVENER_INTERVALS = """
- name: evenings
  time_intervals:
    - times: [{start_time: '00:00', end_time: '09:00'}, {start_time: '17:00', end_time: '24:00'}]
      location: Australia/Sydney
- name: weekends
  time_intervals:
    - weekdays: ['saturday', 'sunday']
      location: Australia/Sydney
"""
INTERVENER: list[tuple[str, str, str, list[str]]] = [
    # (case name, instant (ISO), its zone, muted by)
    ("Should be muted outside working hours", "2024-01-01T00:00", "Australia/Sydney", ["evenings"]),
    ("Should not be muted during working hours", "2024-01-01T09:00", "Australia/Sydney", []),
    ("Should be muted during weekends", "2024-01-06T10:00", "Australia/Sydney", ["weekends"]),
    ("Should be muted during weekend evenings", "2024-01-06T17:00", "Australia/Sydney", ["evenings", "weekends"]),
    ("Should be muted at 12pm UTC on a weekday", "2024-01-01T10:00", "UTC", ["evenings"]),
    ("Should be muted at 12pm UTC on a weekend", "2024-01-06T10:00", "UTC", ["evenings", "weekends"]),
]
