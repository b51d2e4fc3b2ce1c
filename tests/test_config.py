"""Settings: environment overrides, types, secrets masked, and the README documents every one."""
from __future__ import annotations

import subprocess
import sys

import pytest

from assistant.config import Settings, parse_settings_string

from .conftest import ROOT


def test_env_overrides_and_types():
    s = Settings.from_env(env={"ASSISTANT_K": "7", "ASSISTANT_EMBEDDING_QUANTIZE": "off", "ASSISTANT_LLM_TIMEOUT": "2.5",
                               "ASSISTANT_INDEX_DIR": "/tmp/x"})
    assert (s.k, s.embedding_quantize, s.llm_timeout, s.index_dir) == (7, False, 2.5, "/tmp/x")
    assert Settings.from_env(env={"ASSISTANT_K": "7"}, k=3).k == 3  # a CLI flag wins over the environment
    with pytest.raises(ValueError, match="ASSISTANT_K"):
        Settings.from_env(env={"ASSISTANT_K": "many"})


def test_server_url_from_host_and_port():
    assert Settings.from_env(env={"ASSISTANT_CHROMA_HOST": "db", "ASSISTANT_CHROMA_PORT": "9000"}).chroma_server == "http://db:9000"
    assert Settings.from_env(env={}).chroma_server == ""


def test_secrets_are_masked():
    s = Settings.from_env(env={"ASSISTANT_LLM_API_KEY": "sk-very-secret", "ASSISTANT_AUTH": "bob:pw"})
    pub = s.public_dict()
    assert pub["llm_api_key"] == "***" and pub["auth"] == "***"
    assert "sk-very-secret" not in repr(pub)


def test_settings_strings():
    assert parse_settings_string("chunk_tokens=100, hybrid=off,embedding_quantize=false") == \
        {"chunk_tokens": 100, "hybrid": "off", "embedding_quantize": False}
    with pytest.raises(ValueError, match="unknown setting"):
        parse_settings_string("nope=1")


def test_readme_is_generated_and_documents_every_setting():
    out = subprocess.run([sys.executable, "scripts/build_readme.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, env, _default, _help in Settings.describe():
        assert f"`{env}`" in readme, env
    for flag in ["--index-dir", "--rebuild", "--json", "--history", "--k", "--cases", "--docs", "--out", "--config",
                 "--fail-under"]:
        assert flag in readme, flag


def test_index_lowers_its_own_scheduling_priority():
    """`assistant index` runs `lower_priority(index_nice)`: in a child process (niceness cannot be raised back), the
    niceness goes up by exactly the setting, capped at 19, and 0 leaves it alone."""
    import subprocess
    import sys

    code = ("import os; from assistant.cli import lower_priority; base = os.nice(0); "
            "print(base, lower_priority({n}), os.nice(0))")
    for n in (0, 7, 40):
        out = subprocess.run([sys.executable, "-c", code.format(n=n)], capture_output=True, text=True, check=True)
        base, got, now = map(int, out.stdout.split())
        want = base if n == 0 else min(19, base + n)
        assert got == now == want, (n, out.stdout)
    from assistant.config import Settings

    assert Settings.from_env(env={}).index_nice == 10
    assert Settings.from_env(env={"ASSISTANT_INDEX_NICE": "0"}).index_nice == 0


def test_server_address_argument_then_gradio_environment_then_default(monkeypatch):
    from assistant.config import server_address

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    assert server_address() == ("127.0.0.1", 7860)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    assert server_address() == ("0.0.0.0", 7999)
    assert server_address("localhost", 8001) == ("localhost", 8001)


def test_importing_assistant_switches_gradio_analytics_off():
    code = "import os; os.environ.pop('GRADIO_ANALYTICS_ENABLED', None); import assistant.ui; import gradio; " \
           "print(os.environ['GRADIO_ANALYTICS_ENABLED'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
