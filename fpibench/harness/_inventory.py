"""What a results store holds of a sweep's cells, and which code made it.

Each cell of a sweep is, in the store at ``out``:

* ``stored``: its file is there and was made by this code (same code fingerprint, or, for a
  cell stored before fingerprints were recorded, the very commit this code is checked out at);
* ``stale``: its file is there but was made by other code (named by fingerprint or commit);
  a run computes it again and moves the old file to ``superseded/`` (nothing is deleted),
  unless asked to keep it (``reuse_stale``);
* ``partial``: not stored, but a readable epoch checkpoint is (the epochs saved);
* ``to run``: nothing of it is there (an unreadable checkpoint is named in the note).
"""
from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional

from ..fingerprint import code_label, same_code
from ..results import cell_done, cell_path, provenance, stored_code
from ._cells import Cell
from ._checkpoint import checkpoint_path, read_state

STATES = ("stored", "stale", "partial", "to run")
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Entry:
    cell: Cell
    state: str
    code: str = ""  # the code that made the stored file (stored and stale cells)
    epoch: Optional[int] = None  # last epoch of a readable checkpoint
    note: str = ""

    def line(self) -> str:
        """One line of a ``--dry-run`` listing."""
        detail = {"stored": "", "stale": f" (made by {self.code})",
                  "partial": f" (epochs 1-{self.epoch} saved)", "to run": ""}[self.state]
        return f"{self.cell.cell_id}  {self.state}{detail}{f'; {self.note}' if self.note else ''}"


def current_code() -> dict:
    prov = provenance()
    return {"code_fingerprint": prov["code_fingerprint"], "git_commit": prov["git_commit"]}


def _checkpoint_epoch(out, cell: Cell):
    path = checkpoint_path(out, cell.cell_id)
    if not path.is_file():
        return None, ""
    try:
        state = read_state(path)
        return int(state["epoch"]), ""
    except Exception as exc:
        return None, (f"unreadable checkpoint {path} ({type(exc).__name__}); "
                      "the run will stop at it: delete it to run the cell from the start")


def entry(out, cell: Cell, current: dict) -> Entry:
    if cell_done(out, cell.cell_id):
        made_by = stored_code(out, cell.cell_id)
        label = code_label(made_by["code_fingerprint"], made_by["git_commit"])
        return Entry(cell, "stored" if same_code(made_by, current) else "stale", code=label)
    epoch, note = _checkpoint_epoch(out, cell)
    return Entry(cell, "to run" if epoch is None else "partial", epoch=epoch, note=note)


def survey(cells: Iterable[Cell], out, current: Optional[dict] = None) -> List[Entry]:
    """The state of every cell in the store at ``out`` (see the module docstring)."""
    current = current or current_code()
    return [entry(out, c, current) for c in cells]


def is_current(out, cell: Cell) -> bool:
    """Whether ``cell`` is stored at ``out`` by this code (nothing left to compute)."""
    return cell_done(out, cell.cell_id) and entry(out, cell, current_code()).state == "stored"


def counts(entries: Iterable[Entry]) -> dict:
    entries = list(entries)
    return {state: sum(e.state == state for e in entries) for state in STATES}


def stale_notice(entries: List[Entry], out, reuse_stale: bool) -> str:
    """What a run does with cells made by other code ("" when there are none)."""
    by_code = Counter(e.code for e in entries if e.state == "stale")
    if not by_code:
        return ""
    total = sum(by_code.values())
    made = "; ".join(f"{n} by {code}" for code, n in by_code.most_common())
    this = current_code()
    action = ("kept as they are (--reuse-stale); the report names the code of every cell" if reuse_stale else
              f"running them again with this code; the old files move to {Path(out) / SUPERSEDED} "
              "(--reuse-stale keeps them instead)")
    return (f"store {out} holds {total} cell(s) of this sweep made by other code than this "
            f"({code_label(this['code_fingerprint'], this['git_commit'])}): {made}; {action}")


def supersede(out, cell_id: str) -> Optional[Path]:
    """Move a stored cell's file to ``superseded/`` (named by its code) before it is replaced."""
    path = cell_path(out, cell_id)
    if not path.is_file():
        return None
    made_by = stored_code(out, cell_id)
    tag = made_by["code_fingerprint"] or made_by["git_commit"][:12] or "unknown"
    target = Path(out) / SUPERSEDED / f"{cell_id}.{tag}{path.suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))
    return target
