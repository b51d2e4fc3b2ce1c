"""Language-aware text utilities shared by chunking, retrieval, answering and evaluation.

* :func:`sentence_spans` - sentence boundaries (English and French rules); :func:`iter_sentence_spans` one at a time.
* :func:`normalize_for_match` - the matching normalisation of the evaluation format.
* :func:`detect_language` - English or French, from function words.
* :func:`lexical_tokens` - tokens for BM25 and term overlap (accents folded,
  elisions split, stop words removed, light stemming).
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any, Iterator

# --------------------------------------------------------------------------- normalisation
_APOS = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u00b4": "'", "`": "'",
                       "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"'})
_WS = re.compile(r"\s+")


def fold_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalize_for_match(text: str) -> str:
    """NFKD without combining marks, lower-case, straight quotes, single spaces (eval README)."""
    text = fold_accents(text).lower().translate(_APOS)
    return _WS.sub(" ", text).strip()


# --------------------------------------------------------------------------- sentences
_ABBREV = {
    # English
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "inc", "ltd", "co", "corp", "vs", "etc", "e.g", "i.e", "cf",
    "no", "nos", "vol", "fig", "figs", "p", "pp", "ch", "sec", "approx", "dept", "est", "gen", "gov", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "a.m", "p.m", "al",
    # French
    "m", "mm", "mme", "mmes", "mlle", "mlles", "me", "pr", "ste", "av", "apr", "j.-c", "env", "chap", "éd", "ed",
    "art", "al", "coll", "réf", "ref", "tél", "tel", "n°", "nº", "cie", "hab", "min", "max", "ex",
}
# A sentence end starts where a run of punctuation starts (a match inside a run could only fail as the one at its start
# did): without the look-behind, finditer retried every position of a long run of dots, each scanning the whole run.
_END = re.compile(r"""(?<![.!?…])([.!?…]+(?:\u00a0?\s?[»"”’')\]]+)?)(?=\s)""")
# = \s+[«"“‘'(\[]?\s*[A-Z…] without the two adjacent whitespace runs, which backtracked quadratically over long spaces
_NEXT_START = re.compile(r"""\s+(?:[«"“‘'(\[]\s*)?[A-ZÀ-ÖØ-ÞŒ0-9¿¡]""")
_LIST_START = re.compile(r"\s*([-*•–·]|\d+[.)])\s")
_NON_SPACE = re.compile(r"\S")


def _is_abbrev(text: str, dot: int) -> bool:
    """Is the '.' at ``dot`` the end of an abbreviation or an initial?"""
    j = dot
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] in ".-°º"):
        j -= 1
    word = text[j:dot].lower()
    if not word:
        return False
    if word in _ABBREV:
        return True
    if len(word) == 1 and word.isalpha():  # initials: "J. Smith"
        return True
    if re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):  # "U.S", "e.g"
        return True
    return False


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence (start, end) offsets in ``text[start:end]``, trimmed of surrounding whitespace.

    Paragraph breaks (blank lines) always end a sentence; a single line break
    ends one when the line ends with punctuation or the next line is a list
    item or a table row.
    """
    return list(iter_sentence_spans(text, start, end))


def iter_sentence_spans(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """:func:`sentence_spans` one at a time, in memory that does not grow with the text: no list of its sentences, no
    copy of a line (the chunker reads a 20 MB paragraph of a million sentences through it)."""
    end = len(text) if end is None else end
    for ps, pe in _paragraphs(text, start, end):
        for ls, le in _line_groups(text, ps, pe):
            yield from _split_sentences(text, ls, le)


# A line break followed by a blank line (spaces and tabs only): the paragraphs of a text are what lies between them.
_PARA_BREAK = re.compile(r"\n(?=[ \t]*\n)")


def _paragraphs(text: str, start: int, end: int):
    """(start, end) of each paragraph of ``text[start:end]``: the runs of text between line breaks that a blank line
    follows, i.e. the matches of ``(?:[^\\n]|\\n(?![ \\t]*\\n))+``. That regex kept a backtracking frame per
    character it matched (150 bytes a character: a 20 MB single line took 3 GB); finding the breaks takes none."""
    pos = start
    for m in _PARA_BREAK.finditer(text, start, end):
        if m.start() > pos:
            yield pos, m.start()
        pos = m.end()
    if end > pos:
        yield pos, end


def _line_groups(text: str, s: int, e: int) -> Iterator[tuple[int, int]]:
    """Lines of a paragraph grouped into runs of text (a line wrapped inside a sentence joins the previous one).

    Linear in the paragraph: whether a line starts a new group depends on the group so far only through its last
    character, its length and whether it holds " | ", which are kept up to date as lines join (slicing the whole
    group for each line made a paragraph of 100k wrapped lines quadratic). A group is given as soon as the next one
    starts (only the last one can still grow).
    """
    group: list[int] | None = None  # [start, end] of the last group
    bar = False  # a line of the last group before its last one holds " | "
    last = (0, 0)  # the last line of the last group
    pos = s
    while pos <= e:
        nl = text.find("\n", pos, e)
        ls, le = pos, (e if nl == -1 else nl)
        pos = le + 1
        # the line stripped, as offsets (slicing a 20 MB line to strip it copied it twice)
        first = _NON_SPACE.search(text, ls, le)
        if first is None:
            continue
        bs, be = first.start(), le
        while text[be - 1].isspace():  # stops at bs at the latest
            be -= 1
        if group is not None:
            g0 = group[0]
            j = group[1]
            while j > g0 and text[j - 1].isspace():  # the group rstripped: stops inside its last line (not blank)
                j -= 1
            tail = text[j - 1]
            breaks = (
                tail in ".!?:;…»\"”"
                or _LIST_START.match(text, ls, le)
                or text.find(" | ", bs, be) != -1
                or bar or text.find(" | ", last[0], j) != -1
                or j - g0 < 40 and tail != ","
            )
            if not breaks:
                bar = bar or text.find(" | ", last[0], last[1]) != -1
                group[1] = le
                last = (ls, le)
                continue
            yield group[0], group[1]
        group = [ls, le]
        bar = False
        last = (ls, le)
    if group is not None:
        yield group[0], group[1]


def _split_sentences(text: str, s: int, e: int) -> Iterator[tuple[int, int]]:
    cur = s
    if s > 0 and text[s - 1] in ".!?…":
        # _END's look-behind must not see the punctuation before the group: search a copy of it (not seen in practice:
        # a group starts a line)
        off, matches = s, _END.finditer(text[s:e])
    else:
        off, matches = 0, _END.finditer(text, s, e)  # no copy of the group (a 20 MB line)
    for m in matches:
        dot = off + m.start()
        stop = off + m.end()
        if m.group(1).startswith(".") and not m.group(1).startswith("..") and _is_abbrev(text, dot):
            continue
        if m.group(1).startswith(".") and re.match(r"\d", text[dot - 1:dot] or "x") and re.match(r"\s*\d", text[stop:stop + 3]):
            continue  # "1. 2." numbering inside a line
        if not _NEXT_START.match(text, stop) and stop < e:
            continue
        span = _trimmed(text, cur, stop)
        if span:
            yield span
        cur = stop
    span = _trimmed(text, cur, e)
    if span:
        yield span


def _trimmed(text: str, a: int, b: int) -> tuple[int, int] | None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if b > a else None


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


# --------------------------------------------------------------------------- language
EN_STOP = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below between both
but by can cannot could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is isn't it its itself let's me more most my myself no nor not of off on once
only or other ought our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself yourselves also much many did does done get got one two
""".split())
FR_STOP = frozenset("""
a au aux avec ce ces cet cette dans de des du elle elles en et eux il ils je la le les leur leurs lui ma mais me meme
mes moi mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sur ta te tes toi ton tu un une vos votre
vous c d j l m n s t y ete etee etees etes etant suis es est sommes etes sont serai sera serons seront serais serait
ai as avons avez ont aurai aura avait avaient eu ceci cela celui celle ceux celles ici la-bas lors alors donc ainsi
comme plus moins tres aussi bien tout tous toute toutes autre autres dont quel quelle quels quelles quoi ou est-ce
a-t-il a-t-elle t-il t-elle il-y si sans sous entre vers chez depuis pendant cet ca sont etaient fait faire peut
""".split())
_EN_ONLY = frozenset("the and of to is was were what which who how did does with for this that are from".split())
_FR_ONLY = frozenset("le la les des du est une et que qui quel quelle quels quelles dans pour sur avec au aux ont sont ce "
                     "cette combien quand où ou comment pourquoi".split())


def detect_language(text: str) -> str:
    """'fr' or 'en' (the default) from function words and French diacritics."""
    words = re.findall(r"[a-zà-ÿœ']+", text.lower())
    en = sum(w in _EN_ONLY for w in words)
    fr = sum(w in _FR_ONLY for w in words)
    fr += sum(1 for w in words if w.startswith(("l'", "d'", "qu'", "n'", "s'", "c'", "j'")))
    fr += 0.5 * len(re.findall(r"[éèêàùçâîôœ]", text.lower()))
    return "fr" if fr > en else "en"


# --------------------------------------------------------------------------- lexical tokens
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)
_ELISION = re.compile(r"\b(?:l|d|qu|n|s|c|j|m|t|jusqu|lorsqu|puisqu)['’]", re.IGNORECASE)
STOP = frozenset(fold_accents(w) for w in EN_STOP | FR_STOP)
LEXICAL_VERSION = "3"  # bump when lexical_tokens changes: BM25 indexes are rebuilt


def lexical_version(stemming: bool = True) -> str:
    """The tokeniser's version as a persisted BM25 index records it: the setting ``stem`` (the README's measurement
    of stemming; off: accents folded, stop words removed, no stemming) is part of it, so that an index is rebuilt
    when it changes."""
    return LEXICAL_VERSION + ("" if stemming else "-nostem")


# Words up to this length are cached (by stem and zipf): a cache of 100-200k entries keyed by 300-character "words"
# (a file without spaces) held ~100 MB for the life of the process.
_CACHED_WORD = 40


def stem(word: str) -> str:
    """Light multilingual stemming: strip common English/French inflections, then cap at 6 characters.

    The cap makes cognates meet across the two languages ("minister"/"ministre",
    "cybersecurity"/"cybersecurite") and costs little within one language.
    """
    return _stem_cached(word) if len(word) <= _CACHED_WORD else _stem(word)


def _stem(word: str) -> str:
    w = word
    if len(w) > 4:
        for suf in ("ements", "ement", "ations", "ation", "ments", "ment", "ings", "ing", "ies", "ees", "es", "ee", "s", "e", "x"):
            if w.endswith(suf) and len(w) - len(suf) >= 4:
                w = w[: -len(suf)]
                break
    return w[:6]


_stem_cached = lru_cache(maxsize=200_000)(_stem)


def lexical_tokens(text: str, stemming: bool = True) -> list[str]:
    text = _ELISION.sub(" ", text.replace("’", "'"))
    out = []
    for tok in _TOKEN.findall(fold_accents(text).lower()):
        if tok in STOP or (len(tok) == 1 and not tok.isdigit()):
            continue
        if "-" in tok:
            parts = [p for p in tok.split("-") if p and p not in STOP]
            out.extend(stem(p) if stemming else p for p in parts)
            continue
        out.append(stem(tok) if stemming and not tok[0].isdigit() else tok)
    return out


def zipf(word: str) -> float:
    """How common a word is in English or French (wordfreq's Zipf scale: 0 unknown, ~3 rare, 6+ very common)."""
    return _zipf_cached(word) if len(word) <= _CACHED_WORD else _zipf(word)


@lru_cache(maxsize=100_000)
def _zipf_cached(word: str) -> float:
    return _zipf(word)


def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return max(zipf_frequency(word, "en"), zipf_frequency(word, "fr"))


_TERM_RE = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)


def words_of(text: str) -> list[str]:
    """Folded words of a text, hyphenated words both whole and split ("ssh-keygen", "ssh", "keygen").

    Memoised for sentence-sized texts: the answerers take the words of every candidate sentence of every answer
    (~80 per question), and the same passages come back across questions: 29.0 -> 25.1 ms p50 for an answer
    whose question vectors are cached (A/B in one process, AVX2-only EPYC)."""
    return list(_words_cached(text)) if len(text) <= _CACHED_TEXT else _words_of(text)


_CACHED_TEXT = 2000


@lru_cache(maxsize=50_000)
def _words_cached(text: str) -> tuple[str, ...]:
    return tuple(_words_of(text))


def _words_of(text: str) -> list[str]:
    out: list[str] = []
    for w in _TERM_RE.findall(text.replace("’", "'")):
        w = fold_accents(w).lower()
        w = re.sub(r"^(?:l|d|qu|n|s|c|j|m|t|jusqu|lorsqu)'", "", w)
        w = re.sub(r"'s$", "", w).strip("'-")
        if not w:
            continue
        out.append(w)
        if "-" in w:
            out.extend(p for p in w.split("-") if p)
    return out


def message_text(content: Any, sep: str = "") -> str:
    """The text of a chat message or a streamed chunk (its ``content``), or of a content itself: a string, or a
    list of content blocks (LangChain's and Gradio 6's ``{"type": "text", "text": …}``, or ``"content"``), joined
    by ``sep`` (``""`` for the pieces of a streamed answer, ``" "`` for whole messages)."""
    content = getattr(content, "content", content)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks (some providers, Gradio 6)
        return sep.join(message_text(b, sep) for b in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    return "" if content is None else str(content)


def first_line(text: str) -> str:
    """The first line of a (error) message (``''`` for an empty one)."""
    return text.splitlines()[0] if text else ""


def error_line(err: BaseException, limit: int = 300, *, with_type: bool = False) -> str:
    """An exception as one line of at most ``limit`` characters for a report: its message's first line (its type's
    name when the message is empty) or, ``with_type``, ``"Type: first line"``."""
    first = first_line(str(err).strip())
    if with_type:
        return f"{type(err).__name__}: {first[:limit]}"
    return (first or type(err).__name__)[:limit]
