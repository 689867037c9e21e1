"""Remote annotators without a server: a self-contained page out, a validated JSON file back.

The page inlines its images (data: URIs), style and script (CSP nonce) and makes no request.
Each export gets an id and a token, HMAC-SHA256(secret, export id | plan id) with a secret that
stays in RUN_DIR/human/exports.json; a returned file is merged only if its token is ours, its
plan is the plan these run directories give, and every answer names an item of that plan with
the image and caption order the page showed. Any refusal is one line and nothing is written;
the merge itself rewrites each answer file atomically (write-temp-and-rename).
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
from relbench.annotate.storage import (
    ANNOTATOR, HUMAN_DIR, annotator_answers, annotator_lock, answer_for, answers_path, check_annotator, now,
)
from relbench.atomic import write_text
from relbench.errors import UserError

FORMAT = "relbench-annotations/1"
MAX_BYTES = 20_000_000


class SubmittedAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str = Field(max_length=64)
    image_key: str = Field(max_length=4096)
    order: tuple[Literal["pos", "neg"], Literal["pos", "neg"]]
    choice: Literal[0, 1, 2]
    time: datetime  # when the annotator answered (the page writes ISO 8601 UTC)


class Submission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["relbench-annotations/1"]
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
    write_text(path, json.dumps(ledger, indent=1) + "\n")
    path.chmod(0o600)  # holds the HMAC secret


def _token(secret: str, export_id: str, plan_id: str) -> str:
    return hmac.new(bytes.fromhex(secret), f"{export_id}|{plan_id}".encode(), hashlib.sha256).hexdigest()


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def export_page(plan: Plan, out_dir: str | Path, annotator: str | None = None) -> Path:
    from markupsafe import Markup

    from relbench.annotate.server import HERE, templates

    if annotator is not None:
        plan = plan.for_annotator(check_annotator(annotator))  # the order this annotator's server would show
    ledger_path = _ledger_path(plan)
    ledger = _read_ledger(ledger_path)
    ledger["secret"] = ledger.get("secret") or secrets.token_hex(32)
    export_id = secrets.token_hex(8)
    ledger.setdefault("exports", {})[export_id] = {
        "plan": plan.id, "n": plan.n, "seed": plan.seed, "annotator": annotator, "created": now(),
        "run_dirs": [str(d) for d in plan.run_dirs],
    }
    payload = {
        "plan": plan.id, "export": export_id, "token": _token(ledger["secret"], export_id, plan.id),
        "annotator": annotator,
        "items": [{"id": it.id, "image": _data_uri(plan.image_path(it)), "image_key": it.image_key,
                   "order": list(it.order), "captions": [it.caption(1), it.caption(2)]} for it in plan.items],
    }
    html = templates().get_template("offline.html.j2").render(
        nonce=secrets.token_urlsafe(16), plan_id=plan.id, total=len(plan.items), payload=payload, guide=guide_for(plan),
        css=Markup((HERE / "static" / "annotate.css").read_text()),
        script=Markup((HERE / "static" / "offline.js").read_text()),
    )
    out = Path(out_dir) / f"annotate-{plan.id}-{export_id}.html"
    write_text(out, html)
    _write_ledger(ledger_path, ledger)
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
    try:
        return Submission.model_validate(raw), hashlib.sha256(data).hexdigest()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise UserError(f"{path}: {where}: {err['msg']} (expected the file a relbench export page downloads)") from None


def import_answers(run_dirs, file: str | Path, plan_for=build_plan) -> tuple[int, str]:
    """Validate everything first, then merge: (answers merged, annotator)."""
    path = Path(file)
    sub, digest = _load(path)
    with annotator_lock(run_dirs, sub.annotator, "relbench annotate --import"):  # no server of this name runs
        return _merge(path, sub, digest, run_dirs, plan_for)


def _merge(path: Path, sub: Submission, digest: str, run_dirs, plan_for) -> tuple[int, str]:
    dirs = [Path(d).resolve() for d in run_dirs]
    ledger_path = dirs[0] / HUMAN_DIR / "exports.json"
    ledger = _read_ledger(ledger_path)
    export = (ledger.get("exports") or {}).get(sub.export)
    if export is None or not ledger.get("secret"):
        raise UserError(f"{path}: export {sub.export!r} was not written by `relbench annotate --export` for "
                        f"{dirs[0]} (import with the run directories it was exported from, first one first)")
    if not hmac.compare_digest(sub.token, _token(ledger["secret"], sub.export, sub.plan)):
        raise UserError(f"{path}: token does not match export {sub.export} and plan {sub.plan}: the file was altered")
    for rec in ledger.get("imports") or []:
        if rec.get("sha256") == digest:
            raise UserError(f"{path}: this file was already imported ({rec.get('time')}); nothing merged")
    if export.get("annotator") and export["annotator"] != sub.annotator:
        raise UserError(f"{path}: exported for annotator {export['annotator']!r}, but the file says {sub.annotator!r}")
    plan = plan_for(dirs, n=export["n"], seed=export["seed"])
    if plan.id != sub.plan or plan.id != export["plan"]:
        raise UserError(f"{path}: answers are for plan {sub.plan}, but {', '.join(map(str, dirs))} now give plan "
                        f"{plan.id} (same run directories, in the same order, unchanged since the export?)")
    shown = plan.for_annotator(sub.annotator) if export.get("annotator") else plan  # as export_page ordered it
    have = {a.item for a in annotator_answers(plan.run_dirs, sub.annotator)}
    seen: set[str] = set()
    records = []
    for k, a in enumerate(sub.answers):
        item = shown.by_id.get(a.item)
        if item is None:
            raise UserError(f"{path}: answers.{k}: unknown item {a.item!r} (not in plan {plan.id})")
        if a.image_key != item.image_key:
            raise UserError(f"{path}: answers.{k}: image {a.image_key[:16]}... is not the image of item {a.item} "
                            f"(another run's images?)")
        if tuple(a.order) != item.order:
            raise UserError(f"{path}: answers.{k}: caption order {list(a.order)} is not the order item {a.item} was shown in")
        if a.item in seen:
            raise UserError(f"{path}: answers.{k}: item {a.item} answered twice in one file")
        if a.item in have:
            raise UserError(f"{path}: answers.{k}: {sub.annotator} already has an answer to item {a.item} "
                            f"(a duplicate submission?); nothing merged")
        seen.add(a.item)
        records.append((item, answer_for(plan, item, sub.annotator, a.choice, source=f"import:{digest[:16]}",
                                   time=a.time.astimezone(timezone.utc).isoformat(timespec="microseconds"))))
    # merge: one atomic rewrite per answer file, then the ledger
    by_file: dict[Path, list] = {}
    for item, rec in records:
        by_file.setdefault(answers_path(plan.run_dirs[item.run_dir], sub.annotator), []).append(rec)
    for f, recs in by_file.items():
        old = f.read_text(encoding="utf-8") if f.is_file() else ""
        if old and not old.endswith("\n"):
            old = old[: old.rfind("\n") + 1]  # a torn last line was never an answer
        write_text(f, old + "".join(r.model_dump_json() + "\n" for r in recs))
    ledger.setdefault("imports", []).append({"sha256": digest, "export": sub.export, "annotator": sub.annotator,
                                             "answers": len(records), "time": now()})
    _write_ledger(ledger_path, ledger)
    return len(records), sub.annotator
