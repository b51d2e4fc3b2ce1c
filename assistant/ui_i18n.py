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
