"""Loaders: every supported format, structure kept, broken files rejected with a reason."""
from __future__ import annotations

import io
import zipfile

import pytest

from assistant.loaders import DocumentLoader, LoadError, discover

from .helpers import make_docx, make_pdf


@pytest.fixture()
def loader():
    return DocumentLoader(max_file_mb=5)


def test_txt_paragraphs_and_offsets(loader, tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Premier paragraphe.\nSuite du premier.\n\n\nDeuxième paragraphe.", encoding="utf-8")
    doc = loader.run(p)
    assert doc.kind == "txt"
    assert len(doc.blocks) == 2
    assert doc.text[doc.blocks[1].start:doc.blocks[1].end] == "Deuxième paragraphe."
    assert doc.file_hash and len(doc.file_hash) == 64


def test_latin1_text_is_decoded(loader, tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("Le café de la fenêtre était très apprécié à Noël.".encode("latin-1"))
    doc = loader.run(p)
    assert "café" in doc.text and "fenêtre" in doc.text and "Noël" in doc.text


def test_utf16_with_bom(loader, tmp_path):
    p = tmp_path / "u16.txt"
    p.write_bytes("Texte en UTF-16 avec accents éàü.".encode("utf-16"))
    assert "accents éàü" in loader.run(p).text


@pytest.mark.parametrize("name,data,reason", [
    ("empty.txt", b"", "empty"),
    ("blank.md", b"   \n\n  ", "empty"),
    ("binary.txt", bytes(range(256)) * 40, "binary"),
    ("fake.pdf", b"this is not a pdf at all, just text", "not a PDF"),
    ("truncated.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "pdf"),
    ("fake.docx", b"plain text renamed to docx", "not a DOCX"),
    ("badzip.docx", b"PK\x03\x04garbage", "DOCX"),
])
def test_broken_files_raise_one_line_reason(loader, tmp_path, name, data, reason):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(LoadError) as err:
        loader.run(p)
    msg = str(err.value)
    assert reason.lower() in msg.lower()
    assert "\n" not in msg


def test_size_limit(tmp_path):
    p = tmp_path / "big.txt"
    p.write_text("mot " * 400_000)
    with pytest.raises(LoadError, match="limit"):
        DocumentLoader(max_file_mb=1).run(p)


def test_markdown_headings_become_sections(loader, tmp_path):
    p = tmp_path / "guide.md"
    p.write_text("# Installation\n\nLancez **apt install gimp** pour installer.\n\n## Réglages\n\nOuvrez le [menu](http://x) Préférences.\n")
    doc = loader.run(p)
    sections = {doc.text[b.start:b.end]: b.section for b in doc.blocks}
    assert sections["Lancez apt install gimp pour installer."] == "Installation"
    assert sections["Ouvrez le menu Préférences."] == "Réglages"
    assert "**" not in doc.text and "http://x" not in doc.text


def test_html_main_content_only(loader, tmp_path):
    nav = "".join(f"<li><a href='/c{i}'>Chapitre {i} : sommaire</a></li>" for i in range(30))
    html = f"""<html><head><title>Guide</title><style>body {{color: red}}</style><script>var secret = 'SCRIPTTEXT';</script></head>
    <body><nav><ul>{nav}</ul></nav><header><div>En-tête du site WEBHEADER</div></header>
    <main><h1>Gestion des paquets</h1><p>La commande apt permet d'installer des logiciels depuis les dépôts Debian.
    Elle résout automatiquement les dépendances entre paquets et télécharge ce qui manque.</p>
    <h2>Mise à jour</h2><p>Pour mettre le système à jour, lancez apt update puis apt upgrade en tant que superutilisateur.
    Les paquets téléchargés restent dans le cache jusqu'à leur suppression.</p></main>
    <footer>Copyright FOOTERTEXT 2024</footer></body></html>"""
    p = tmp_path / "page.html"
    p.write_text(html)
    doc = loader.run(p)
    assert "apt update puis apt upgrade" in doc.text
    for junk in ("SCRIPTTEXT", "color: red", "FOOTERTEXT", "Chapitre 7", "WEBHEADER"):
        assert junk not in doc.text
    by_text = {doc.text[b.start:b.end][:20]: b.section for b in doc.blocks}
    assert by_text["Pour mettre le systè"] == "Mise à jour"


def test_pdf_pages_kept(loader, tmp_path):
    p = tmp_path / "doc.pdf"
    make_pdf(p, ["Première page : le budget est de 12 millions d'euros.", "Seconde page : le directeur s'appelle Jean Dupont."])
    doc = loader.run(p)
    pages = {doc.text[b.start:b.end]: b.page for b in doc.blocks}
    assert any("Jean Dupont" in t and pg == 2 for t, pg in pages.items())
    assert any("12 millions" in t and pg == 1 for t, pg in pages.items())


def test_docx_headings_and_tables(loader, tmp_path):
    p = tmp_path / "doc.docx"
    make_docx(p, [("Heading 1", "Budget"), ("Normal", "Le budget annuel est de 4 millions."), ("Heading 2", "Équipe"),
                  ("Normal", "La cheffe de projet est Awa Diallo.")], table=[["Poste", "Nom"], ["Trésorier", "Paul Martin"]])
    doc = loader.run(p)
    blocks = {doc.text[b.start:b.end]: b.section for b in doc.blocks}
    assert blocks["La cheffe de projet est Awa Diallo."] == "Équipe"
    assert "Trésorier | Paul Martin" in doc.text


def test_docx_zip_bomb_refused(loader, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", "<w:document/>")
        zf.writestr("word/bomb.xml", b"\0" * (400 * 1024 * 1024))
    p = tmp_path / "bomb.docx"
    p.write_bytes(buf.getvalue())
    assert p.stat().st_size < 2_000_000
    with pytest.raises(LoadError, match="zip bomb"):
        loader.run(p)


def test_discover_skips_hidden_and_unsupported(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / ".hidden.txt").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "b.txt").write_text("x")
    (tmp_path / "img.png").write_bytes(b"\x89PNG")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.MD").write_text("x")
    files, ignored = discover([tmp_path])
    assert [f.name for f in files] == ["a.txt", "c.MD"]
    assert [f.name for f in ignored] == ["img.png"]


def test_html_with_a_text_node_over_lxml_limit_is_read():
    """lxml (trafilatura) drops a page whose one text node is over 10 MB; the loader reads its text anyway
    (it was reported "no extractable text": a silent loss of a whole page)."""
    import random

    from assistant.loaders import DocumentLoader

    rnd = random.Random(0)
    words = "le port de brest accueille chaque ete une grande fete maritime".split()
    body = " ".join(rnd.choice(words) for _ in range(2_000_000))  # ~11.5 MB in one <p>
    html = ("<html><head><script>var secret = 1;</script></head><body><p>" + body
            + "</p><p>Le phare de Kerlédan guide les navires.</p></body></html>").encode()
    doc = DocumentLoader().run("page.html", data=html)
    assert len(doc.text) > 11_000_000 and "Le phare de Kerlédan guide les navires." in doc.text
    assert "secret" not in doc.text
