"""Bind the printed pages to the evidence: which template produced them, and do their words
say what the evidence says.

``presentation.json`` (``auditkit.presentation/1``), embedded in every report beside the
evidence, records the SHA-256 of the template, the stylesheet and every strings catalogue the
render read, the language, and whether all of them are byte for byte the ones shipped with
this auditkit (``shipped``). A custom ``--template`` folder may reword anything, so
``verify --recompute`` does not trust the catalogue the report was made with: it reads the
text of the signed pages and looks, for the recomputed verdict and outcomes, for the words of
the **shipped** catalogue in the recorded language (:func:`check_page_words`).

How the words are found (robust to the layout, which other code owns):

* the verdict: the first verdict word of the shipped catalogue on page 1 after the verdict
  heading (``verdict_heading``, any case: the stylesheet may capitalise it), else after the
  start of page 1;
* a criterion: every place its id is printed as a whole word; the outcome word printed on the
  same line after it (``pdftotext -layout`` keeps a table row on one line) is a claim, and a
  claim that is not the recomputed outcome's word is a mismatch. When no line holds the id
  together with an outcome word, the first outcome word after the id (before the next id) is
  taken. A criterion whose outcome is printed nowhere is a mismatch too.

Words are matched longest first, so a word that contains another (不合格 and 合格) is never
read as the shorter one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from auditkit import __version__
from auditkit.report.catalogue import STRINGS_GLOB, STYLESHEET, TEMPLATE, load_strings
from auditkit.resources import templates_dir

PRESENTATION_FILE = "presentation.json"
PRESENTATION_FORMAT = "auditkit.presentation/1"
#: a criterion's block (text after its id) is cut here when no other id comes first
_BLOCK_LIMIT = 4000
#: files of a custom folder hashed at most (besides template, stylesheet and catalogues)
_MAX_OTHER_FILES = 200


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(path: Path, shipped_dir: Path) -> dict[str, Any]:
    shipped = shipped_dir / path.name
    return {
        "file": path.name,
        "sha256": _sha(path),
        "shipped": shipped.is_file() and _sha(shipped) == _sha(path),
    }


def presentation_record(folder: Path, lang: str) -> dict[str, Any]:
    """What produced the pages of a report rendered from template ``folder`` in ``lang``:
    the same files, in the same order of precedence, as :mod:`auditkit.report.render` reads."""
    shipped_dir = templates_dir()
    custom = Path(folder).resolve() != shipped_dir.resolve()
    css = folder / STYLESHEET if (folder / STYLESHEET).is_file() else shipped_dir / STYLESHEET
    catalogues = [_entry(p, shipped_dir) for p in sorted(shipped_dir.glob(STRINGS_GLOB))]
    if custom:  # the custom folder's catalogues override the shipped ones, key by key
        catalogues += [_entry(p, shipped_dir) for p in sorted(folder.glob(STRINGS_GLOB))]
    template = _entry(folder / TEMPLATE, shipped_dir)
    stylesheet = _entry(css, shipped_dir)
    shipped = (
        template["shipped"] and stylesheet["shipped"] and all(c["shipped"] for c in catalogues)
    )
    record: dict[str, Any] = {
        "format": PRESENTATION_FORMAT,
        "auditkit_version": __version__,
        "lang": lang,
        "shipped": shipped,
        "template_folder": "shipped" if not custom else "custom",
        "template": template,
        "stylesheet": stylesheet,
        "catalogues": catalogues,
    }
    if custom:  # anything else the custom template could {% include %}
        known = {TEMPLATE, STYLESHEET} | {c["file"] for c in catalogues}
        record["other_files"] = _other_files(folder, known)
    return record


def _other_files(folder: Path, known: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if len(out) >= _MAX_OTHER_FILES:
            break
        rel = path.relative_to(folder).as_posix()
        if rel in known or path.is_symlink() or not path.is_file():
            continue
        out[rel] = _sha(path)
    return out


# --------------------------------------------------------------------------- page words


def shipped_words(lang: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(verdict heading, verdict code → word, outcome code → word) of the shipped catalogue
    in ``lang`` (English filling what a language lacks, as the render does)."""
    t = load_strings(lang)
    verdicts = {str(k): str(v) for k, v in (t.get("verdict") or {}).items()}
    outcomes = {str(k): str(v) for k, v in (t.get("outcome") or {}).items()}
    return str(t.get("verdict_heading", "")), verdicts, outcomes


def _word_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """Any of ``words`` as a whole word (no letter or digit glued to it), longest first."""
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True) if w)
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


def _word(outcomes: Mapping[str, str], code: str) -> str:
    return outcomes.get(code, code)  # the render prints the code when the catalogue lacks it


def check_verdict_word(page1: str, verdict: str, lang: str) -> list[str]:
    """The verdict word on page 1 against the recomputed ``verdict``."""
    heading, words, _ = shipped_words(lang)
    expected = _word(words, verdict)
    start = page1.lower().find(heading.lower()) if heading else -1
    text = page1[start + len(heading) :] if start >= 0 else page1
    found = _word_pattern([*words.values(), expected]).search(text)
    if found is None:
        return [f"page 1 does not print the verdict {expected!r} in the shipped words"]
    if found.group(0) != expected:
        return [
            f"page 1 prints the verdict {found.group(0)!r}, but the evidence gives "
            f"{verdict} ({expected!r})"
        ]
    return []


def _id_hits(text: str, ids: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, id) of every printed criterion id, in text order: whole ids, and ids
    wrapped at one of their hyphens in a narrow table cell (``thresholds-fixed-`` at the end
    of a cell, ``before-testing`` on one of the next lines), which count where they start."""
    hits = [(m.start(), m.end(), m.group(0)) for m in _word_pattern(ids).finditer(text)]
    for cid in ids:
        for cut in (i + 1 for i, char in enumerate(cid[:-1]) if char == "-"):
            head, rest = re.escape(cid[:cut]), re.escape(cid[cut:])
            for m in re.finditer(rf"(?<![\w-]){head}(?=[ \t]|$)", text, re.MULTILINE):
                following = "\n".join(text[m.end() : m.end() + 2000].split("\n")[1:4])
                if re.search(rf"(?<![\w-]){rest}(?![\w-])", following):
                    hits.append((m.start(), m.end(), cid))
    return sorted(set(hits))


def check_outcome_words(text: str, criteria: list[Mapping[str, Any]], lang: str) -> list[str]:
    """Each criterion's outcome word in the signed pages against the recomputed outcome."""
    _, _, words = shipped_words(lang)
    codes = {str(c.get("outcome")) for c in criteria}
    outcome_re = _word_pattern([*words.values(), *(_word(words, c) for c in codes)])
    hits = _id_hits(text, [str(c.get("id")) for c in criteria if c.get("id")])
    problems = []
    for crit in criteria:
        cid, code = str(crit.get("id")), str(crit.get("outcome"))
        expected = _word(words, code)
        same_line, after = [], []
        for i, (_, hit_end, hit_id) in enumerate(hits):
            if hit_id != cid:
                continue
            end = hits[i + 1][0] if i + 1 < len(hits) else len(text)
            block = text[hit_end : min(end, hit_end + _BLOCK_LIMIT)]
            found = outcome_re.search(block)
            if found is None:
                continue
            if "\n" not in block[: found.start()]:
                same_line.append(found.group(0))
            else:
                after.append(found.group(0))
        claims = same_line or after[:1]
        wrong = sorted({w for w in claims if w != expected})
        if wrong:
            problems.append(
                f"criterion {cid}: the signed pages print {', '.join(map(repr, wrong))}, "
                f"but the evidence gives {code} ({expected!r})"
            )
        elif not claims:
            problems.append(f"criterion {cid}: its outcome {expected!r} is not printed")
    return problems


def check_page_words(
    pages: list[str], recomputed: Mapping[str, Any], lang: str, report_id: str | None = None
) -> list[str]:
    """Problems where the signed pages' verdict or outcome words differ from the recomputed
    verdicts (``pages``: the text of every page, page 1 first, ``pdftotext -layout``), or page 1
    lacks the ``report_id`` the evidence gives (whitespace ignored: it may wrap)."""
    if not pages:
        return ["the text of the signed pages cannot be read (neither pdftotext nor pypdf could)"]
    problems = []
    if report_id and report_id not in re.sub(r"\s+", "", pages[0]):
        problems.append(f"page 1 does not print the report ID {report_id} of the evidence")
    problems += check_verdict_word(pages[0], str(recomputed.get("verdict")), lang)
    problems += check_outcome_words("\n".join(pages), list(recomputed.get("criteria") or []), lang)
    return problems
