"""Shared fixtures: the real embedding model and a real Chroma index of the seeds, built once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_FILE = SEEDS / "000_aa041678daf2c786.txt"
EVAL_DEV = ROOT / "eval" / "dev.jsonl"
ARTIFACTS = ROOT / "test-artifacts"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.chdir(ROOT)  # sources are shown relative to the working directory: "seeds/000_….txt"


@pytest.fixture(scope="session")
def settings_factory():
    from assistant.config import Settings

    def make(**overrides):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}  # tests ignore the caller's settings
        return Settings.from_env(env=env, **overrides)

    return make


@pytest.fixture(scope="session")
def embedder(settings_factory):
    """The default embedder (packaged multilingual-e5-small), loaded once."""
    from assistant.embeddings import make_embedder

    emb = make_embedder(settings_factory())
    emb.warm_up()
    return emb


@pytest.fixture(scope="session")
def seeds_index(tmp_path_factory, settings_factory, embedder) -> Path:
    """An index of seeds/ in a temporary folder (read-only for tests: build your own to modify one)."""
    from assistant.indexing import Indexer

    index_dir = tmp_path_factory.mktemp("seeds-index")
    report = Indexer(settings_factory(index_dir=str(index_dir)), embedder=embedder).run([SEEDS], show_progress=False)
    assert report.total > 0 and not report.failed
    return index_dir


@pytest.fixture(scope="session")
def seeds_assistant(settings_factory, embedder, seeds_index):
    """An Assistant over the seeds index, shared by the session (do not index into it)."""
    from assistant.pipeline import Assistant

    a = Assistant(settings_factory(index_dir=str(seeds_index)), embedder=embedder)
    a.warm_up()
    return a


@pytest.fixture()
def fresh_settings(tmp_path, settings_factory):
    """Settings for a brand-new, empty index in tmp_path/index."""
    return settings_factory(index_dir=str(tmp_path / "index"))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# --------------------------------------------------------------------------- browser chat (assistant/ui.py)
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory, settings_factory, embedder, seeds_index):
    """The Gradio chat served in-process on a free port, over a private copy of the seeds index.

    Uploads go to a temporary folder; the module may index into its copy. Yields a namespace with
    ``url``, ``demo``, ``settings``, ``assistant`` and ``uploads`` (the uploads folder).
    """
    import shutil
    from types import SimpleNamespace

    from assistant.pipeline import Assistant
    from assistant.ui import create_app, launch

    root = tmp_path_factory.mktemp("ui")
    index_dir = root / "index"
    shutil.copytree(seeds_index, index_dir, ignore=shutil.ignore_patterns(".index.lock"))
    settings = settings_factory(index_dir=str(index_dir), upload_dir=str(root / "uploads"),
                                upload_max_files=4, upload_max_mb=1.0)
    assistant = Assistant(settings, embedder=embedder)
    demo = create_app(settings, assistant)
    _, url, _ = launch(demo, settings, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(url=url, demo=demo, settings=settings, assistant=assistant, uploads=root / "uploads")
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(ui_server):
    """A gradio_client over the in-process chat (one per test module)."""
    from gradio_client import Client

    c = Client(ui_server.url, verbose=False, analytics_enabled=False)
    try:
        yield c
    finally:
        c.close()


# --------------------------------------------------------------------------- a non-demo corpus (document library tests)
FAQ_FILES = {
    "mutuelle.md": "# FAQ de la mutuelle Horizon\n\n## Comment résilier mon contrat ?\n\n"
                   "Pour résilier votre contrat, envoyez une lettre recommandée au siège de la mutuelle Horizon, "
                   "12 rue des Lilas à Rennes, au moins deux mois avant la date d'échéance.\n\n"
                   "## Quel est le délai de remboursement des soins ?\n\n"
                   "Les soins sont remboursés sous cinq jours ouvrés après réception de la feuille de soins électronique.\n",
    "mediatheque.md": "# FAQ de la médiathèque de Lorient\n\n## Combien de livres puis-je emprunter ?\n\n"
                      "Chaque abonné de la médiathèque de Lorient peut emprunter douze livres à la fois, "
                      "pour une durée de quatre semaines.\n\n## Quels sont les horaires d'ouverture le dimanche ?\n\n"
                      "La médiathèque de Lorient est ouverte le dimanche de quatorze heures à dix-huit heures, sauf en août.\n",
    "piscine.md": "# FAQ de la piscine municipale de Vannes\n\n## Faut-il porter un bonnet de bain ?\n\n"
                  "Le bonnet de bain est obligatoire pour tous les nageurs de la piscine municipale de Vannes, "
                  "y compris les enfants.\n\n## Quel est le tarif d'une entrée adulte ?\n\n"
                  "Une entrée adulte à la piscine municipale de Vannes coûte quatre euros cinquante.\n",
}
FAQ_QUESTIONS = ["Comment résilier mon contrat ?", "Combien de livres puis-je emprunter ?",
                 "Faut-il porter un bonnet de bain ?", "Quel est le tarif d'une entrée adulte ?"]


def write_faq_corpus(folder: Path) -> Path:
    """Three French FAQ pages, a two-page PDF and a corrupt PDF (which fails with a reason)."""
    from .helpers import make_pdf

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in FAQ_FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    make_pdf(folder / "phare.pdf", ["Rapport sur le phare de Kerbrat. Introduction générale.",
                                    "Le phare de Kerbrat a été construit par l'ingénieur Paul Le Meur en 1881."])
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4\ncorrupted beyond repair\n")
    return folder


@pytest.fixture(scope="module")
def faq_server(tmp_path_factory, settings_factory, embedder):
    """The chat served in-process over a fresh index of a French FAQ corpus (the module may modify it).

    Yields ``url``, ``demo``, ``app`` (the ChatApp), ``settings``, ``assistant``, ``docs`` and ``uploads``."""
    from types import SimpleNamespace

    from assistant.pipeline import Assistant
    from assistant.ui import create_app, launch, prepare_index, ChatApp

    root = tmp_path_factory.mktemp("faq")
    docs = write_faq_corpus(root / "faq")
    settings = settings_factory(index_dir=str(root / "index"), docs_dir=str(docs), upload_dir=str(root / "uploads"),
                                upload_max_files=4, upload_max_mb=1.0)
    assistant = Assistant(settings, embedder=embedder)
    prepare_index(ChatApp(settings, assistant))
    demo = create_app(settings, assistant)
    _, url, _ = launch(demo, settings, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(url=url, demo=demo, app=demo.chat_app, settings=settings, assistant=assistant, docs=docs,
                              uploads=root / "uploads")
    finally:
        demo.close()
