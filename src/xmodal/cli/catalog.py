"""`xmodal bodies` and `xmodal tasks`: list what is built in."""

from __future__ import annotations

import argparse


def build_parser(sub: argparse._SubParsersAction) -> None:
    bodies = sub.add_parser("bodies", help="list packaged pretrained bodies")
    bodies.set_defaults(run=run_bodies, quiet=True, verbose=False)
    tasks = sub.add_parser("tasks", help="list built-in tasks")
    tasks.set_defaults(run=run_tasks, quiet=True, verbose=False)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def run_bodies(args: argparse.Namespace) -> int:
    from xmodal.bodies import BODIES

    rows = [("name", "modality", "width", "description")]
    for name in BODIES:
        spec = BODIES.get(name)
        rows.append((name, spec.modality, str(spec.width), spec.description))
    print(_table(rows))
    print("\nAny Hugging Face encoder also works by hub id or local folder (--body PATH).")
    return 0


def run_tasks(args: argparse.Namespace) -> int:
    from xmodal.data.tasks import get_task, task_names

    rows = [("name", "dims", "type", "metric", "description")]
    for name in task_names():
        task = get_task(name)
        rows.append((name, f"{task.dims}D", task.task_type, task.metric, task.description))
    print(_table(rows))
    return 0
