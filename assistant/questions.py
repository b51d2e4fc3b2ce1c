"""What a question asks: its answer type (amount, count, person, date, place, ordinal, technical), whether a
sentence holds a span of that type, its key terms with rarity weights, and its focus words ("which *edition*").

Shared by the rule-based answerer (``assistant.answer``) and the fitted reader's features (``assistant.reader``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .text import STOP, detect_language, fold_accents, stem, words_of, zipf

# --------------------------------------------------------------------------- answer types
AMOUNT, COUNT, PERSON, DATE, PLACE, ORDINAL, TECH = "amount", "count", "person", "date", "place", "ordinal", "technical"
MEASURE = "measure"  # a size, weight, duration or age with its unit ("soixante-cinq mètres", "3 h 20")

_TECH_NOUNS = (r"(?:commands?|files?|directory|directories|folders?|paths?|packages?|tools?|programs?|utilit(?:y|ies)|"
               r"options?|flags?|settings?|variables?|modules?|daemons?|services?|rfcs?|protocols?|ports?|address(?:es)?|"
               r"values?|code page|encoding|library|libraries|functions?|keys?|shortcuts?|extensions?|formats?|"
               r"commandes?|fichiers?|repertoires?|dossiers?|chemins?|paquets?|outils?|programmes?|utilitaires?|"
               r"parametres?|modules?|demons?|protocoles?|adresses?|valeurs?|bibliotheques?|fonctions?|cles?|"
               r"touches?|raccourcis?|formats?|logiciels?|software)")

_MAGNITUDE = r"(?:milliards?|millions?|billions?|trillions?|mille|thousand|k|m|md|mds|mrd)"
_MONEY = (r"(?:k€|m€|md€|dirhams?|dhs?|mad|euros?|€|\$|us\$|dollars?|usd|eur|francs?|fcfa|livres? sterling|pounds?|£|"
          r"yens?|yuans?|roupies?|rupees?|riyals?|dinars?|centimes?|cents?)")
_NUMWORD = (r"(?:un|une|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|treize|quatorze|quinze|seize|vingts?|"
            r"trente|quarante|cinquante|soixante|septante|huitante|octante|nonante|cents?|mille|"
            r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
            r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|dozens?|"
            r"dizaines?|centaines?|milliers?)")
_NUMWORDS = _NUMWORD + r"(?:-(?:et-)?" + _NUMWORD + r")*"  # compound number words: "soixante-cinq", "vingt-et-un"
_NUM = r"(?:\d+(?:[.,\u202f\u00a0 ]\d+)*|" + _NUMWORD + r")"
_MONTHS = (r"(?:janvier|fevrier|mars|avril|mai|juin|juillet|aout|septembre|octobre|novembre|decembre|january|february|march|"
           r"april|may|june|july|august|september|october|november|december|jan|feb|apr|jun|jul|aug|sep|sept|oct|nov|dec)")
_UNIT = (r"(?:m|metres?|meters?|km|kilometres?|kilometers?|cm|mm|centimetres?|millimetres?|km2|km²|m2|m²|ha|hectares?|"
         r"kg|kilos?|kilogrammes?|kilograms?|g|grammes?|grams?|t|tonnes?|tons?|l|litres?|liters?|ml|"
         r"h|heures?|hours?|min|minutes?|s|secondes?|seconds?|jours?|days?|semaines?|weeks?|mois|months?|ans?|annees?|"
         r"years?|siecles?|centuries|century|degres?|degrees?|°c?|pieds?|feet|foot|ft|miles?|pouces?|inches|inch|"
         r"habitants?|inhabitants?|km/h|mph|go|gb|mo|mb|ko|kb|to|tb|ghz|mhz|w|kw|mw|watts?)")
_DETECT = {
    AMOUNT: re.compile(r"(?:" + _NUM + r"\s*(?:" + _MAGNITUDE + r"\s*)?(?:de\s+|d')?" + _MONEY + r"(?!\w)|[$€£]\s*\d|\d\s*%|"
                       r"\bpour\s*cent\b|\bpercent\b)", re.I),
    # years from 1000 ("en 1897", "1515"), centuries ("XIXe siècle", "19th century"), years BC ("52 av. J.-C.")
    DATE: re.compile(r"\b(?:\d{1,2}(?:er)?\s+" + _MONTHS + r"\b|" + _MONTHS + r"\s+\d{1,2}\b|" + _MONTHS + r"\s+(?:1\d|20)\d{2}\b|"
                     r"(?<![\d.,])(?:1\d|20)\d{2}\b(?![.,]\d)(?!\s*(?:" + _MONEY + r"|" + _UNIT + r")(?![\w/]))|\b[ivxl]+(?:e|eme|er)\s+siecle|\d{1,2}(?:e|eme|st|nd|rd|th)\s+(?:siecle|century)|"
                     r"\d+\s+(?:av\.?|avant)\s*j\.?-?c|\d+\s*(?:bc|bce|ad)\b|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|(?:lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|"
                     r"monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b)", re.I),
    # digits may touch their unit ("65m", "3h"), number words may not ("dizaines" is no "dizaine" + "s")
    MEASURE: re.compile(r"(?<![\w.,])(?:\d+(?:[.,\u202f\u00a0 ]\d+)*\s*|" + _NUMWORDS + r"\s+)"
                        r"(?:" + _MAGNITUDE + r"\s+)?(?:de\s+|d')?" + _UNIT + r"(?![\w/])", re.I),
    ORDINAL: re.compile(r"\b(?:\d+\s?(?:e|eme|ème|er|ere|ère|st|nd|rd|th)\b|premier|premiere|deuxieme|second|seconde|troisieme|"
                        r"quatrieme|cinquieme|sixieme|dixieme|first|second|third|fourth|fifth|sixth|tenth)\b", re.I),
}
_COUNT_RE = re.compile(r"(?<![\w.,-])(" + _NUM + r"(?:-(?:et-)?" + _NUMWORD + r")*)\s+(?!" + _MONEY + r"\b)(?!%)([^\W\d_][\w'-]*)", re.I)
_ROLES = (r"(?:ministre|minister|directeur|directrice|director|secretaire|secretary|ambassadeur|ambassadrice|ambassador|"
          r"president|presidente|pdg|ceo|roi|reine|king|queen|chef|head|fondateur|fondatrice|founder|professeur|professor|"
          r"maire|mayor|gouverneur|governor|depute|senateur|senator|chancelier|chancellor|premier ministre|prime minister|"
          r"auteur|author|responsable|manager|directeur general|general manager|conseiller|adviser|advisor|porte-parole|"
          r"spokesperson|m\.|mme|mr|mrs|ms|dr)")
_ROLE_RE = re.compile(r"\b" + _ROLES + r"\b", re.I)
_NAME_RE = re.compile(r"\b[A-ZÀ-ÖØ-Þ][\w'’-]+(?:\s+(?:(?:bin|ben|ibn|al|el|de|du|van|von|der|la|le)\s+)?[A-ZÀ-ÖØ-Þ][\w'’-]+)+")
_PLACE_RE = re.compile(r"\b(?:à|a|au|aux|en|in|at|from|de|near|pres de|dans)\s+(?:l['’]\s*|la\s+|le\s+|the\s+)?[A-ZÀ-ÖØ-Þ][\w'’-]+")


# "when should I …", "quand faut-il …": a condition or a moment in a procedure, not a date
_WHEN_MODAL = re.compile(r"\bwhen (?:should|must|can|could|do|does|may|shall|would|will|is it|are you) |"
                         r"\bquand (?:dois|doit|doivent|faut|peut|peux|puis|pouvons|devons|devez|pouvez)")
# "how much RAM / disk space …": a quantity of a resource (a technical value), not money
_HOW_MUCH_RESOURCE = re.compile(r"\bhow much (?:ram|memory|disk|space|storage|swap|bandwidth|data|cpu|free space)\b|"
                                r"\bcombien (?:de |d')(?:ram|memoire|espace|disque|stockage|swap|bande passante)\b")
# an interrogative "qui"/"who" opens the question or a clause after ":" ("TAJ : qui peut le consulter ?"), maybe after a
# preposition; elsewhere it is relative ("les personnes qui travaillent …", "people who work …")
_WHO = re.compile(r"(?:^|[:;,?!(]) *(?:(?:a|avec|de|par|pour|chez|aupres de|to|by|with|from|for) )?"
                  r"(?:qui|who|whom|whose)\b"
                  # an indirect question ("savez-vous qui …", "do you know who …") or "c'est qui ?"
                  r"|\b(?:sai[st]|savez|savoir|dis|dites|dire|know|tell me|wonder)(?:-(?:vous|tu|moi|nous))? (?:qui|who)\b"
                  r"|\b(?:c'est|est) qui\b")


def question_type(question: str) -> str | None:
    q = " " + fold_accents(question).lower().replace("’", "'") + " "
    if _HOW_MUCH_RESOURCE.search(q):
        return TECH
    if re.search(r"\bhow many\b", q):
        if re.search(r"\bhow many (?:dollars|euros|dirhams|pounds)\b", q):
            return AMOUNT
        return COUNT
    if re.search(r"\bcombien (?:mesure|mesurent|pese|pesent|dure|durent|de temps|d'annees|de kilometres|de metres|"
                 r"de kilos|d'habitants|de jours|d'heures|de minutes)\b|\bhow (?:tall|long|high|heavy|big|far|deep|wide|old|large)\b|"
                 r"\bquelle (?:est la )?(?:hauteur|taille|longueur|largeur|profondeur|superficie|surface|duree|distance|altitude|"
                 r"population|masse|poids|vitesse)\b|\bquel (?:est le )?(?:poids|age|diametre)\b|"
                 r"\bwhat (?:is|was) the (?:height|length|width|depth|area|size|duration|distance|altitude|population|weight|speed|"
                 r"diameter|age)\b", q):
        return MEASURE
    if re.search(r"\bcombien\b", q):
        if re.search(r"\bcombien (?:de |d')(?:argent|euros|dollars|dirhams|fonds)\b|\bcombien (?:coute|vaut|valent|coutent)\b", q):
            return AMOUNT
        if re.search(r"\bcombien (?:de |d')", q):
            return COUNT
        return AMOUNT
    if re.search(r"\bhow much\b|\b(?:quel|quelle)s? (?:est le |etait le |a ete le )?(?:montant|somme|budget|cout|prix|enveloppe)\b|"
                 r"\bwhat (?:is|was) the (?:amount|budget|cost|price|sum)\b|\bwhat (?:amount|budget|sum)\b", q):
        return AMOUNT
    # "When X, which command …": the which-clause is the question, the when-clause a condition
    if re.search(r"\b(?:which|what|quel|quelle|quels|quelles)s? (?:[\w-]+ ){0,2}" + _TECH_NOUNS + r"\b", q):
        return TECH
    if re.search(r"\b(?:what|which) (?:year|date|day|month)\b|\b(?:quelle|en quelle) (?:annee|date)\b|"
                 r"\bquel jour\b|\ba quelle date\b", q) or (re.search(r"\bwhen\b|\bquand\b", q) and not _WHEN_MODAL.search(q)):
        return DATE
    # "où" is a place, "ou" is "or": the accent decides (an unaccented "ou" only opens a question: "ou se trouve …")
    if re.search(r"\bwhere\b|\b(?:which|what) (?:city|country|place|town|venue)\b|"
                 r"\b(?:dans |en )?(?:quelle|quel) (?:ville|pays|lieu|endroit)\b|^ ou ", q) or \
            re.search(r"(?<!\w)où(?!\w)", question.lower()):
        return PLACE
    if re.search(r"\b(?:which|what) (?:edition|rank|place|position)\b|\b(?:quelle|quel) (?:edition|rang|place)\b", q):
        return ORDINAL
    if _WHO.search(q.strip()) and not re.search(r"\bqu'est-ce qui\b", q):
        return PERSON
    if re.search(r"\b(?:which|what|quel|quelle)s? (?:[a-z-]+ ){0,2}" + _ROLES + r"\b", q):
        return PERSON
    return None


_TECH_RE = re.compile(
    r"(?:^|(?<=[\s«\"“(']))(?:~?/[\w.+-]+(?:/[\w.+-]*)*)"  # paths
    r"|(?<![\w-])--?[a-zA-Z][\w-]*"  # options
    r"|\b\d+(?:\.\d+){1,3}\b"  # addresses, versions
    r"|\b(?=[\w.+-]*\d)(?=[\w.+-]*[a-zA-Z])[\w+-]+(?:\.[\w+-]+)*\b"  # letters and digits: cp437, rfc1321, md5
    r"|\b[a-zA-Z][\w]*(?:[-_.][\w]+)+\b"  # ssh-keygen, max_part, resolv.conf
    r"|\b\d+\b")  # a value


_TITLES = frozenset("m mme mmes mlle mr mrs ms dr pr prof sir dame".split())


def _new_info(match: str, known: set[str]) -> bool:
    """Does a name/place mention carry a word the question did not already say?"""
    for w in re.findall(r"[^\W\d_]+", fold_accents(match).lower()):
        if w in _TITLES or w in STOP or w in _PREPS:
            continue
        if w not in known and stem(w) not in known:
            return True
    return False


_PREPS = frozenset("a au aux en in at from de near pres dans la le the l".split())


def counts_in(folded: str) -> list[re.Match]:
    """The "<number> <word>" spans of a folded sentence that count something (a year is not a count)."""
    return [m for m in _COUNT_RE.finditer(folded) if not re.fullmatch(r"(?:19|20)\d{2}", m.group(1))]


def counts_noun(noun: str, counted: str | None) -> bool:
    """Does "<n> ``noun``" count what the question counts (``counted``: its stem, :func:`_counted_noun`; None: any)?"""
    return counted is None or stem(noun.lower()) == counted or noun.lower().startswith(counted[:5])


def has_type(sentence: str, kind: str | None, counted: str | None = None, known: set[str] | None = None) -> bool:
    """Does the sentence contain the kind of answer asked for (beyond what the question already says)?"""
    if kind is None:
        return True
    known = known or set()
    folded = fold_accents(sentence)
    if kind in _DETECT:
        return bool(_DETECT[kind].search(folded))
    if kind == COUNT:
        return any(counts_noun(m.group(2), counted) for m in counts_in(folded))
    if kind == PERSON:
        body = sentence[1:]  # a capital at the very start is not a name
        return any(_new_info(m.group(0), known) for m in _ROLE_RE.finditer(folded)) or \
            any(_new_info(m.group(0), known) for m in _NAME_RE.finditer(body))
    if kind == PLACE:
        return any(_new_info(m.group(0), known) for m in _PLACE_RE.finditer(sentence))
    if kind == TECH:
        for m in _TECH_RE.finditer(sentence):
            if _new_info(m.group(0), known) or m.group(0).strip().startswith(("/", "-", "~")) and \
                    fold_accents(m.group(0).strip()).lower() not in known:
                return True
        return any(len(w) >= 3 and w not in known and zipf(w) == 0 and not w.isdigit() for w in words_of(sentence))
    return True


# --------------------------------------------------------------------------- key terms
_QWORDS = frozenset(fold_accents(w) for w in """
what which who whom whose when where why how much many did does do is are was were be the a an of
quel quelle quels quelles qui quoi quand ou comment combien pourquoi lequel laquelle lesquels est-ce
a-t-il a-t-elle ont-ils t-il t-elle il elle avait ete etait
""".split())
_TERM_RE = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)


@dataclass
class Term:
    surface: str  # as written in the question
    key: str  # folded, lower-case
    stem: str
    weight: float
    proper: bool
    focus: bool = False  # the head noun of "which X"
    phrase: bool = False  # part of the "which X" phrase (head and modifiers)
    rare: bool = False  # not an English or French word: must occur in the passages, like a name


_FOCUS = re.compile(r"\b(?:which|what|quel|quelle|quels|quelles|lequel|laquelle)\s+"
                    r"(?:(?:is|are|was|were|est|sont|etait|était|etaient|étaient)\s+)?(?:(?:the|le|la|les|l['’])\s*)?"
                    r"((?:[^\W\d_][\w'-]*\s*){1,3})", re.I)
# Nouns naming a property of something ("the population of Qatar"): when no passage states that property, the
# value is not in the documents, however much else matches.
_ATTRIBUTES = frozenset(fold_accents(w) for w in """
population populations capital capitale superficie area size taille height hauteur length longueur width largeur
weight poids age âge price prix cost coût salary salaire revenue revenu turnover altitude depth profondeur distance
duration durée speed vitesse temperature température rate taux percentage pourcentage score phone téléphone email
website density densité volume diameter diamètre founder fondateur birthday anniversaire motto devise currency monnaie
""".split())


_HEAD_NOUNS = re.compile(r"^(?:" + _TECH_NOUNS + "|" + _ROLES + r")$")
_FOCUS_STOP = frozenset("must can could should would will shall may might do does did is are was were has have had "
                        "from in on at of for to with by about into".split())


def focus_words(question: str) -> list[str]:
    """The "which X"/"quel X" phrase, the thing asked about: "which Qatari minister" -> [qatari, minister].

    The head noun comes last in English ("Qatari minister") and first in French ("montant alloué")."""
    out: list[str] = []
    for m in _FOCUS.finditer(question):
        for w in m.group(1).split()[:3]:
            k = fold_accents(w).lower()
            if k in STOP or k in _QWORDS or k in _FOCUS_STOP or "'" in k:
                break
            if out and k.endswith(("s", "ed")) and not _HEAD_NOUNS.match(k) and detect_language(question) == "en":
                break  # "which RFC describes …": a verb, not part of the phrase
            out.append(k)
        if out:
            break
    if out and detect_language(question) == "fr":
        out = [out[0]] + [w for w in out[1:] if not _HEAD_NOUNS.match(w)] if len(out) > 1 else out
        out = out[1:] + out[:1]  # keep the head (first word in French) last, where the callers look for it
    return out


def term_weight(key: str) -> float:
    """Rare words say more about what is asked than common ones ("vfat" vs "used")."""
    z = zipf(key)
    if z == 0:
        return 2.0
    return min(2.0, max(0.4, 1.0 + (4.5 - z) / 2.5))


def is_rare(key: str) -> bool:
    """Not a word of English or French: a product, command or name ("usrmerge", "WireGuard", "chage")."""
    return len(key) >= 4 and zipf(key) == 0 and not key.isdigit()


def key_terms(question: str) -> list[Term]:
    terms: list[Term] = []
    seen: set[str] = set()
    focus = focus_words(question)
    words = _TERM_RE.findall(question.replace("’", "'"))
    for i, raw in enumerate(words):
        word = re.sub(r"^(?:l|d|qu|n|s|c|j|m|t|jusqu|lorsqu)'", "", raw, flags=re.I)
        word = re.sub(r"'s$", "", word).strip("'-")
        parts = [word]
        if "-" in word:
            # compounds: "a-t-il", "capital-risque", "VT100-style", "ssh-keygen": the parts carry the meaning; the
            # whole is kept as an extra (never required) term when it is a technical name
            whole = fold_accents(word).lower()
            parts = word.split("-")
            if is_rare(whole.replace("-", "")) or word[:1].isupper():
                parts = parts + [word]
        for part in parts:
            key = fold_accents(part).lower().strip("'")
            if len(key) < 2 or key in STOP or key in _QWORDS or key in seen:
                continue
            seen.add(key)
            proper = part[:1].isupper() and (i > 0 or part.isupper() or len(words) == 1)
            surface = part.lower().strip("'")
            weight = term_weight(surface)
            if proper:
                weight = max(weight, 1.5)
            if key in focus:
                weight *= 1.5
            compound = "-" in key
            terms.append(Term(part, key, stem(key), weight * (0.5 if compound else 1.0), proper and not compound,
                              bool(focus) and key == focus[-1], key in focus,
                              rare=not compound and is_rare(surface) and is_rare(key)))
    return terms
