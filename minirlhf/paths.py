"""Where minirlhf's files are: the shipped data, the base model, the repository's URL.

The repository's top-level ``data/`` folder is installed as the package
``minirlhf.data`` (see ``pyproject.toml``), so the same code finds it in a checkout,
an editable install and a normal ``pip install``.
"""
from __future__ import annotations

import re
from importlib import metadata, resources
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_GITHUB = "https://github.com/"


def data_dir() -> Path:
    """The folder of the ``minirlhf.data`` package (the repo's ``data/`` folder).

    Falls back to ``data/`` next to the package when ``minirlhf.data`` is not
    importable (a checkout used without installing it).
    """
    try:
        folder = Path(str(resources.files("minirlhf.data")))
        if folder.is_dir():
            return folder
    except (ModuleNotFoundError, TypeError):
        pass
    return _PACKAGE_DIR.parent / "data"


def world_dir() -> Path:
    """The offline assistant world's data files: ``data_dir() / "world"``."""
    return data_dir() / "world"


def base_model_dir(size: str = "tiny") -> Path:
    """The shipped pretrained base model of a given size: ``data/models/base-<size>``."""
    return data_dir() / "models" / f"base-{size}"


def repo_url() -> str:
    """The project's Homepage URL, as written once in ``pyproject.toml``.

    Read from the installed package's metadata; falls back to parsing the
    ``pyproject.toml`` next to the package (a checkout that is not installed).
    """
    try:
        for entry in metadata.metadata("minirlhf").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "homepage" and url.strip():
                return url.strip()
    except metadata.PackageNotFoundError:
        pass
    pyproject = _PACKAGE_DIR.parent / "pyproject.toml"
    if pyproject.is_file():
        match = re.search(r'^\s*Homepage\s*=\s*"([^"]+)"', pyproject.read_text("utf-8"), re.M)
        if match:
            return match.group(1)
    raise RuntimeError("minirlhf's Homepage URL is neither in its metadata nor in pyproject.toml")


def colab_url(notebook_name: str) -> str:
    """The "Open in Colab" link of a notebook in the repository's ``notebooks/`` folder.

    ``colab_url("01_sft.ipynb")`` ->
    ``https://colab.research.google.com/github/<owner>/<name>/blob/main/notebooks/01_sft.ipynb``.
    """
    url = repo_url().rstrip("/")
    if not url.startswith(_GITHUB):
        raise ValueError(f"Colab opens notebooks from GitHub, but the repository is at {url}")
    owner_name = url[len(_GITHUB):].removesuffix(".git")
    name = Path(notebook_name).name
    if not name.endswith(".ipynb"):
        name += ".ipynb"
    return f"https://colab.research.google.com/github/{owner_name}/blob/main/notebooks/{name}"
