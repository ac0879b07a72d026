"""Reading and writing JSON / JSONL files, with errors that say which file and line.

Writes are atomic (a temporary file in the same folder, fsync, ``os.replace``), so a
killed kernel leaves either the old file or the new one, never half of one.
``append_jsonl`` fsyncs every line, so a log written with it loses nothing either.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence


class DataError(ValueError):
    """A data file or table is malformed; the message names the file (and line)."""


def _columns_message(where: str, missing: list[str], present: Iterable[str]) -> str:
    names = ", ".join(repr(c) for c in missing)
    noun = "column" if len(missing) == 1 else "columns"
    return f"{where}: missing {noun} {names} (has: {', '.join(map(str, present))})"


def read_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> list[dict]:
    """Read a JSONL file into a list of dicts; skip empty lines.

    Raises ``DataError`` naming the file and 1-based line number for a line that is
    not valid JSON, is not a JSON object, or lacks a ``required`` column, and for a
    file with no rows. A missing file raises ``FileNotFoundError``.
    """
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            missing = [c for c in required if c not in row]
            if missing:
                raise DataError(_columns_message(where, missing, row))
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a malformed one raises ``DataError`` naming the file."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None


def last_json_line(text: str, where: str = "the output") -> dict:
    """The last line of a program's output that is a JSON object (the benchmarks print their result
    last; TRL prints Python dicts, which start with "{" too, before it)."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON line in {where}:\n{text[-2000:]}")


def require_table(data: Any, source: str) -> None:
    """DataError unless ``data`` is a table of rows (a list of dicts or a ``datasets.Dataset``): one dict,
    such as a ``DatasetDict`` of splits, is not."""
    if isinstance(data, dict):
        splits = hasattr(data, "column_names")        # a DatasetDict: its column_names is a dict of splits
        raise DataError(f"{source}: expected rows (a JSONL path, a list of dicts or a Dataset), got "
                        + (f"a DatasetDict: pick a split, e.g. data[{next(iter(data), 'train')!r}]" if splits
                           else "a dict of columns: use datasets.Dataset.from_dict(data)"
                           if data and all(isinstance(v, list) for v in data.values())
                           else "one dict: wrap it in a list"))


def require_columns(rows: Any, columns: Sequence[str], source: str) -> None:
    """Check that a table has the given columns, in ``read_jsonl``'s message style.

    ``rows`` is a list of dicts (every row is checked; lines are 1-based "row N") or
    a ``datasets.Dataset`` (its ``column_names`` are checked). ``source`` names the
    table in the message. An empty table raises ``DataError(f"{source}: no rows")``.
    """
    if hasattr(rows, "column_names"):
        missing = [c for c in columns if c not in rows.column_names]
        if missing:
            raise DataError(_columns_message(source, missing, rows.column_names))
        if len(rows) == 0:
            raise DataError(f"{source}: no rows")
        return
    if len(rows) == 0:
        raise DataError(f"{source}: no rows")
    for number, row in enumerate(rows, start=1):
        where = f"{source}, row {number}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a dict, got {type(row).__name__}")
        missing = [c for c in columns if c not in row]
        if missing:
            raise DataError(_columns_message(where, missing, row))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write rows as JSONL (one ``json.dumps`` per line, keys in their order), atomically."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n"
                                for row in rows))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write one JSON document (ending in a newline), atomically."""
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one row to a JSONL file and fsync it, so a killed kernel loses nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n"
    with open(path, "a", encoding="utf-8", newline="\n") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def load_json_dataset(path: str | os.PathLike):
    """Load a JSON / JSONL file as a ``datasets.Dataset`` (its single "train" split)."""
    import datasets

    if not Path(path).is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return datasets.load_dataset("json", data_files=str(path), split="train")


def write_dir_atomic(out_dir: str | os.PathLike, write) -> Path:
    """Fill a folder with ``write(tmp_dir)`` so ``out_dir`` is never half-written.

    Everything goes to ``out_dir.tmp`` first; the old folder is moved aside only once the
    new one is complete, then removed.
    """
    import shutil

    out = Path(out_dir)
    tmp, old = Path(f"{out}.tmp"), Path(f"{out}.old")
    for p in (tmp, old):
        shutil.rmtree(p, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def save_checkpoint(model, tokenizer, out_dir: str | os.PathLike, info_name: str, info: dict) -> Path:
    """Save a Hugging Face model + tokenizer + ``info_name`` JSON atomically (safetensors weights)."""
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / info_name, json.loads(json.dumps(info, default=str)))
    return write_dir_atomic(out_dir, write)
