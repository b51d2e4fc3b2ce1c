"""The model's output as text we can check: message text, clean-up, citation markers, abstention.

This module owns everything done to what the model wrote before its sentences are checked: the text of a message,
a streamed chunk or their content blocks (:func:`message_text`, the one helper for it), the clean-up of chat-template
tokens, echoed passages and a leading "Answer:" (:func:`clean_output`), the normalisation of the many ways models
write citations into ``[n]`` markers (:func:`normalize_markers`, and appending one to a sentence), and the detection
of the prompt's fixed "not in the documents" sentence or a close variant (:func:`is_abstention`).
"""
from __future__ import annotations

import re

from ..answer import NOT_FOUND
from ..citations import MARKER
from ..text import message_text, normalize_for_match  # noqa: F401 - message_text: re-exported


_MARKER_LIKE = re.compile(
    r"[\[【]\s*\^?\s*(?:(?:passages?|sources?|docs?|documents?|refs?|references?|p)\s*[#:.]?\s*)?"
    r"(\d{1,3}(?:\s*(?:,|;|-|–|\band\b|\bet\b|&)\s*(?:(?:passages?|sources?)\s*)?#?\s*\d{1,3})*)\s*[\]】]", re.I)
_SPECIAL_TOKENS = re.compile(r"<end_of_turn>|<start_of_turn>(?:model|user)?|<\|eot_id\|>|<\|im_end\|>|<\|end\|>|</s>|<eos>")


def normalize_markers(text: str) -> str:
    """'[1, 2]', '[Passage 1]', '[1-3]', '【2】' -> '[1][2]', '[1]', '[1][2][3]', '[2]'."""
    def fix(m: re.Match) -> str:
        nums: list[int] = []
        for part in re.split(r"\s*(?:,|;|\band\b|\bet\b|&)\s*", m.group(1), flags=re.I):
            part = re.sub(r"(?i)passages?|sources?|#", "", part).strip()
            rng = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", part)
            if rng:
                a, b = int(rng.group(1)), int(rng.group(2))
                nums.extend(range(a, b + 1) if 0 <= b - a <= 10 else (a, b))
            elif part.isdigit():
                nums.append(int(part))
        return "".join(f"[{n}]" for n in dict.fromkeys(nums))

    text = _MARKER_LIKE.sub(fix, text)

    def move(m: re.Match) -> str:  # "… startups. [1]" -> "… startups [1]."
        return " " + "".join(f"[{x}]" for x in MARKER.findall(m.group(2))) + m.group(1)

    text = re.sub(r"([.!?…])((?:[ \t]*\[\d{1,3}\])+)", move, text)
    return re.sub(r"[ \t]{2,}(?=\[\d)", " ", text)


def clean_output(text: str) -> str:
    """The model's text without chat-template tokens, echoed passages or a leading 'Answer:'."""
    text = _SPECIAL_TOKENS.sub("", text or "")
    text = re.sub(r"<passage\b[^>]*>.*?(?:</passage>|$)", " ", text, flags=re.S | re.I)  # echoed passages
    text = re.sub(r"</?passages?\b[^>]*>?", " ", text, flags=re.I)
    text = re.sub(r"<[a-z_/|][^<>\s]*$", "", text.rstrip(), flags=re.I)  # a tag cut by the token limit
    text = re.sub(r"^\s*(?:answer|réponse|reponse)\s*:\s*", "", text, flags=re.I)
    return text.strip()


_ABSTAIN_PHRASES = [normalize_for_match(p) for p in (
    "do not contain the answer", "does not contain the answer", "don't contain the answer", "doesn't contain the answer",
    "cannot find the answer", "can't find the answer", "could not find the answer", "no answer in the",
    "not contain any information", "no information about", "not mentioned in the passages", "not mentioned in the documents",
    "ne contiennent pas la réponse", "ne contient pas la réponse", "ne contiennent pas de réponse",
    "je ne trouve pas la réponse", "je ne trouve pas", "aucune information sur", "pas mentionné dans les",
)]


def is_abstention(text: str, passages: int = 0) -> bool:
    """Did the model say the passages do not contain the answer (fixed sentence or a close variant)?

    The answer counts as an abstention when it contains the prompt's fixed
    sentence (English or French) and little else, or a "cannot find"
    phrase without any citation of a passage.
    """
    cited = any(1 <= int(n) <= passages for n in MARKER.findall(text)) if passages else bool(MARKER.search(text))
    norm = normalize_for_match(MARKER.sub("", text))
    for sentence in NOT_FOUND.values():
        fixed = normalize_for_match(sentence).rstrip(".")
        if fixed in norm:
            rest = norm.replace(fixed, " ")
            if not cited or len(re.findall(r"\w+", rest)) < 6:
                return True
    if not cited and len(norm.split()) <= 60 and any(p in norm for p in _ABSTAIN_PHRASES):
        return True
    return False


def append_marker(sentence: str, n: int) -> str:
    """``sentence`` with the marker ``[n]`` before its final punctuation."""
    m = re.search(r"([.!?…]+[»\"”’)]*|[:;])$", sentence)
    if m:
        return f"{sentence[:m.start()].rstrip()} [{n}]{m.group(0)}"
    return f"{sentence} [{n}]"
