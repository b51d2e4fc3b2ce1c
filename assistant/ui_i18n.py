"""The page's own text in English and French (Gradio's ``gr.I18n``: the browser's language chooses, English otherwise).

Only the page's labels, buttons and placeholders are translated here; answers are in the question's language and
document text is shown as it is.
"""
from __future__ import annotations


def texts(upload_max_files: int, upload_max_mb: float) -> dict[str, dict[str, str]]:
    mb = f"{upload_max_mb:g}"
    return {
        "en": {
            "intro": "# Document Q&A\nAsk about the documents in English or French. Answers quote the documents, "
                     "with numbered sources **[n]**; when the documents do not contain the answer, the assistant says so.",
            "chat_placeholder": "Ask a question, or click an example.",
            "question_placeholder": "Ask a question about the documents…",
            "ask": "Ask",
            "sources": "### Sources",
            "document": "Document",
            "documents": "Documents",
            "add_documents": "Add documents",
            "upload_label": "Upload documents",
            "limits": f"txt, md, html, pdf, docx · up to {upload_max_files} files of {mb} MB each. "
                      "They become searchable as soon as they are indexed.",
            "export": "Export",
            "export_button": "Export the conversation (Markdown)",
            "settings": "Settings",
            "k": "Passages retrieved (k)",
            "backend": "Answer backend",
            "remove": "Remove from index",
            "reindex": "Re-index",
            "correction_placeholder": "The answer is…",
            "send_correction": "Send correction",
        },
        "fr": {
            "intro": "# Questions sur vos documents\nPosez vos questions en français ou en anglais. Les réponses citent "
                     "les documents, avec des sources numérotées **[n]** ; quand les documents ne contiennent pas la "
                     "réponse, l'assistant le dit.",
            "chat_placeholder": "Posez une question, ou cliquez sur un exemple.",
            "question_placeholder": "Posez une question sur les documents…",
            "ask": "Demander",
            "sources": "### Sources",
            "document": "Document",
            "documents": "Documents indexés",
            "add_documents": "Ajouter des documents",
            "upload_label": "Téléverser des documents",
            "limits": f"txt, md, html, pdf, docx · jusqu'à {upload_max_files} fichiers de {mb} Mo chacun. "
                      "Ils sont interrogeables dès qu'ils sont indexés.",
            "export": "Exporter",
            "export_button": "Exporter la conversation (Markdown)",
            "settings": "Réglages",
            "k": "Passages retrouvés (k)",
            "backend": "Moteur de réponse",
            "remove": "Retirer de l'index",
            "reindex": "Réindexer",
            "correction_placeholder": "La bonne réponse est…",
            "send_correction": "Envoyer la correction",
        },
    }


def make(upload_max_files: int, upload_max_mb: float):
    import gradio as gr

    return gr.I18n(**texts(upload_max_files, upload_max_mb))


# --------------------------------------------------------------------------- text the server renders (HTML fragments)
import contextvars  # noqa: E402
from contextlib import contextmanager  # noqa: E402

_LANG: contextvars.ContextVar[str] = contextvars.ContextVar("assistant_ui_lang", default="en")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "sources_placeholder": "The sources of the latest answer appear here: file, location and the passage with the "
                               "cited sentence highlighted.",
        "searching": "Searching the documents…",
        "not_found_title": "Not found in the documents",
        "no_answer_title": "No answer found in the documents",
        "no_answer_body": "The assistant only answers from the indexed documents and found no passage that answers this "
                          "question, so it cites nothing. Rephrase, or add the document that contains the answer.",
        "consulted": "Passages consulted from: ",
        "no_citation": "This answer cites no passage.",
        "unmatched": "⚠ this sentence could not be matched to its passage",
        "unsupported": "⚠ Not supported by the cited passages: {nums}",
        "sources_n": "Sources ({n})",
        "open": "Open at passage ↗",
        "open_title": "Open the document at this passage",
        "confidence": "{label} confidence",
        "high": "high", "medium": "medium", "low": "low",
        "from_source": "from the {names} source",
        "from_sources": "from the {names} sources",
        "lang_en": "English", "lang_fr": "French",
        "and": " and ",
        "viewer_placeholder": "Click “Open at passage” on a source to read it in its document.",
        "passage_on_page": " · passage on page {page}",
        "long_document": "… (the document is long: showing the part around the passage)",
        "page": "page {page}",
        "library_empty": "No document is indexed yet. Add documents below.",
        "library_count": "{n} searchable documents", "library_count_1": "1 searchable document",
        "library_failed": ", {n} not indexed", "library_failed_1": ", 1 not indexed",
        "col_document": "document", "col_type": "type", "col_size": "size", "col_pages": "pages", "col_chunks": "chunks",
        "col_indexed": "indexed (UTC)", "col_status": "status",
        "searchable": "✓ searchable", "indexing": "indexing…", "not_indexed": "✗ not indexed: {error}",
        "uploaded": "(uploaded)",
        "choose_first": "Choose a document first.",
        "removed": "✓ {name} was removed from the index.",
        "reindexed": "✓ {name} re-indexed ({what}).",
        "updated": "updated", "unchanged": "unchanged, already up to date",
        "liked": "Thanks: 👍 recorded.",
        "disliked": "👎 recorded. What is the right answer? (optional; it becomes an evaluation case)",
        "type_first": "Type the right answer first.",
        "corrected": "Thanks: the correction was recorded.",
        "err_question": "Cannot ask this question",
        "err_no_index": "No documents indexed yet",
        "err_store": "The document index is unavailable",
        "err_other": "Something went wrong",
        "n_documents": "{n} documents", "n_documents_1": "{n} document",
        "n_chunks": "{n} chunks", "n_chunks_1": "{n} chunk",
        "embedding_model": "embedding model {model}",
        "index_unavailable": "Index unavailable: {error}",
        "confidence_title": "confidence {x}",
        "loc_page": "page {page}", "loc_section": "section “{section}”", "loc_paragraph": "paragraph {n}",
        "upload_none": "No file received.",
        "upload_head": "{n} files searchable now", "upload_head_1": "1 file searchable now",
        "upload_failed": ", {n} not indexed", "upload_failed_1": ", 1 not indexed",
        "upload_indexed": "indexed", "upload_already": "already indexed",
        "upload_too_many": "not indexed: at most {limit} files per upload (ASSISTANT_UPLOAD_MAX_FILES)",
        "upload_lost": "the upload did not arrive; try again",
        "upload_type": "unsupported file type {ext}; supported: {supported}",
        "upload_size": "file is {mb} MB; the limit is {limit} MB (ASSISTANT_UPLOAD_MAX_MB)",
        "upload_warning": "{n} files were not indexed; the reasons are listed under the upload box.",
        "upload_warning_1": "1 file was not indexed; the reason is listed under the upload box.",
        "progress_checking": "Checking files…", "progress_files": "Indexing files",
        "progress_chunks": "Embedding passages ({n})",
        "progress_sentences": "Searchable now; embedding sentences for faster answers",
        "cannot_open": "cannot open this document",
        "export_title": "Document Q&A", "export_heading": "{title} — conversation", "exported": "Exported {when} UTC.",
        "no_answer": "(no answer)", "export_sources": "Sources:",
    },
    "fr": {
        "sources_placeholder": "Les sources de la dernière réponse s'affichent ici : fichier, emplacement et passage, "
                               "la phrase citée surlignée.",
        "searching": "Recherche dans les documents…",
        "not_found_title": "Absent des documents",
        "no_answer_title": "Aucune réponse dans les documents",
        "no_answer_body": "L'assistant ne répond qu'à partir des documents indexés et n'a trouvé aucun passage qui "
                          "réponde à cette question : il ne cite donc rien. Reformulez, ou ajoutez le document qui "
                          "contient la réponse.",
        "consulted": "Passages consultés dans : ",
        "no_citation": "Cette réponse ne cite aucun passage.",
        "unmatched": "⚠ cette phrase ne correspond pas à son passage",
        "unsupported": "⚠ Non étayé par les passages cités : {nums}",
        "sources_n": "Sources ({n})",
        "open": "Ouvrir au passage ↗",
        "open_title": "Ouvrir le document à ce passage",
        "confidence": "confiance {label}",
        "high": "élevée", "medium": "moyenne", "low": "faible",
        "from_source": "d'après la source en {names}",
        "from_sources": "d'après les sources en {names}",
        "lang_en": "anglais", "lang_fr": "français",
        "and": " et ",
        "viewer_placeholder": "Cliquez sur « Ouvrir au passage » sur une source pour la lire dans son document.",
        "passage_on_page": " · passage en page {page}",
        "long_document": "… (document long : seule la partie autour du passage est affichée)",
        "page": "page {page}",
        "library_empty": "Aucun document indexé pour l'instant. Ajoutez-en ci-dessous.",
        "library_count": "{n} documents interrogeables", "library_count_1": "1 document interrogeable",
        "library_failed": ", {n} non indexés", "library_failed_1": ", 1 non indexé",
        "col_document": "document", "col_type": "type", "col_size": "taille", "col_pages": "pages",
        "col_chunks": "passages", "col_indexed": "indexé (UTC)", "col_status": "état",
        "searchable": "✓ interrogeable", "indexing": "indexation…", "not_indexed": "✗ non indexé : {error}",
        "uploaded": "(téléversé)",
        "choose_first": "Choisissez d'abord un document.",
        "removed": "✓ {name} a été retiré de l'index.",
        "reindexed": "✓ {name} réindexé ({what}).",
        "updated": "mis à jour", "unchanged": "inchangé, déjà à jour",
        "liked": "Merci : 👍 enregistré.",
        "disliked": "👎 enregistré. Quelle est la bonne réponse ? (facultatif ; elle devient un cas d'évaluation)",
        "type_first": "Saisissez d'abord la bonne réponse.",
        "corrected": "Merci : la correction a été enregistrée.",
        "err_question": "Impossible de poser cette question",
        "err_no_index": "Aucun document indexé pour l'instant",
        "err_store": "L'index des documents est indisponible",
        "err_other": "Une erreur s'est produite",
        "n_documents": "{n} documents", "n_documents_1": "{n} document",
        "n_chunks": "{n} passages", "n_chunks_1": "{n} passage",
        "embedding_model": "modèle d'embeddings {model}",
        "index_unavailable": "Index indisponible : {error}",
        "confidence_title": "confiance {x}",
        "loc_page": "page {page}", "loc_section": "section « {section} »", "loc_paragraph": "paragraphe {n}",
        "upload_none": "Aucun fichier reçu.",
        "upload_head": "{n} fichiers interrogeables dès maintenant", "upload_head_1": "1 fichier interrogeable dès maintenant",
        "upload_failed": ", {n} non indexés", "upload_failed_1": ", 1 non indexé",
        "upload_indexed": "indexé", "upload_already": "déjà indexé",
        "upload_too_many": "non indexé : au plus {limit} fichiers par envoi (ASSISTANT_UPLOAD_MAX_FILES)",
        "upload_lost": "le fichier n'est pas arrivé ; réessayez",
        "upload_type": "type de fichier non pris en charge {ext} ; types acceptés : {supported}",
        "upload_size": "le fichier fait {mb} Mo ; la limite est de {limit} Mo (ASSISTANT_UPLOAD_MAX_MB)",
        "upload_warning": "{n} fichiers n'ont pas été indexés ; les raisons sont indiquées sous la zone d'envoi.",
        "upload_warning_1": "1 fichier n'a pas été indexé ; la raison est indiquée sous la zone d'envoi.",
        "progress_checking": "Vérification des fichiers…", "progress_files": "Indexation des fichiers",
        "progress_chunks": "Calcul des embeddings des passages ({n})",
        "progress_sentences": "Déjà interrogeable ; calcul des embeddings des phrases pour des réponses plus rapides",
        "cannot_open": "impossible d'ouvrir ce document",
        "export_title": "Questions sur vos documents", "export_heading": "{title} — conversation",
        "exported": "Exporté le {when} UTC.", "no_answer": "(pas de réponse)", "export_sources": "Sources :",
    },
}


def current() -> str:
    """The language of the request being served ("en" or "fr")."""
    return _LANG.get()


def number(x: float, digits: int = 2) -> str:
    """``x`` as the page's language writes it: 0.27 / 0,27."""
    text = f"{x:.{digits}f}"
    return text.replace(".", ",") if _LANG.get() == "fr" else text


def location_text(loc: dict) -> str:
    """A citation's location in the current language: "page 2, section “FAQ”, paragraph 3" (citations.format_location)."""
    parts = []
    if "page" in loc:
        parts.append(tr("loc_page", page=loc["page"]))
    if loc.get("section"):
        parts.append(tr("loc_section", section=loc["section"]))
    if "paragraph" in loc:
        parts.append(tr("loc_paragraph", n=loc["paragraph"]))
    return ", ".join(parts)


def tr(key: str, **values) -> str:
    """``key``'s text in the language of the request being served (English by default)."""
    table = MESSAGES.get(_LANG.get(), MESSAGES["en"])
    text = table.get(key, MESSAGES["en"][key])
    return text.format(**values) if values else text


@contextmanager
def language(lang: str):
    token = _LANG.set(lang if lang in MESSAGES else "en")
    try:
        yield
    finally:
        _LANG.reset(token)


def request_language(request) -> str:
    """'fr' when the browser prefers French (Accept-Language), else 'en' (API clients send none)."""
    try:
        header = (request.headers.get("accept-language") or "") if request is not None else ""
    except Exception:  # noqa: BLE001
        header = ""
    first = header.split(",")[0].strip().lower()
    return "fr" if first.startswith("fr") else "en"
