"""The report oracle: read a rendered report back with pdftotext and check it against the
evidence it embeds (issue 13, Acceptance).

Nothing here imports the report's own formatter or view code: the expected figures come from
``verdicts.json`` (and ``metrics.json`` for the interval of an unsliced criterion), the expected
words from the catalogues ``reports/templates/strings*.yaml``, and a printed number is compared
numerically at the precision it was printed with, so a thousands separator, "%" against " %"
or a number and its unit on two lines do not matter.

Two readings of the PDF are used, each where it is reliable:

* ``pdftotext -bbox`` (every word with its box) for the criteria table: a row is the band
  between its criterion id and its reason line, so cells of neighbouring rows never mix (the
  default reading order interleaves the cells of neighbouring rows);
* ``pdftotext -layout`` (one text line per printed line) for the slice tables, page 1 and the
  scan for Python or JSON dumps: those rows are single lines.

Every check returns a list of problems, one line each, naming the criterion, the slice, the
quantity, the expected and the printed text, so one failing report lists all its mismatches.
"""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "reports" / "templates"
DASH = "–"  # the interval's en dash

# A printed number: digits with optional thousands separators (comma, space, thin or
# narrow no-break space) and decimals. Signs: hyphen-minus or the minus sign.
_NUMBER = re.compile(
    r"(?:<\s?)?[-−]?\d{1,3}(?:[,\u2009\u202f\u00a0]\d{3})+(?:\.\d+)?|(?:<\s?)?[-−]?\d+(?:\.\d+)?"
)
_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>'
)
_PAGE = re.compile(r"<page [^>]*>(.*?)</page>", re.S)


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Catalogue:
    """The words a report in ``lang`` must print, read from the shipped catalogue files."""

    lang: str
    strings: Mapping[str, Any]

    @classmethod
    def load(cls, lang: str, folder: Path = TEMPLATES) -> Catalogue:
        name = "strings.yaml" if lang == "en" else f"strings.{lang}.yaml"
        document = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
        return cls(lang=lang, strings=document[lang])

    def word(self, table: str, key: str) -> str | None:
        """``table.key`` in this language, None when the catalogue lacks it (a finding in
        itself: the page then prints a fallback, English or the raw key)."""
        value = (self.strings.get(table) or {}).get(key)
        return str(value) if value is not None else None

    def text(self, key: str) -> str:
        return str(self.strings[key])

    def outcome_words(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.strings.get("outcome") or {}).items()}


# --------------------------------------------------------------------------- pdftotext


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def yc(self) -> float:
        return (self.y0 + self.y1) / 2


def pdf_words(pdf: Path) -> list[list[Word]]:
    """Every word of every page with its box (points, origin top left)."""
    out = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    pages = []
    for page in _PAGE.findall(out):
        words = [
            Word(html.unescape(m[4]), float(m[0]), float(m[1]), float(m[2]), float(m[3]))
            for m in _WORD.findall(page)
        ]
        pages.append(words)
    return pages


def pdf_layout_pages(pdf: Path) -> list[str]:
    """The text of every page, one printed line per text line (``pdftotext -layout``)."""
    out = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    pages = out.split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def lines_of(words: Iterable[Word], tolerance: float = 2.5) -> list[list[Word]]:
    """Words grouped into printed lines (same vertical centre), each sorted left to right."""
    lines: list[list[Word]] = []
    for w in sorted(words, key=lambda w: (w.yc, w.x0)):
        if lines and abs(lines[-1][0].yc - w.yc) <= tolerance:
            lines[-1].append(w)
        else:
            lines.append([w])
    return [sorted(line, key=lambda w: w.x0) for line in lines]


# --------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Printed:
    """A number as printed: its value and how many decimals it showed."""

    text: str
    value: float
    decimals: int


def parse_number(text: str) -> Printed | None:
    m = _NUMBER.search(text)
    if m is None:
        return None
    raw = m.group(0)
    digits = re.sub(r"[,\u2009\u202f\u00a0]", "", raw.lstrip("< ")).replace("−", "-")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return Printed(raw, float(digits), decimals)


def agrees(printed: Printed, expected: float) -> bool:
    """True when ``expected`` (a fraction or a plain quantity) prints as ``printed`` at the
    printed precision, as a plain number or as a percentage. Half a unit of the last
    printed digit either way (plus float noise) is allowed, whatever the rounding rule."""
    if printed.text.startswith("<"):  # "< 0.0001": a bound printed for a tiny p-value
        return 0 <= expected < printed.value
    half = 0.5 * 10.0 ** (-printed.decimals) + 1e-9
    return any(abs(scale * expected - printed.value) <= half for scale in (1.0, 100.0))


def shown(value: float | None) -> str:
    """How a test message shows an expected number: as a fraction and in percent."""
    if value is None:
        return "none"
    return f"{value:.6g} ({100 * value:.4g} %)"


# --------------------------------------------------------------------------- evidence


def slice_name(slc: Mapping[str, Any] | None) -> str:
    if not slc:
        return "overall"
    return ", ".join(f"{k}={v}" for k, v in slc.items())


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def deciding_slice(crit: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The slice row the criterion's figures come from.

    When the criterion names it (``slice``, branch ``rules``), that row; else the first row
    whose outcome, value, bound, k and n are the criterion's (the worst slice)."""
    rows = crit.get("slices") or []
    if not rows:
        return None
    if crit.get("slice") is not None:
        for row in rows:
            if row.get("slice") == crit["slice"]:
                return row
    for row in rows:
        if all(_same(row.get(k), crit.get(k)) for k in ("outcome", "value", "bound", "k", "n")):
            return row
    for row in rows:  # a criterion whose bound is not its worst slice's (e.g. Holm)
        if all(_same(row.get(k), crit.get(k)) for k in ("outcome", "value", "k", "n")):
            return row
    return None


def expected_interval(
    crit: Mapping[str, Any], metrics: Mapping[str, Any]
) -> tuple[float | None, float | None] | None:
    """(low, high) the criterion row must print, a side None where the evidence has none
    (an order-statistic bound that needs more samples): the criterion's own ``low``/``high``
    when verdicts.json carries them (branch ``rules``), else its deciding slice's, else
    (unsliced) the metrics.json entry of its metric with the same value and counts."""

    def pair(low: Any, high: Any) -> tuple[float | None, float | None] | None:
        if low is None and high is None:
            return None
        return (None if low is None else float(low)), (None if high is None else float(high))

    if "low" in crit or "high" in crit:
        return pair(crit.get("low"), crit.get("high"))
    row = deciding_slice(crit)
    if row is not None:
        return pair(row.get("low"), row.get("high"))
    if crit.get("value") is None:
        return None
    for entry in metrics.get("metrics", []):
        if (
            entry.get("name") == crit.get("metric")
            and _same(entry.get("value"), crit.get("value"))
            and (crit.get("n") is None or entry.get("n") == crit.get("n"))
        ):
            interval = entry.get("interval") or {}
            return pair(interval.get("low"), interval.get("high"))
    return None


# --------------------------------------------------------------------------- criteria table


@dataclass
class Row:
    """The words of one criterion row (above its reason line) on one page."""

    crit_id: str
    page: int
    words: list[Word]

    @property
    def text(self) -> str:
        return " ".join(" ".join(w.text for w in line) for line in lines_of(self.words))


def _id_at(lines: Sequence[Sequence[Word]], i: int, ident: str) -> int:
    """How many lines the identifier spans when it starts line ``i`` (0: it does not); an
    identifier broken over lines ("escape-critical-" / "class") still counts."""
    text = ""
    for j in range(i, min(i + 4, len(lines))):
        text += lines[j][0].text
        if text == ident:
            return j - i + 1
        if not ident.startswith(text):
            return 0
    return 0


def criterion_rows(
    pages: Sequence[Sequence[Word]], ids: Sequence[str], cat: Catalogue
) -> dict[str, Row]:
    """Each criterion's row in the criteria table: the first line that starts with its id
    and is followed, within a few lines, by a reason line ("Reason: ..."), with an outcome
    word of the catalogue (or a raw outcome name) in between. The slice sections start with
    "<id>:", page 1 and the appendices have no reason line under an id."""
    reason_label = cat.text("col_reason")
    outcome_words = set(cat.outcome_words().values()) | set(OUTCOMES)
    found: dict[str, Row] = {}
    for number, words in enumerate(pages, start=1):
        lines = lines_of(words)
        for i in range(len(lines)):
            for ident in ids:
                span = _id_at(lines, i, ident) if ident not in found else 0
                if not span:
                    continue
                end = next(
                    (
                        j
                        for j in range(i + 1, min(i + _MAX_ROW_LINES, len(lines)))
                        if lines[j][0].text.startswith(reason_label)
                    ),
                    None,
                )
                if end is None:
                    continue
                id_words = [ln[0] for ln in lines[i : i + span]]  # the id is not a figure
                body = [w for ln in lines[i:end] for w in ln if w not in id_words]
                if any(w.text in outcome_words for w in body):
                    found[ident] = Row(ident, number, body)
    return found


_MAX_ROW_LINES = 25
OUTCOMES = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR", "SKIPPED", "ATTESTED")


def _numbers(words: Iterable[Word]) -> list[tuple[Word, Printed]]:
    out = []
    for w in words:
        if "/" in w.text or re.search(r"[A-Za-z(]", w.text):
            continue  # k/n, and clause numbers such as 15(1) or "MEASURE 2.11", are no figures
        p = parse_number(w.text)
        if p is not None:
            out.append((w, p))
    return out


def _bound_label(row: Row, cat: Catalogue) -> Word | None:
    label = cat.text("col_bound")
    return next((w for w in row.words if w.text.startswith(label)), None)


def printed_bound(row: Row, cat: Catalogue) -> tuple[Word, Printed] | None:
    """The number after the bound label: right after it on its line, else under it in the
    same right-aligned cell."""
    label = _bound_label(row, cat)
    if label is None:
        return None
    rest = parse_number(label.text[len(cat.text("col_bound")) :].lstrip(":： "))
    if rest is not None:
        return label, rest
    numbers = _numbers(row.words)
    beside = [
        (w, p) for w, p in numbers if abs(w.yc - label.yc) < 2.5 and -1 <= w.x0 - label.x1 < 8
    ]
    if beside:
        return min(beside, key=lambda c: c[0].x0)
    below = [
        (w, p) for w, p in numbers if w.y0 > label.y1 - 1 and label.x0 - 30 <= w.x1 <= label.x1 + 3
    ]
    return min(below, key=lambda c: c[0].y0) if below else None


def printed_value(row: Row, cat: Catalogue) -> tuple[Word, Printed] | None:
    """The number of the value cell: above the bound label, in the same right-aligned cell."""
    label = _bound_label(row, cat)
    bound = printed_bound(row, cat)
    if label is None:
        return None
    right = bound[0].x1 if bound else label.x1
    candidates = [
        (w, p)
        for w, p in _numbers(row.words)
        if w.y1 <= label.y0 + 1 and w.x1 >= label.x0 - 25 and w.x0 <= right + 5
    ]
    candidates.sort(key=lambda c: -c[0].y0)
    return candidates[0] if candidates else None


def _check_value_without_bound(
    crit: Mapping[str, Any], row: Row, cat: Catalogue, where: str
) -> list[str]:
    """A row with no bound: its value is a number of the row at the printed precision, or,
    when verdicts.json has none, the catalogue's "not applicable" word stands in the row."""
    expected = crit.get("value")
    if expected is None:
        na = cat.text("not_available")
        if na not in row.text:
            return [f"value ({where}): expected {na!r} (no value), not printed"]
        return []
    # the row's text, not its words: "< 0.0001" is two words
    printed = [parse_number(m.group(0)) for m in _NUMBER.finditer(row.text)]
    if not any(p is not None and agrees(p, float(expected)) for p in printed):
        return [f"value ({where}): expected {shown(expected)}, not printed in {row.text[:120]!r}"]
    return []


def printed_interval(row: Row) -> tuple[Printed | None, Printed | None] | None:
    """(low, high) printed around the row's en dash, a side None where no number stands
    there (the page prints "n/a"); None when the row has no interval."""
    for w in row.words:
        if DASH not in w.text or re.search(r"[A-Za-z(]", w.text):
            continue
        before, _, after = w.text.partition(DASH)
        low = parse_number(before)
        if low is None:  # "2.14 %" then a separate "–"
            left = [
                (x, p)
                for x, p in _numbers(row.words)
                if abs(x.yc - w.yc) < 2.5 and x.x1 <= w.x0 + 1 and w.x0 - x.x1 < 40
            ]
            low = max(left, key=lambda c: c[0].x1)[1] if left else None
        if low is None:  # the cell wrapped before the dash: the low end is on the line above
            above = [
                (x, p)
                for x, p in _numbers(row.words)
                if x.y1 <= w.y0 + 1 and w.y0 - x.y1 < 12 and x.x1 >= w.x0 - 60 and x.x0 <= w.x1 + 60
            ]
            low = max(above, key=lambda c: (c[0].y0, c[0].x1))[1] if above else None
        high = parse_number(after)
        if high is None:  # the next word on the same line, else on a line below in the cell
            beside = sorted(
                (x for x in row.words if abs(x.yc - w.yc) < 2.5 and x.x0 >= w.x1 - 1),
                key=lambda x: x.x0,
            )
            nxt = beside[0] if beside and beside[0].x0 - w.x1 < 25 else None
            high = parse_number(nxt.text) if nxt is not None and "/" not in nxt.text else None
            if high is None:
                below = [
                    (x, p)
                    for x, p in _numbers(row.words)
                    if x.y0 > w.y1 - 1 and x.x1 <= w.x1 + 3 and x.x0 >= w.x0 - 60
                ]
                below.sort(key=lambda c: (c[0].y0, c[0].x0))
                high = below[0][1] if below else None
        return low, high
    return None


_SEP = r"[ ,\u2009\u202f\u00a0]"
_COUNT = rf"\d{{1,3}}(?:{_SEP}\d{{3}})+|\d+"
_KN_TEXT = re.compile(rf"(?<![\d.])({_COUNT})\s*/\s*({_COUNT})(?![\d.])")


def printed_kn(row: Row) -> tuple[int, int] | None:
    """The row's "k/n" (thousands separators allowed, also a space that split the words)."""
    m = _KN_TEXT.search(row.text)
    if m is None:
        return None
    return int(re.sub(r"\D", "", m.group(1))), int(re.sub(r"\D", "", m.group(2)))


def check_criteria_table(
    pdf_pages: Sequence[Sequence[Word]],
    verdicts: Mapping[str, Any],
    metrics: Mapping[str, Any],
    cat: Catalogue,
) -> list[str]:
    """Every criterion row against verdicts.json, its deciding slice and metrics.json."""
    criteria = verdicts["criteria"]
    rows = criterion_rows(pdf_pages, [c["id"] for c in criteria], cat)
    problems: list[str] = []
    for crit in criteria:
        row = rows.get(crit["id"])
        if row is None:
            problems.append(f"criterion {crit['id']}: no row in the criteria table")
            continue
        problems += [
            f"criterion {crit['id']} (page {row.page}): {p}"
            for p in check_row(crit, row, metrics, cat)
        ]
    return problems


def check_row(
    crit: Mapping[str, Any], row: Row, metrics: Mapping[str, Any], cat: Catalogue
) -> list[str]:
    """One criterion row against its criterion in verdicts.json: outcome word, value, bound,
    interval (of the deciding slice) and k/n. The value cell is read as the template prints
    it: the value, and under it the bound after the catalogue's ``col_bound`` label."""
    problems: list[str] = []
    decider = deciding_slice(crit)
    where = f"slice {slice_name(decider.get('slice'))}" if decider else "overall"

    # outcome: exactly the catalogue word of verdicts.json's outcome, no other outcome word
    word = cat.word("outcome", crit["outcome"])
    words = set(cat.outcome_words().values()) | set(OUTCOMES)
    seen = [w.text for w in row.words if w.text in words]
    if word is None:
        problems.append(
            f"outcome: the {cat.lang} catalogue has no word for {crit['outcome']} "
            f"(printed {seen or 'nothing'})"
        )
    elif seen != [word]:
        problems.append(f"outcome: expected {word!r} ({crit['outcome']}), printed {seen}")

    # value and bound, from the value cell; a criterion without a bound prints no bound line
    if _bound_label(row, cat) is None and crit.get("bound") is None:
        problems += _check_value_without_bound(crit, row, cat, where)
    elif _bound_label(row, cat) is None:
        problems.append(
            f"value and bound ({where}): no word starting with the bound label "
            f"{cat.text('col_bound')!r} in the row (a label broken over lines?): {row.text[:160]!r}"
        )
    for name, reader in (("value", printed_value), ("bound", printed_bound)):
        if _bound_label(row, cat) is None:
            break
        expected = crit.get(name)
        got = reader(row, cat)
        if expected is None:
            if got is not None:
                problems.append(
                    f"{name} ({where}): expected not applicable, printed {got[1].text!r}"
                )
        elif got is None:
            problems.append(f"{name} ({where}): expected {shown(expected)}, printed no number")
        elif not agrees(got[1], float(expected)):
            problems.append(
                f"{name} ({where}): expected {shown(expected)}, printed {got[1].text!r}"
            )

    # interval: the deciding slice's low and high, not another slice's
    expected_lh = expected_interval(crit, metrics)
    got_lh = printed_interval(row)
    if expected_lh is None:
        if got_lh is not None:
            problems.append(
                f"interval ({where}): expected none in the evidence, printed "
                f"{_side(got_lh[0])} {DASH} {_side(got_lh[1])}"
            )
    elif got_lh is None:
        problems.append(
            f"interval ({where}): expected {shown(expected_lh[0])} {DASH} "
            f"{shown(expected_lh[1])}, printed none"
        )
    else:
        bad = [
            f"{side} expected {shown(exp)}, printed {_side(got)}"
            for side, exp, got in (
                ("low", expected_lh[0], got_lh[0]),
                ("high", expected_lh[1], got_lh[1]),
            )
            if (exp is None) != (got is None)
            or (exp is not None and got is not None and not agrees(got, exp))
        ]
        if bad:
            owner = _interval_owner(crit, got_lh)
            problems.append(
                f"interval ({where}): "
                + "; ".join(bad)
                + (f" (that is {owner}'s interval)" if owner else "")
            )

    # k/n
    k, n = crit.get("k"), crit.get("n")
    got_kn = printed_kn(row)
    if k is not None and n is not None:
        if got_kn != (k, n):
            m = _KN_TEXT.search(row.text)
            printed = repr(m.group(0)) if m else "none"
            problems.append(f"k/n ({where}): expected {k}/{n}, printed {printed}")
    else:
        if got_kn is not None:
            problems.append(f"k/n ({where}): expected none (k {k}, n {n}), printed {got_kn}")
        if n is not None:  # a count alone: "n = 700"
            m = re.search(r"\bn\s*=\s*(\d[\d,\u2009\u202f\u00a0]*)", row.text)
            got_n = int(re.sub(r"\D", "", m.group(1))) if m else None
            if got_n != n:
                problems.append(f"n ({where}): expected n = {n}, printed {got_n}")
    return problems


def _side(p: Printed | None) -> str:
    return "nothing (n/a)" if p is None else repr(p.text)


def _interval_owner(
    crit: Mapping[str, Any], got: tuple[Printed | None, Printed | None]
) -> str | None:
    """Which other slice's interval the printed one is, if any (for the message)."""
    if got[0] is None or got[1] is None:
        return None
    for row in crit.get("slices") or []:
        if row.get("low") is None or row.get("high") is None:
            continue
        if agrees(got[0], row["low"]) and agrees(got[1], row["high"]):
            return f"slice {slice_name(row.get('slice'))}"
    return None


# --------------------------------------------------------------------------- slice tables


def _slice_tokens(slc: Mapping[str, Any], cat: Catalogue) -> list[set[str]]:
    """What the label of a slice row must show, in order: each value of the slice (a data
    value, printed as recorded), or for a spread row ({"by": [columns]}) each column, by
    its name or the catalogue's word for it. Key names are not required (translated)."""
    tokens: list[set[str]] = []
    for value in slc.values():
        for v in value if isinstance(value, list) else [value]:
            tokens.append({str(v), cat.word("column", str(v)) or str(v)})
    return tokens


_MAX_LABEL = 48


def _leading_cell(line: str) -> str:
    cell = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
    # a narrow label column leaves one space between the label and the first figure
    figure = re.search(r"\s(?=[-−]?\d[\d.,]*\s*(?:%|pp|ms)?(?:\s|$))", cell)
    return cell[: figure.start()] if figure else cell


def _label_matches(label: str, tokens: list[set[str]]) -> bool:
    at = 0
    for options in tokens:
        hits = [
            m.end()
            for o in options
            if (m := re.compile(rf"(?<![\w.-]){re.escape(o)}(?![\w.-])").search(label, at))
        ]
        if not hits:
            return False
        at = min(hits)
    return True


def check_slice_tables(
    layout_pages: Sequence[str], verdicts: Mapping[str, Any], cat: Catalogue
) -> list[str]:
    """Every row of every slice table (value, bound, k/n or n, outcome) against its slice in
    verdicts.json. A table is found under its heading ``<id>: <title>``; a row is the first
    line after it whose label cell (with the next line's, for a label that wrapped) shows
    the slice's values in order; a one-value slice's label must be exactly that value."""
    lines = [ln for page in layout_pages for ln in page.splitlines()]
    problems: list[str] = []
    for crit in verdicts["criteria"]:
        slices = crit.get("slices") or []
        if not slices:
            continue
        head = next(
            (i for i, ln in enumerate(lines) if ln.strip().startswith(f"{crit['id']}:")), None
        )
        if head is None:
            problems.append(f"criterion {crit['id']}: no slice table (heading '{crit['id']}:')")
            continue
        for slc in slices:
            where = f"criterion {crit['id']}, slice {slice_name(slc.get('slice'))}"
            row = _slice_row(lines, head, slc.get("slice") or {}, cat)
            if row is None:
                problems.append(f"{where}: no row for it in its slice table")
                continue
            problems += [f"{where}: {p}" for p in _check_slice_row(slc, row, cat)]
    return problems


def _slice_row(
    lines: Sequence[str], head: int, slc: Mapping[str, Any], cat: Catalogue
) -> str | None:
    tokens = _slice_tokens(slc, cat)
    for i in range(head + 1, len(lines)):
        if not lines[i].strip():
            continue
        label = _leading_cell(lines[i])
        figures = lines[i].strip()[len(label) :]
        if len(label) > _MAX_LABEL or not re.search(r"\d", figures):
            continue  # a heading, an intro sentence, a wrapped reason: not a row
        if len(tokens) == 1 and not any(isinstance(v, list) for v in slc.values()):
            if label in tokens[0]:
                return lines[i]
            continue
        wrapped = label + " " + (_leading_cell(lines[i + 1]) if i + 1 < len(lines) else "")
        if _label_matches(label, tokens) or (
            _label_matches(wrapped, tokens)
            and not _label_matches(_leading_cell(lines[i + 1]), tokens[:1])
        ):
            return lines[i]
    return None


def _check_slice_row(slc: Mapping[str, Any], line: str, cat: Catalogue) -> list[str]:
    problems = []
    cells = line.strip()[len(_leading_cell(line)) :]
    outcome_words = cat.outcome_words()
    word = cat.word("outcome", slc["outcome"])
    found = [
        w
        for w in set(outcome_words.values()) | set(OUTCOMES)
        if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", cells)
    ]
    cut = min((cells.find(w) for w in found), default=len(cells))
    figures, rest = cells[:cut], cells[cut:]
    if word is None:
        problems.append(
            f"outcome: the {cat.lang} catalogue has no word for {slc['outcome']} "
            f"(printed {rest.split()[:1]})"
        )
    elif word not in rest.split()[:1]:
        problems.append(
            f"outcome: expected {word!r} ({slc['outcome']}), printed {rest.split()[:1]}"
        )
    kn = _KN_TEXT.search(figures)
    only_n = re.search(r"\bn\s*=\s*(\d[\d,\u2009\u202f\u00a0]*)", figures)
    stop = kn.start() if kn else only_n.start() if only_n else len(figures)
    numbers = [parse_number(m.group(0)) for m in _NUMBER.finditer(figures[:stop])]
    k, n = slc.get("k"), slc.get("n")
    if k is not None and n is not None:
        got = (
            (int(re.sub(r"\D", "", kn.group(1))), int(re.sub(r"\D", "", kn.group(2))))
            if kn
            else None
        )
        if got != (k, n):
            problems.append(f"k/n: expected {k}/{n}, printed {kn.group(0) if kn else None!r}")
    elif n is not None:
        got_n = int(re.sub(r"\D", "", only_n.group(1))) if only_n else None
        if got_n != n:
            problems.append(f"n: expected n = {n}, printed {only_n.group(0) if only_n else None!r}")
    for i, name in enumerate(("value", "bound")):
        expected = slc.get(name)
        printed = numbers[i] if i < len(numbers) else None
        if expected is None:
            if printed is not None and i == 1:
                problems.append(f"bound: expected not applicable, printed {printed.text!r}")
            continue
        if printed is None:
            problems.append(
                f"{name}: expected {shown(expected)}, printed no number in {line.strip()!r}"
            )
        elif not agrees(printed, float(expected)):
            problems.append(f"{name}: expected {shown(expected)}, printed {printed.text!r}")
    return problems


# --------------------------------------------------------------------------- page 1


def check_page1_verdict(
    layout_pages: Sequence[str], verdicts: Mapping[str, Any], cat: Catalogue
) -> list[str]:
    """The first line under the verdict heading is the catalogue's word for the verdict, and
    no other verdict word stands alone on page 1."""
    expected = cat.word("verdict", verdicts["verdict"])
    lines = [ln.strip() for ln in layout_pages[0].splitlines() if ln.strip()]
    heading = cat.text("verdict_heading")
    at = next((i for i, ln in enumerate(lines) if ln.casefold() == heading.casefold()), None)
    if at is None or at + 1 >= len(lines):
        return [f"page 1: no verdict heading {heading!r}"]
    problems = []
    if lines[at + 1] != expected:
        problems.append(
            f"page 1: verdict expected {expected!r} ({verdicts['verdict']}), "
            f"printed {lines[at + 1]!r}"
        )
    others = {w for k, w in (cat.strings.get("verdict") or {}).items() if k != verdicts["verdict"]}
    stray = [ln for ln in lines if ln in others]
    if stray:
        problems.append(f"page 1: other verdict words stand alone on the page: {stray}")
    return problems


# --------------------------------------------------------------------------- dumps

_DUMPS = {
    "Python None": re.compile(r"(?<![\w-])None(?![\w-])"),
    "Python True": re.compile(r"(?<![\w-])True(?![\w-])"),
    "Python False": re.compile(r"(?<![\w-])False(?![\w-])"),
    "dict dump": re.compile(r"\{\s*['\"][^'\"]*['\"]\s*:"),
    "list dump": re.compile(r"\[\s*['\"{]"),
    "JSON fragment": re.compile(r"['\"][\w.-]+['\"]\s*:\s*[\[{\"'\d]"),
}


def _catalogue_texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [" ".join(value.split())]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _catalogue_texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _catalogue_texts(v)]
    return []


def check_no_dumps(layout_pages: Sequence[str], rubric_text: str, cat: Catalogue) -> list[str]:
    """No Python repr or JSON/dict/list dump on any page. Exempt: lines of the appendix that
    reproduces the rubric file (the rubric's own bytes) and the catalogue's own sentences
    ("None recorded by the tool.")."""
    rubric_lines = {ln.strip() for ln in rubric_text.splitlines() if ln.strip()}
    sentences = _catalogue_texts(cat.strings)
    problems = []
    for number, page in enumerate(layout_pages, start=1):
        for line in page.splitlines():
            text = line.strip()
            if not text or text in rubric_lines:
                continue
            if len(text) > 8 and any(text in r for r in rubric_lines):
                continue  # a wrapped line of the rubric appendix
            words_only = " ".join(text.split())
            kinds = [
                f"{name} {m.group(0)!r}"
                for name, pattern in _DUMPS.items()
                if (m := pattern.search(text))
                and not (name.startswith("Python") and any(words_only in t for t in sentences))
            ]
            if kinds:
                problems.append(f"page {number}: {', '.join(kinds)} in {words_only[:110]!r}")
    return problems


def verdicts_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "verdicts.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- zero-escape point


def _exact_upper(k: int, n: int, level: float) -> float:
    """The one-sided upper Clopper–Pearson bound of k escapes in n (SciPy's beta quantile)."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(level, k + 1, n - k))


def _parts_needed(target: float, level: float) -> int:
    """The least n whose 0-of-n exact upper bound is at or below ``target`` (by search)."""
    n = 1
    while _exact_upper(0, n, level) > target:
        n += 1
    return n


def check_zero_escape(
    layout_pages: Sequence[str], metrics: Mapping[str, Any], cat: Catalogue
) -> list[str]:
    """The certified zero-escape table: each target's all-parts row (the first row of its
    target) prints the threshold's escapes k/n and the exact upper bound recomputed from them;
    a target no threshold proves prints the defective parts tested and the least number that
    could prove it, both recomputed here."""
    entries = [
        e
        for e in metrics.get("metrics") or []
        if e.get("name") == "escape_certified_threshold" and not e.get("slice")
    ]
    if not entries:
        return []
    text = "\n".join(layout_pages)
    heading = cat.text("zero_escape_heading")
    if heading not in text:
        return [f"the zero-escape table ({heading!r}) is missing"]
    lines = [line for line in text.split(heading, 1)[1].splitlines() if line.strip()]
    problems = []
    for e in entries:
        target, level = float(e["target"]), float(e["bound_level"])
        label = f"{100 * target:.2f} %"
        row = next((line for line in lines if label in line), None)
        if row is None:
            problems.append(f"target {label}: no row")
            continue
        rest = row.split(label, 1)[1]
        numbers = _NUMBER.findall(rest)
        if e.get("value") is None:
            expected = [str(e["n"]), str(_parts_needed(target, level))]
            if [n for n in numbers if n in expected] != expected:
                problems.append(f"target {label}: expected {expected} in {row.strip()!r}")
            continue
        k, n = e["escape"]["k"], e["escape"]["n"]
        if f"{k}/{n}" not in row:
            problems.append(f"target {label}: escapes {k}/{n} not in {row.strip()!r}")
        bound = _exact_upper(k, n, level)
        percents = [float(x) for x in re.findall(r"(\d+\.\d\d)\s?%", rest)]
        if not any(abs(p - 100 * bound) <= 0.005 + 1e-9 for p in percents):
            problems.append(f"target {label}: upper bound {shown(bound)} not in {row.strip()!r}")
    return problems
