"""The site's Python API page: every code block runs as written, in order, on the real weights."""

import re

import numpy as np

from .conftest import REPO


def test_every_example_on_the_api_page_runs(weights_path, monkeypatch, capsys):
    monkeypatch.setenv("FILTER_ATLAS_WEIGHTS", str(weights_path))
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs/api.md").read_text(), re.S)
    assert len(blocks) == 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    assert namespace["r"].images.shape == (2, 64, 64, 3)
    assert namespace["r4"].images.shape == (4, 64, 64, 3)
    assert len({image.tobytes() for image in namespace["r4"].images}) == 4
    assert np.all(np.isfinite(namespace["neuron"].activations))
    assert namespace["g"].shape == (1, 64, 64, 3) and np.isfinite(namespace["g"]).all()
    assert "mine" in capsys.readouterr().out
