"""Answer files: RUN_DIR/human/<annotator>.jsonl, append-only, one fsynced JSON line per event.

An event is an answer or an undo (which withdraws the annotator's answer to an item), so
the file is an audit trail and a kill at any moment loses nothing that was answered: each line
is written by one ``write`` on an O_APPEND descriptor and fsynced before the server replies. A
torn last line (power loss mid-write) is ignored on reading.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_serializer, model_validator

from relbench.errors import UserError

ANNOTATOR = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
HUMAN_DIR = "human"


def check_annotator(name: str) -> str:
    if not isinstance(name, str) or not ANNOTATOR.fullmatch(name):  # match would let "name\n" through
        raise UserError(f"annotator name {name!r} not allowed (1-32 of A-Z a-z 0-9 _ -)")
    return name


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class Answer(BaseModel):
    """One stored answer; everything the human judge needs without the plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["answer"] = "answer"
    annotator: str
    plan: str
    item: str  # the plan's question (Item.id)
    kind: Literal["main", "reference", "repeat"]
    copy_of: Optional[str] = None
    run: str
    case_id: str
    # the suite item (Case.item_id); answer files written before the rename call it triple_id
    item_id: str = Field(validation_alias=AliasChoices("item_id", "triple_id"))
    predicate: str
    negative_kind: str
    side: Literal["pos", "neg"]
    image_key: str
    order: tuple[Literal["pos", "neg"], Literal["pos", "neg"]]
    choice: int = Field(ge=0, le=26)
    answer: Literal["pos", "neg", "cant_tell"]
    time: str
    source: str = "server"
    #: predicate: "which relation does the image show?" over ``choices`` (img_pos only; answer
    #: "pos" when the asked predicate was chosen); ``seen`` is the predicate chosen
    question: Literal["caption", "predicate"] = "caption"
    choices: tuple[str, ...] = ()
    seen: Optional[str] = None

    @model_validator(mode="after")
    def _choice_in_range(self):
        top = len(self.choices) if self.question == "predicate" else 2
        if self.choice > top:
            raise ValueError(f"choice {self.choice} out of range 0-{top}")
        return self

    @model_serializer(mode="wrap")
    def _caption_lines_unchanged(self, handler):
        """A caption answer is stored exactly as before predicate questions existed."""
        out = handler(self)
        if self.question == "caption":
            for k in ("question", "choices", "seen"):
                out.pop(k, None)
        return out

    @property
    def correct(self) -> float | None:
        """1 when the caption of the image's own graph was chosen, 0 for the other, None: can't tell."""
        return None if self.answer == "cant_tell" else float(self.answer == self.side)


class Undo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["undo"] = "undo"
    annotator: str
    item: str
    time: str


def answer_for(plan, item, annotator: str, choice: int, source: str = "server", time: str | None = None) -> Answer:
    return Answer(annotator=annotator, plan=plan.id, item=item.id, kind=item.kind, copy_of=item.copy_of, run=item.run,
                  case_id=item.case_id, item_id=item.item_id, predicate=item.predicate,
                  negative_kind=item.negative_kind, side=item.side, image_key=item.image_key, order=item.order,
                  choice=choice, answer=item.answer_of(choice), time=time or now(), source=source,
                  **({"question": "predicate", "choices": item.choices, "seen": item.seen_of(choice)}
                     if item.question == "predicate" else {}))


def answers_path(run_dir: Path, annotator: str) -> Path:
    return Path(run_dir) / HUMAN_DIR / f"{check_annotator(annotator)}.jsonl"


def append_event(path: Path, event: Answer | Undo) -> None:
    """One line, one write, fsync: durable before the caller answers the browser."""
    line = (event.model_dump_json() + "\n").encode("utf-8")
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # the new directory entry must survive a crash too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def read_events(path: Path) -> list[Answer | Undo]:
    if not path.is_file():
        return []
    out: list[Answer | Undo] = []
    data = path.read_text(encoding="utf-8")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()  # a torn last line (no newline): never acknowledged to anyone
    for n, line in enumerate(lines, 1):
        try:
            raw = json.loads(line)
            out.append(Undo(**raw) if raw.get("event") == "undo" else Answer(**raw))
        except (ValueError, TypeError) as exc:
            raise UserError(f"{path}:{n}: not an answer line ({str(exc).splitlines()[0]})") from None
    return out


def effective(events: list[Answer | Undo]) -> list[Answer]:
    """The answers that stand, one per item, in the order they were stored: an item's latest
    event decides (an answer stands, an undo leaves the item open, as the server treats it), so
    an answer stored twice (an import beside a server, two servers of one name before the
    annotator lock) counts once."""
    last: dict[str, tuple[int, Answer | Undo]] = {}
    for i, e in enumerate(events):
        last[e.item] = (i, e)
    return [e for _, e in sorted(last.values(), key=lambda p: p[0]) if isinstance(e, Answer)]


def annotator_answers(run_dirs, annotator: str) -> list[Answer]:
    """An annotator's standing answers over several run directories, oldest first, one per item
    (the latest, should two directories hold one)."""
    found: dict[str, Answer] = {}
    for d in run_dirs:
        for a in effective(read_events(answers_path(d, annotator))):
            if a.item not in found or a.time >= found[a.item].time:
                found[a.item] = a
    return sorted(found.values(), key=lambda a: a.time)


@contextmanager
def annotator_lock(run_dirs, annotator: str, command: str):
    """Hold the lock on ``annotator``'s answer files in these run directories (RUN_DIR/human/
    .NAME.lock) for the ``with`` block: a server holds it while it runs, an import while it
    merges, so neither stores an answer the other does not know of."""
    from relbench.io.locks import writer_lock

    hint = f"stop it before another server or import for {annotator} (one writer per annotator)"
    with ExitStack() as stack:
        for d in dict.fromkeys(Path(d).resolve() for d in run_dirs):
            if not d.is_dir():  # the lock must not create a run directory
                raise UserError(f"{d}: no such run directory")
            stack.enter_context(writer_lock(d / HUMAN_DIR, command, name=f".{check_annotator(annotator)}.lock", hint=hint))
        yield


def all_answers(run_dir: Path) -> list[Answer]:
    """Every annotator's standing answers in one run directory."""
    out: list[Answer] = []
    for f in sorted((Path(run_dir) / HUMAN_DIR).glob("*.jsonl")):
        if ANNOTATOR.fullmatch(f.stem):
            out += effective(read_events(f))
    return out
