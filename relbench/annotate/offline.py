"""Remote annotators without a server: a self-contained page out, a validated JSON file back.

The page inlines its images (data: URIs), style and script (CSP nonce) and makes no request.
Each export is for one named annotator and gets an id and a token, HMAC-SHA256(secret, export
id, plan id, annotator), with a secret that stays in RUN_DIR/human/exports.json (mode 0600).
The page holds no answer key: its items are named by ids opaque to the annotator (an HMAC of
the export id and the plan's item id), with neither the image key nor which caption is g+;
the import maps them back through the plan. A returned file is merged only if its token is
ours, its plan is the plan these run directories give and every answer names an item of that
export; any refusal is one line and nothing is written. The merge stages every answer file
before renaming any (relbench.io.atomic.write_all) and records the import in the ledger last, so
a retry of a file whose merge was interrupted completes what is missing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import mimetypes
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relbench.annotate.guide import guide_for
from relbench.annotate.plan import Plan, build_plan
from relbench.results.answers import (
    ANNOTATOR, HUMAN_DIR, annotator_answers, annotator_lock, answer_for, answers_path, check_annotator, now,
)
from relbench.io.atomic import write_all, write_text
from relbench.errors import UserError

FORMAT = "relbench-annotations/2"
MAX_BYTES = 20_000_000


class SubmittedAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str = Field(max_length=64)  # the page's id for the item, not the plan's
    choice: int = Field(ge=0, le=26)  # 0 can't tell, else the option's number (checked against the item)
    time: datetime  # when the annotator answered (the page writes ISO 8601 UTC)


class Submission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["relbench-annotations/2"]
    plan: str = Field(max_length=64)
    export: str = Field(max_length=64)
    token: str = Field(max_length=128)
    annotator: str = Field(pattern=ANNOTATOR.pattern)
    answers: list[SubmittedAnswer] = Field(min_length=1)


def _ledger_path(plan: Plan) -> Path:
    return plan.run_dirs[0] / HUMAN_DIR / "exports.json"


def _read_ledger(path: Path) -> dict:
    if not path.is_file():
        return {"secret": None, "exports": {}, "imports": []}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the export ledger: {exc}") from None


def _write_ledger(path: Path, ledger: dict) -> None:
    write_text(path, json.dumps(ledger, indent=1) + "\n", mode=0o600)  # it holds the HMAC secret


def _mac(secret: str, *fields: str) -> str:
    return hmac.new(bytes.fromhex(secret), "\0".join(fields).encode(), hashlib.sha256).hexdigest()


def _token(secret: str, export_id: str, plan_id: str, annotator: str) -> str:
    return _mac(secret, "token", export_id, plan_id, annotator)


def _page_id(secret: str, export_id: str, item_id: str) -> str:
    """What the page calls a plan item: without the secret it says nothing about the run,
    case, side or kind (plan ids are hashes of exactly those), and it differs per export."""
    return _mac(secret, "item", export_id, item_id)[:16]


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def export_page(plan: Plan, out_dir: str | Path, annotator: str) -> Path:
    """One page for one annotator: the name is fixed in the page and signed by its token, so
    one person's answers cannot be imported again under another name."""
    from markupsafe import Markup

    from relbench.annotate.server import HERE, templates

    plan = plan.for_annotator(check_annotator(annotator))  # the order this annotator's server would show
    ledger_path = _ledger_path(plan)
    ledger = _read_ledger(ledger_path)
    ledger["secret"] = ledger.get("secret") or secrets.token_hex(32)
    secret = ledger["secret"]
    export_id = secrets.token_hex(8)
    ledger.setdefault("exports", {})[export_id] = {
        "plan": plan.id, "n": plan.n, "seed": plan.seed, "annotator": annotator, "created": now(),
        **({"question": plan.question} if plan.question != "caption" else {}),
        "run_dirs": [str(d) for d in plan.run_dirs],
    }
    payload = {
        "plan": plan.id, "export": export_id, "token": _token(secret, export_id, plan.id, annotator),
        "annotator": annotator,
        "items": [{"id": _page_id(secret, export_id, it.id), "image": _data_uri(plan.image_path(it)),
                   "captions": [text for _, text in it.options()],
                   **({"prompt": it.prompt} if it.question == "predicate" else {})} for it in plan.items],
    }
    html = templates().get_template("offline.html.j2").render(
        nonce=secrets.token_urlsafe(16), plan_id=plan.id, total=len(plan.items), payload=payload, guide=guide_for(plan),
        css=Markup((HERE / "static" / "annotate.css").read_text()),
        script=Markup((HERE / "static" / "offline.js").read_text()),
    )
    out = Path(out_dir) / f"annotate-{plan.id}-{annotator}-{export_id}.html"
    _write_ledger(ledger_path, ledger)  # first: a page whose export the ledger lacks could never be imported
    write_text(out, html)
    return out


def _load(path: Path) -> tuple[Submission, str]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise UserError(f"{path}: {len(data)} bytes; an answer file is at most {MAX_BYTES}")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not JSON ({exc})") from None
    if isinstance(raw, dict) and raw.get("format") == "relbench-annotations/1":
        raise UserError(f"{path}: answers from a page an older relbench exported (it showed the answer key and "
                        f"took any name); export a page per annotator with --annotator NAME and have it answered")
    try:
        return Submission.model_validate(raw), hashlib.sha256(data).hexdigest()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise UserError(f"{path}: {where}: {err['msg']} (expected the file a relbench export page downloads)") from None


def import_answers(run_dirs, file: str | Path, plan_for=build_plan) -> tuple[int, str, int]:
    """Validate everything first, then merge: (answers merged, annotator, answers an interrupted
    import of this same file had merged already)."""
    path = Path(file)
    sub, digest = _load(path)
    with annotator_lock(run_dirs, sub.annotator, "relbench annotate --import"):  # no server of this name runs
        return _merge(path, sub, digest, run_dirs, plan_for)


def _merge(path: Path, sub: Submission, digest: str, run_dirs, plan_for) -> tuple[int, str, int]:
    dirs = [Path(d).resolve() for d in run_dirs]
    ledger_path = dirs[0] / HUMAN_DIR / "exports.json"
    ledger = _read_ledger(ledger_path)
    export = (ledger.get("exports") or {}).get(sub.export)
    if export is None or not ledger.get("secret"):
        raise UserError(f"{path}: export {sub.export!r} was not written by `relbench annotate --export` for "
                        f"{dirs[0]} (import with the run directories it was exported from, first one first)")
    if export.get("annotator") != sub.annotator:
        raise UserError(f"{path}: export {sub.export} is {export.get('annotator')!r}'s page, but the file says "
                        f"{sub.annotator!r} (one page per annotator: export another with --annotator)")
    want = _token(ledger["secret"], sub.export, sub.plan, sub.annotator)
    if not hmac.compare_digest(sub.token.encode(), want.encode()):
        raise UserError(f"{path}: token does not match export {sub.export}, plan {sub.plan} and annotator "
                        f"{sub.annotator}: the file was altered")
    for rec in ledger.get("imports") or []:
        if rec.get("sha256") == digest:
            raise UserError(f"{path}: this file was already imported ({rec.get('time')}); nothing merged")
    plan = plan_for(dirs, n=export["n"], seed=export["seed"], question=export.get("question", "caption"))
    if plan.id != sub.plan or plan.id != export["plan"]:
        raise UserError(f"{path}: answers are for plan {sub.plan}, but {', '.join(map(str, dirs))} now give plan "
                        f"{plan.id} (same run directories, in the same order, unchanged since the export?)")
    shown = plan.for_annotator(sub.annotator)  # the items and caption orders export_page gave this annotator
    items = {_page_id(ledger["secret"], sub.export, it.id): it for it in shown.items}
    source = f"import:{digest[:16]}"
    have = {a.item: a for a in annotator_answers(plan.run_dirs, sub.annotator)}
    seen: set[str] = set()
    records = []
    done = 0
    for k, a in enumerate(sub.answers):
        item = items.get(a.item)
        if item is None:
            raise UserError(f"{path}: answers.{k}: unknown item {a.item!r} (not an item of export {sub.export})")
        if a.item in seen:
            raise UserError(f"{path}: answers.{k}: item {a.item} answered twice in one file")
        seen.add(a.item)
        if a.choice > item.n_choices:
            raise UserError(f"{path}: answers.{k}: choice {a.choice} out of range (0 can't tell, 1-{item.n_choices})")
        standing = have.get(item.id)
        if standing is not None and standing.source == source:
            done += 1  # merged by an interrupted import of this very file
            continue
        if standing is not None:
            raise UserError(f"{path}: answers.{k}: {sub.annotator} already has an answer to item {a.item} "
                            f"(a duplicate submission?); nothing merged")
        records.append((item, answer_for(plan, item, sub.annotator, a.choice, source=source,
                                   time=a.time.astimezone(timezone.utc).isoformat(timespec="microseconds"))))
    by_file: dict[Path, list] = {}
    for item, rec in records:
        by_file.setdefault(answers_path(plan.run_dirs[item.run_dir], sub.annotator), []).append(rec)
    files = []
    for f, recs in by_file.items():
        old = f.read_text(encoding="utf-8") if f.is_file() else ""
        if old and not old.endswith("\n"):
            old = old[: old.rfind("\n") + 1]  # a torn last line was never an answer
        files.append((f, (old + "".join(r.model_dump_json() + "\n" for r in recs)).encode("utf-8")))
    write_all(files)  # all staged before any is renamed: a full disk changes no run directory
    ledger.setdefault("imports", []).append({"sha256": digest, "export": sub.export, "annotator": sub.annotator,
                                             "answers": len(records) + done, "time": now()})
    _write_ledger(ledger_path, ledger)  # last: until it is written, the same file may be imported again
    return len(records), sub.annotator, done
