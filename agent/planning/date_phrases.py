"""The date range a photo request names ("last summer", "in 2019", "avant 2020", "去年"), read by code.

A 1.5B planner gets date arithmetic wrong ("last summer" in November, the last day of a month,
"before 2020"), so the planner's date filters come from here whenever a request names one date.
`dates_in` returns that range, or None when the request names no date or several different ones
("compare 2019 and 2021": the plan's own dates are then kept).

What is read, in English, Portuguese, French, Spanish, German and Chinese: years ("in 2019"),
months ("March 2024", "in August", "last March"), days ("May 12, 2024", "12 May 2024",
"2024-05-12", "13/05/2024" but not the ambiguous "12/05/2024"), yesterday, today, this or last
week, month and year, seasons ("last summer", "summer 2021"), "N days/weeks/months/years ago",
Christmas and a few other named days, year ranges ("2018-2020"), and open ranges ("since 2022",
"after 2022", "before 2020", "until 2019") around any of them. A number needs a date word or a
preposition next to it, so "2 dogs", "top 5", "4K" or "1080p" are not dates.

dateparser was considered: its `search_dates` reads single dates in many languages but neither
ranges nor seasons, and takes bare numbers for days ("3 photos"), so it would add a dependency and
false positives for little gain.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["DateSpan", "date_spans", "dates_in"]


@dataclass(frozen=True)
class DateSpan:
    """Days from `start` to `end`, both included; None is an open end."""

    start: date | None
    end: date | None

    def search_args(self) -> dict[str, str]:
        """The span as search_images' `date_from` / `date_to` arguments."""
        args = {}
        if self.start is not None:
            args["date_from"] = self.start.isoformat()
        if self.end is not None:
            args["date_to"] = self.end.isoformat()
        return args


# ----------------------------------------------------------------------------- calendar pieces


def _year(y: int) -> DateSpan:
    return DateSpan(date(y, 1, 1), date(y, 12, 31))


def _month(y: int, m: int) -> DateSpan:
    return DateSpan(date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1]))


def _day(d: date) -> DateSpan:
    return DateSpan(d, d)


def _week(d: date) -> DateSpan:
    monday = d - timedelta(days=d.weekday())  # weeks start on Monday (ISO 8601)
    return DateSpan(monday, monday + timedelta(days=6))


def _so_far(span: DateSpan, today: date) -> DateSpan:
    # "this month" ends today: no photo is taken in the future.
    return DateSpan(span.start, min(span.end, today) if span.end else today)


def _months_back(today: date, n: int) -> tuple[int, int]:
    index = today.year * 12 + today.month - 1 - n
    return index // 12, index % 12 + 1


# Northern-hemisphere meteorological seasons: whole months, so a season is a plain range. Winter
# YEAR is the one starting in December of YEAR and ending in February of YEAR + 1.
_SEASON_START = {"spring": 3, "summer": 6, "autumn": 9, "winter": 12}


def _season(name: str, y: int) -> DateSpan:
    first = _SEASON_START[name]
    end_y, end_m = (y + 1, 2) if first == 12 else (y, first + 2)
    return DateSpan(date(y, first, 1), _month(end_y, end_m).end)


def _latest_season(name: str, today: date, over: bool) -> DateSpan:
    """The latest season of that name already over (`over`), or the one under way or next."""
    for y in range(today.year, today.year - 3, -1):
        span = _season(name, y)
        if (span.end < today) if over else (span.start <= today):
            return span
    raise AssertionError("a season recurs every year")


def _latest_month(m: int, today: date, over: bool) -> DateSpan:
    y = today.year if (m < today.month if over else m <= today.month) else today.year - 1
    return _month(y, m)


def _latest_day(m: int, d: int, today: date) -> DateSpan | None:
    """The latest such day that is not in the future ("at Christmas", "on May 12")."""
    for y in (today.year, today.year - 1, today.year - 2):
        try:
            day = date(y, m, d)
        except ValueError:  # February 29th outside a leap year
            continue
        if day <= today:
            return _day(day)
    return None


def _easter(y: int) -> date:
    # Anonymous Gregorian computus (Meeus/Jones/Butcher).
    a, b, c = y % 19, y // 100, y % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    return date(y, month, (h + l_ - 7 * m + 114) % 31 + 1)


# ----------------------------------------------------------------------------- words
#
# Requests are matched lower-cased with accents dropped ("été" -> "ete", "März" -> "marz"), one
# character for one, so positions still match the request.

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january janeiro janvier enero januar janner jan",
        "february fevereiro fevrier febrero februar feb",
        "march marco mars marzo marz maerz",
        "april abril avril",
        "may maio mai mayo",
        "june junho juin junio juni jun",
        "july julho juillet julio juli jul",
        "august agosto aout aug",
        "september setembro septembre septiembre setiembre sept sep",
        "october outubro octobre octubre oktober oct okt",
        "november novembro novembre noviembre nov",
        "december dezembro decembre diciembre dezember dec dez",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number
# Three-letter abbreviations only next to a number: "mar" is the sea in Spanish and Portuguese.
_FULL_MONTHS = {name: n for name, n in _MONTHS.items() if len(name) > 3 or name in ("may", "mai")}


def _alternation(words: Iterable[str]) -> str:
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


MONTH = rf"(?P<month>{_alternation(_MONTHS)})\.?"
FULL_MONTH = rf"(?P<month>{_alternation(_FULL_MONTHS)})"

_SEASONS = {
    **dict.fromkeys(("spring", "primavera", "printemps", "fruhling", "fruehling", "fruhjahr"), "spring"),
    **dict.fromkeys(("summer", "verao", "ete", "verano", "sommer"), "summer"),
    **dict.fromkeys(("autumn", "fall", "outono", "automne", "otono", "herbst"), "autumn"),
    **dict.fromkeys(("winter", "inverno", "hiver", "invierno"), "winter"),
}
_ZH_SEASONS = {"春": "spring", "夏": "summer", "秋": "autumn", "冬": "winter"}
SEASON = rf"(?P<season>{_alternation(_SEASONS)})"

B = r"(?<![a-z0-9])"  # word boundaries for the Latin scripts; Chinese has none
E = r"(?![a-z0-9])"
YEAR = r"(?P<year>(?:19|20)\d\d)"
DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th|er|º|o)?"
# "up to 2000 pixels" is a size: a year is not followed by a unit ("my 2019 photos" is a date).
COUNTED = r"\s+(?:pixels?|px|dpi|mb|gb|km|people|persons?|items?|files?)\b"
# Words that make a following year a date ("in 2019"); "of" is left out ("photos of 2000 cats").
YEAR_PREP = (
    r"(?:in|from|during|up to|since|before|after|until|till|em|de|do|da|desde|en|du|depuis|avant"
    r"|apres|del|im|von|aus|seit|vor|nach|bis|year|ano|annee|jahr|my|our|meu|mes|mis|meine)"
)
LAST = r"(?:last|past|previous|ultimo|ultima|dernier|derniere|letzte[nmrs]?|vergangene[nmrs]?|vorige[nmrs]?)"
LAST_AFTER = r"(?:passado|passada|dernier|derniere|pasado|pasada)"
THIS = r"(?:this|este|esta|neste|nesta|cet|cette|ce|diese[nmrs]?)"

_NUMBERS = {
    **dict.fromkeys(("a", "an", "one", "um", "uma", "un", "une", "una", "uno", "ein", "einem", "einer"), 1),
    **dict.fromkeys(("two", "dois", "duas", "deux", "dos", "zwei", "两", "二"), 2),
    **dict.fromkeys(("three", "tres", "trois", "drei", "三"), 3),
    **dict.fromkeys(("four", "quatro", "quatre", "cuatro", "vier", "四"), 4),
    **dict.fromkeys(("five", "cinco", "cinq", "funf", "五"), 5),
    **dict.fromkeys(("six", "seis", "sechs", "六"), 6),
    **dict.fromkeys(("seven", "sete", "sept", "siete", "sieben", "七"), 7),
    **dict.fromkeys(("eight", "oito", "huit", "ocho", "acht", "八"), 8),
    **dict.fromkeys(("nine", "nove", "neuf", "nueve", "neun", "九"), 9),
    **dict.fromkeys(("ten", "dez", "dix", "diez", "zehn", "十"), 10),
}
COUNT = rf"(?P<n>\d{{1,3}}|{_alternation(k for k in _NUMBERS if k.isascii())})"
ZH_COUNT = rf"(?P<n>\d{{1,3}}|{_alternation(k for k in _NUMBERS if not k.isascii())})"
_UNITS = {
    **dict.fromkeys(("day", "dia", "jour", "tag", "天", "日"), "day"),
    **dict.fromkeys(("week", "semana", "semaine", "woche", "周", "个星期", "星期", "个礼拜", "礼拜"), "week"),
    **dict.fromkeys(("month", "mes", "mois", "monat", "个月", "月"), "month"),
    **dict.fromkeys(("year", "ano", "an", "annee", "jahr", "年"), "year"),
}
UNIT = rf"(?P<unit>{_alternation(k for k in _UNITS if k.isascii())})(?:s|es|en|e|n)?"
ZH_UNIT = rf"(?P<unit>{_alternation(k for k in _UNITS if not k.isascii())})"

# Named days: (month, first day, last day). Christmas covers the 24th to the 26th, since people
# mean the holiday, eve included.
_NAMED_DAYS = {
    "christmas": (12, 24, 26),
    "christmas eve": (12, 24, 24),
    "new year's eve": (12, 31, 31),
    "new year's day": (1, 1, 1),
    "halloween": (10, 31, 31),
    "valentine's day": (2, 14, 14),
}
_NAMED_WORDS = {
    **dict.fromkeys(("christmas", "xmas", "noel", "navidad", "weihnachten", "圣诞节"), "christmas"),
    **dict.fromkeys(("christmas eve", "nochebuena", "heiligabend", "平安夜"), "christmas eve"),
    **dict.fromkeys(("new year's eve", "new years eve", "silvester", "nochevieja"), "new year's eve"),
    **dict.fromkeys(("new year's day", "new years day"), "new year's day"),
    **dict.fromkeys(("halloween",), "halloween"),
    **dict.fromkeys(("valentine's day", "valentines day"), "valentine's day"),
    **dict.fromkeys(("easter", "pascoa", "paques", "pascua", "ostern", "复活节"), "easter"),
}
# "Natal" is also a Brazilian city ("em Natal"): Christmas only with a year or as "no/do Natal".
NAMED = rf"(?P<named>{_alternation(_NAMED_WORDS)}|(?<=no |do )natal|natal(?= (?:de )?(?:19|20)\d\d))"
DAY_PREP = r"on|from|since|before|after|until|of|taken|el|le|am|vom|em|no|desde|depuis|seit|at"
NAMED_PREP = (
    r"at|on|during|over|around|from|this|last|no|do|en|a|zu|an|in|durante|pendant|before|after|since|until"
    r"|antes do|antes de|depois do|depois de|avant|apres|depuis|desde|seit|vor|nach"
)


# ----------------------------------------------------------------------------- rules

# The rules run in the order written, the most specific first: a phrase one rule reads is hidden
# from the rules after it ("December 2015" is not also "2015"), so each reads whole phrases.
# A reader returns the range its phrase names, several for a list ("2019 and 2021"), or None.
Reader = Callable[[re.Match[str], date], "DateSpan | tuple[DateSpan, ...] | None"]
_RULES: list[tuple[re.Pattern[str], Reader]] = []


def _rule(pattern: str) -> Callable[[Reader], Reader]:
    def register(read: Reader) -> Reader:
        # Decorators apply bottom up: put this pattern above the ones already stacked on `read`.
        at = len(_RULES)
        while at and _RULES[at - 1][1] is read:
            at -= 1
        _RULES.insert(at, (re.compile(pattern), read))
        return read

    return register


def _g(match: re.Match[str], name: str) -> str | None:
    """A group that only some of a reader's patterns have."""
    return match.groupdict().get(name)


def _n(match: re.Match[str]) -> int:
    text = match["n"]
    return int(text) if text.isdigit() else _NUMBERS[text]


def _safe(make: Callable[[], DateSpan | None]) -> DateSpan | None:
    try:
        return make()
    except ValueError:  # "February 30"
        return None


@_rule(
    rf"{B}(?:(?:from|de|von|desde|du)\s+)?(?P<a>(?:19|20)\d\d)\s*"
    rf"(?:-|–|to|till|until|through|a|ate|al|hasta|bis|au)\s*(?P<b>(?:19|20)\d\d){E}"
)
@_rule(
    rf"{B}(?:between|entre|zwischen)\s+(?P<a>(?:19|20)\d\d)\s+(?:and|e|et|y|und)\s+(?P<b>(?:19|20)\d\d){E}"
)
def _year_range(m: re.Match[str], today: date) -> DateSpan | None:
    a, b = int(m["a"]), int(m["b"])
    return DateSpan(date(a, 1, 1), date(b, 12, 31)) if a < b else None


@_rule(
    rf"{B}(?P<a>(?:19|20)\d\d)\s*(?:,|and|or|vs\.?|versus|with|e|ou|et|y|o|und|oder|和|与)\s*(?P<b>(?:19|20)\d\d){E}"
)
def _year_list(m: re.Match[str], today: date) -> tuple[DateSpan, ...]:
    return _year(int(m["a"])), _year(int(m["b"]))


@_rule(rf"{B}{YEAR}[-/.](?P<m>[01]?\d)[-/.](?P<d>[0-3]?\d){E}")
def _iso_day(m: re.Match[str], today: date) -> DateSpan | None:
    return _safe(lambda: _day(date(int(m["year"]), int(m["m"]), int(m["d"]))))


@_rule(rf"{B}(?P<p>[0-3]?\d)[/.-](?P<q>[0-3]?\d)[/.-]{YEAR}{E}")
def _numeric_day(m: re.Match[str], today: date) -> DateSpan | None:
    p, q, y = int(m["p"]), int(m["q"]), int(m["year"])
    if p > 12 >= q:  # 13/05/2024: day first
        return _safe(lambda: _day(date(y, q, p)))
    if q > 12 >= p:  # 05/13/2024: month first
        return _safe(lambda: _day(date(y, p, q)))
    if p == q:
        return _safe(lambda: _day(date(y, p, p)))
    return None  # 12/05/2024 is May 12th or December 5th depending on the country


@_rule(rf"{B}{MONTH}\s+{DAY},?\s+{YEAR}{E}")
@_rule(rf"{B}{DAY}\.?\s+(?:of\s+|de\s+)?{MONTH},?\s+(?:de\s+)?{YEAR}{E}")
def _day_month_year(m: re.Match[str], today: date) -> DateSpan | None:
    return _safe(lambda: _day(date(int(m["year"]), _MONTHS[m["month"]], int(m["day"]))))


@_rule(rf"{YEAR}\s*年\s*(?P<m>[01]?\d)\s*月\s*(?P<d>[0-3]?\d)\s*[日号]")
def _zh_day(m: re.Match[str], today: date) -> DateSpan | None:
    return _safe(lambda: _day(date(int(m["year"]), int(m["m"]), int(m["d"]))))


@_rule(rf"{B}{COUNT}\s+{UNIT}\s+ago{E}")
@_rule(rf"{B}(?:ha|il y a|hace|vor)\s+{COUNT}\s+{UNIT}{E}")
@_rule(rf"(?<!\d){ZH_COUNT}\s*{ZH_UNIT}(?:之?前)")
def _ago(m: re.Match[str], today: date) -> DateSpan | None:
    n, unit = _n(m), _UNITS[m["unit"]]
    if unit == "day":
        return _day(today - timedelta(days=n))
    if unit == "week":
        return _week(today - timedelta(weeks=n))
    if unit == "month":
        return _month(*_months_back(today, n))
    return _year(today.year - n)


@_rule(rf"{B}{NAMED}\s+(?:of\s+|de\s+)?{YEAR}{E}")
@_rule(rf"(?:{YEAR}\s*年\s*)?(?P<named>圣诞节|平安夜|复活节)")
# Without a year, a preposition: "the Christmas tree" is no date, "at Christmas" is.
@_rule(rf"{B}(?P<pre>{NAMED_PREP})\s+(?:(?:the|la|el|o|le)\s+)?{NAMED}{E}")
def _named_day(m: re.Match[str], today: date) -> DateSpan | None:
    name = _NAMED_WORDS.get(m["named"], "christmas")  # the lookaround forms of "natal"
    year = int(m["year"]) if _g(m, "year") else None
    if name == "easter":
        y = year or (today.year if _easter(today.year) <= today else today.year - 1)
        sunday = _easter(y)
        return DateSpan(sunday - timedelta(days=1), sunday + timedelta(days=1))
    month, first, last = _NAMED_DAYS[name]
    if year is None:
        latest = _latest_day(month, first, today)
        year = latest.start.year if latest and latest.start else today.year - 1
    return DateSpan(date(year, month, first), date(year, month, last))


@_rule(rf"{B}{SEASON}\s+(?:of\s+|de\s+|del\s+)?{YEAR}{E}")
@_rule(rf"{YEAR}\s*年\s*(?P<zh>[春夏秋冬])[天季]")
def _season_of_year(m: re.Match[str], today: date) -> DateSpan | None:
    return _season(_ZH_SEASONS[m["zh"]] if _g(m, "zh") else _SEASONS[m["season"]], int(m["year"]))


@_rule(r"(?P<rel>去|今|前)年\s*(?P<zh>[春夏秋冬])[天季]")
@_rule(rf"{B}(?:the\s+)?{SEASON}\s+(?:of\s+)?(?P<rel>last|this)\s+year{E}")
def _season_of_relative_year(m: re.Match[str], today: date) -> DateSpan | None:
    back = {"去": 1, "今": 0, "前": 2, "last": 1, "this": 0}[m["rel"]]
    return _season(_ZH_SEASONS[m["zh"]] if _g(m, "zh") else _SEASONS[m["season"]], today.year - back)


@_rule(rf"{B}{LAST}\s+{SEASON}{E}")
@_rule(rf"{B}{SEASON}\s+{LAST_AFTER}{E}")
def _last_season(m: re.Match[str], today: date) -> DateSpan | None:
    return _latest_season(_SEASONS[m["season"]], today, over=True)


@_rule(rf"{B}{THIS}\s+{SEASON}{E}")
def _this_season(m: re.Match[str], today: date) -> DateSpan | None:
    return _so_far(_latest_season(_SEASONS[m["season"]], today, over=False), today)


@_rule(rf"{B}{MONTH}\s+(?:of\s+|de\s+|del\s+)?{YEAR}{E}")
@_rule(rf"{B}{YEAR}-(?P<m>[01]\d){E}")
@_rule(rf"{YEAR}\s*年\s*(?P<m>[01]?\d)\s*月(?!\s*[0-3]?\d\s*[日号])")
def _month_of_year(m: re.Match[str], today: date) -> DateSpan | None:
    number = _MONTHS[m["month"]] if _g(m, "month") else int(m["m"])
    return _month(int(m["year"]), number) if 1 <= number <= 12 else None


@_rule(rf"{B}{LAST}\s+{FULL_MONTH}{E}")
@_rule(rf"{B}{FULL_MONTH}\s+{LAST_AFTER}{E}")
def _last_named_month(m: re.Match[str], today: date) -> DateSpan | None:
    return _latest_month(_MONTHS[m["month"]], today, over=True)


# Words for today and the spans around it, and how to compute each.
_RELATIVE: dict[str, Callable[[date], DateSpan]] = {}
for _words, _make in (
    (
        "the day before yesterday|anteontem|avant-hier|anteayer|vorgestern|前天",
        lambda t: _day(t - timedelta(2)),
    ),
    # French "hier" only with a French word: alone it is German "here".
    (
        "yesterday|ontem|d'hier|prises hier|prise hier|pris hier|faites hier|hier soir|ayer|gestern|昨天|昨日",
        lambda t: _day(t - timedelta(1)),
    ),
    ("today|hoje|aujourd'hui|hoy|heute|今天|今日", _day),
    (
        "last week|past week|previous week|semana passada|a ultima semana|la semaine derniere|semaine derniere"
        "|la semana pasada|semana pasada|letzte woche|letzten woche|vorige woche|vergangene woche|上周|上个星期"
        "|上星期|上个礼拜",
        lambda t: _week(t - timedelta(weeks=1)),
    ),
    (
        "this week|esta semana|nesta semana|cette semaine|diese woche|dieser woche|diesen woche|这周|本周|这个星期",
        lambda t: _so_far(_week(t), t),
    ),
    (
        "last month|past month|previous month|mes passado|o ultimo mes|le mois dernier|mois dernier"
        "|el mes pasado|mes pasado|letzten monat|letzter monat|vorigen monat|vergangenen monat|上个月|上月",
        lambda t: _month(*_months_back(t, 1)),
    ),
    (
        "this month|este mes|neste mes|ce mois-ci|ce mois|diesen monat|diesem monat|这个月|本月",
        lambda t: _so_far(_month(t.year, t.month), t),
    ),
    ("the year before last|ano retrasado|前年", lambda t: _year(t.year - 2)),
    (
        "last year|past year|previous year|ano passado|l'annee derniere|annee derniere|l'an dernier"
        "|an dernier|el ano pasado|ano pasado|letztes jahr|letzten jahr|vorjahr|vergangenes jahr|去年",
        lambda t: _year(t.year - 1),
    ),
    (
        "this year|este ano|neste ano|cette annee|dieses jahr|diesem jahr|今年",
        lambda t: _so_far(_year(t.year), t),
    ),
):
    for _word in _words.split("|"):
        _RELATIVE[_word] = _make


@_rule(rf"(?<![a-z0-9'])(?P<rel>{_alternation(_RELATIVE)})(?![a-z0-9'])")
def _relative(m: re.Match[str], today: date) -> DateSpan | None:
    return _RELATIVE[m["rel"]](today)


@_rule(rf"{B}{THIS}\s+{FULL_MONTH}{E}")
@_rule(
    rf"{B}(?:in|during|from|em|no\s+mes\s+de|en|au\s+mois\s+de|durante|im|de|del)\s+(?:the\s+month\s+of\s+)?"
    rf"(?!mars{E}){FULL_MONTH}(?!\s*[0-3]?\d)(?![a-z])"
)
# French "mars" alone only after French words: "photos from Mars" is the planet.
@_rule(rf"{B}(?:en|au\s+mois\s+de|depuis|avant|apres)\s+(?P<month>mars){E}(?!\s*[0-3]?\d)")
def _named_month(m: re.Match[str], today: date) -> DateSpan | None:
    return _so_far(_latest_month(_MONTHS[m["month"]], today, over=False), today)


# "May 3" needs a preposition: "what may 3 people do" is no date.
@_rule(rf"{B}(?P<pre>{DAY_PREP})\s+(?:the\s+)?{MONTH}\s+{DAY}{E}(?!\s*[,/.-]?\s*\d)")
@_rule(rf"{B}(?:on\s+(?:the\s+)?)?{DAY}\.?\s+(?:of\s+|de\s+)?{FULL_MONTH}{E}")
@_rule(r"(?<![\d年])(?P<m>[01]?\d)\s*月\s*(?P<d>[0-3]?\d)\s*[日号]")
def _day_of_month(m: re.Match[str], today: date) -> DateSpan | None:
    month = _MONTHS[m["month"]] if _g(m, "month") else int(m["m"])
    day = int(m["day"] if _g(m, "day") else m["d"])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return _latest_day(month, day, today)


@_rule(
    rf"{B}(?P<pre>{YEAR_PREP})\s+(?:(?:the|year|ano|o|l'annee|l'an|el|dem|jahr)\s+)?{YEAR}{E}(?!{COUNTED})"
)
@_rule(rf"{YEAR}\s*年(?![\d月])")
def _year_named(m: re.Match[str], today: date) -> DateSpan | None:
    return _year(int(m["year"]))


# ----------------------------------------------------------------------------- open ranges

_BEFORE = r"before|prior to|earlier than|antes de|antes do|antes da|avant|vor"
_AFTER = r"after|later than|depois de|depois do|depois da|apres|despues de|despues del|nach"
_SINCE = r"since|starting|starting from|starting in|desde|depuis|seit|ab"
_UNTIL = r"until|till|up to|up until|ate|jusqu'|hasta|bis"
_FILLER = r"(?:\s+(?:in|the|de|em|en|o|a|le|la|el|l'|der|dem|den|des|del|do|da|du|au|of|von))*"
_MODIFIER_BEFORE = re.compile(
    rf"(?<![a-z])(?:(?P<before>{_BEFORE})|(?P<after>{_AFTER})|(?P<since>{_SINCE})|(?P<until>{_UNTIL})){_FILLER}\s*$".replace(
        " ", r"\s+"
    )
)
_MODIFIER_AFTER = re.compile(r"^\s*(?:(?P<before>之前|以前)|(?P<after>之后|以后)|(?P<since>以来|起))")


def _widen(span: DateSpan, before: str, after: str) -> DateSpan:
    """`span` opened by the words around it: "before 2020" ends on 2019-12-31."""
    found = _MODIFIER_BEFORE.search(before) or _MODIFIER_AFTER.search(after)
    if found is None:
        return span
    if found["before"]:
        return DateSpan(None, span.start - timedelta(days=1) if span.start else span.end)
    if found["after"]:
        return DateSpan(span.end + timedelta(days=1) if span.end else span.start, None)
    if found["since"]:
        return DateSpan(span.start, None)
    return DateSpan(None, span.end)


def _fold(text: str) -> str:
    # One character for one, so match positions are positions in the request.
    lowered = text.lower().replace("’", "'")
    return "".join(c if c.isascii() else unicodedata.normalize("NFD", c)[0] for c in lowered)


def date_spans(request: str, today: date) -> list[DateSpan]:
    """Every date phrase of `request`, in order, as the range it names from `today`."""
    text = _fold(request)
    found: list[tuple[int, int, DateSpan]] = []
    for pattern, read in _RULES:
        for match in pattern.finditer(text):
            spans = read(match, today)
            if spans is None:
                continue
            start, end = match.span()
            pre = match.groupdict().get("pre")
            before = f"{text[:start]} {pre}" if pre else text[:start]
            for span in (spans,) if isinstance(spans, DateSpan) else spans:
                found.append((start, end, _widen(span, before, text[end:])))
            text = text[:start] + "\0" * (end - start) + text[end:]
    return [span for _, _, span in sorted(found, key=lambda hit: hit[0])]


def dates_in(request: str, today: date) -> DateSpan | None:
    """The one date range `request` names, or None when it names none or different ones."""
    spans = set(date_spans(request, today))
    return spans.pop() if len(spans) == 1 else None
