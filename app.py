"""Browser chat over the documents: ``python app.py`` (also the Hugging Face Space entry point).

Indexes ``ASSISTANT_DOCS_DIR`` (default ``seeds/``) if needed, incrementally, then serves the
Gradio chat on ``GRADIO_SERVER_NAME``:``GRADIO_SERVER_PORT`` (default 127.0.0.1:7860).
Every setting can be changed with an ``ASSISTANT_*`` environment variable (``assistant settings``);
docs/ui.md describes the page and its API.
"""
import sys

from assistant.config import Settings
from assistant.ui import serve

if __name__ == "__main__":
    try:
        serve(Settings.from_env())
    except ValueError as err:  # a malformed setting, e.g. ASSISTANT_AUTH without ':'
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
