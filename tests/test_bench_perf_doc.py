"""bench.report.write_perf_doc refreshes only its marked block of docs/performance.md (a full run must never wipe
the hand-written history of the page)."""
from bench import report


def _res():
    return {"meta": {"machine": {"cpu": "TestCPU", "cores": 2, "ram_gb": 1}, "started": "2026-01-01 00:00"},
            "corpus": {"chunks": 10}}


def test_only_the_marked_block_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "summary_table", lambda res: "| new table |")
    page = tmp_path / "performance.md"
    page.write_text(f"# Perf\nhand-written intro\n{report.PERF_BEGIN}\n| old table |\n{report.PERF_END}\nhistory kept\n")
    report.write_perf_doc(_res(), page)
    text = page.read_text()
    assert "| new table |" in text and "| old table |" not in text and "TestCPU" in text
    assert text.startswith("# Perf\nhand-written intro\n") and text.endswith("history kept\n")
    report.write_perf_doc(_res(), page)  # idempotent: one block, not two
    assert page.read_text().count(report.PERF_BEGIN) == 1


def test_a_page_without_markers_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "summary_table", lambda res: "| new table |")
    page = tmp_path / "performance.md"
    page.write_text("# Perf\nall by hand\n")
    report.write_perf_doc(_res(), page)
    assert page.read_text() == "# Perf\nall by hand\n"


def test_the_repository_page_has_its_markers():
    from pathlib import Path

    text = (Path(report.__file__).resolve().parent.parent / "docs" / "performance.md").read_text()
    assert text.count(report.PERF_BEGIN) == 1 and text.count(report.PERF_END) == 1
