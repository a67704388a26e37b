"""The python code blocks of README.md and docs/*.md run as written, file by file."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = ["README.md", "docs/quickstart.md", "docs/for_xxm_users.md", "docs/for_lme4_users.md",
         "docs/for_lavaan_users.md", "docs/matrices.md", "docs/data.md", "docs/inference.md",
         "docs/internals.md", "docs/networks.md", "docs/distributed.md"]


def blocks(path):
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), flags=re.S)


@pytest.mark.parametrize("path", FILES)
def test_code_blocks_run(path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    found = blocks(path)
    assert found, f"{path} has no python code block"
    monkeypatch.chdir(ROOT)
    namespace = {}
    for code in found:
        exec(compile(code, f"{path}", "exec"), namespace)
