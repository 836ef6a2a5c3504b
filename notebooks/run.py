"""Executes the notebooks headless, as the tests do: ``python run.py [--store URL] [--out DIR] [NOTEBOOK ...]``.

Every notebook (default: each ``*.ipynb`` beside this file) runs top to bottom in a fresh kernel
of the Python running this script, with the working directory ``notebooks/`` and ``OMEN_STORE``
set to ``--store`` when given. At the first cell that raises, it prints the notebook, the cell
and the error with its traceback, and exits 1; the notebooks are never modified.

``--out DIR`` keeps what ran: ``DIR/<name>.ipynb`` with its outputs (also for a notebook that
failed, up to the failing cell) and every figure as ``DIR/<name>-<n>.png``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent


def kernel_manager(spec_dir: Path) -> AsyncKernelManager:
    """A kernel of this very Python (never another one a kernelspec on the machine may name)."""
    d = spec_dir / "omen-notebooks"
    d.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "omen notebooks",
        "language": "python",
    }
    (d / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(spec_dir)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name="omen-notebooks", kernel_spec_manager=ksm)


def save(nb, name: str, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / f"{name}.ipynb")
    n = 0
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            png = o.get("data", {}).get("image/png")
            if png:
                n += 1
                (out / f"{name}-{n}.png").write_bytes(base64.b64decode(png))
    return n


def run(path: Path, out: Path | None, timeout: int, spec_dir: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        km=kernel_manager(spec_dir),
        resources={"metadata": {"path": str(HERE)}},
    )
    ok = True
    try:
        client.execute()
    except CellExecutionError as e:
        ok = False
        index = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        where = f"cell {index}" if index is not None else "a cell"
        print(f"{path.name}: {where} failed:\n{e}", file=sys.stderr)
    figures = save(nb, path.stem, out) if out else 0
    if ok:
        print(f"{path.name}: ok" + (f" ({figures} figures in {out})" if out else ""))
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every one in notebooks/)")
    p.add_argument("--store", help="the store (sets OMEN_STORE; default: OMEN_STORE, else ./omen-data)")
    p.add_argument("--out", type=Path, help="keep the executed notebooks and their figures here")
    p.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (600)")
    args = p.parse_args()
    if args.store:
        os.environ["OMEN_STORE"] = args.store
    books = [b.resolve() for b in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    if not books:
        print("no notebooks to run", file=sys.stderr)
        return 2
    failed = []
    with tempfile.TemporaryDirectory(prefix="omen-kernel-") as spec_dir:
        for b in books:
            if not run(b, args.out, args.timeout, Path(spec_dir)):
                failed.append(b.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
