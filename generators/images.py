"""Images made elsewhere: a folder of files, scored as if a generator had drawn them.

Three layouts: ``export`` (the names `relbench export` wrote in requests.jsonl), ``geneval``
(GenEval's generation script: ``<index:05d>/metadata.jsonl`` holding the prompt and
``<index:05d>/samples/<k:05d>.png``) and ``t2i_compbench`` (T2I-CompBench's: ``samples/<prompt>_<n:06d>.png``,
n counting over the whole folder). The latter two know only prompts: the image of a case drawn
with the k-th of the benchmark's ``seeds`` is the prompt's k-th sample (in number order).

Every file is found and checked in ``prepare``, at plan time, so a missing, unreadable or
wrongly sized file is one line before any model loads; the fingerprint is the content of the
files each request gets, so replacing a file rescores it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from relbench.errors import UserError
from relbench.plugin.generator import Generator, GeneratorArgs
from relbench.plugin.registry import register_generator

_SHOWN = 5  # problems named in the refusal


class ImagesArgs(GeneratorArgs):
    dir: str
    layout: Literal["export", "geneval", "t2i_compbench"] = "export"
    resize: bool = False  # scale a file of another size to the requested one (else it is refused)
    allow_missing: bool = False  # leave out the cases whose files are missing or unusable, and say how many


@register_generator("images")
class ImagesGenerator(Generator):
    """Images made elsewhere, read from a folder (an export, or a GenEval or T2I-CompBench folder)."""

    Args = ImagesArgs
    # keyed on the whole request: the file a request gets is decided by the folder, not by the harness
    uses = frozenset({"prompt", "graph"})
    verb = "loaded"

    def __init__(self, args, ctx):
        super().__init__(args, ctx)
        self._files: dict = {}  # Request -> Path, set by prepare
        self._identity = None

    def prepare(self, wanted) -> list[str]:
        root = Path(self.args.dir)
        if not root.is_dir():
            raise UserError(f"dir: {root} is not a directory (the folder of images to score)")
        find = {"export": _ExportLayout, "geneval": _GenevalLayout, "t2i_compbench": _CompbenchLayout}[
            self.args.layout](root)
        checked: dict[Path, str | None] = {}  # path -> problem (None: usable)
        files, needed, bad, left = {}, set(), {}, []
        for w in wanted:
            path, problem = find(w)
            if problem is None:
                if path not in checked:
                    checked[path] = self._check(path, w.request.size)
                problem = checked[path]
            name = path.relative_to(root).as_posix() if path else problem
            needed.add(name)
            if problem is None:
                files[w.request] = path
            else:
                bad.setdefault(name, problem)
                left.append(w.case_id)
        if bad and not self.args.allow_missing:
            shown = "; ".join(name if name == why else f"{name} ({why})" for name, why in list(bad.items())[:_SHOWN])
            raise UserError(f"dir: {len(bad)} of {len(needed)} images missing or unusable in {root} (layout "
                            f"{self.args.layout}), first: {shown}; draw them, or set allow_missing: true to leave "
                            f"their cases out")
        self._files, self._identity = files, None
        return list(dict.fromkeys(left))

    def _check(self, path: Path, size: tuple[int, int]) -> str | None:
        from PIL import Image, UnidentifiedImageError

        if not path.is_file():
            return "missing"
        try:
            with Image.open(path) as im:
                have = im.size
        except (UnidentifiedImageError, OSError, ValueError):
            return "not an image"
        if have != tuple(size) and not self.args.resize:
            return f"{have[0]}x{have[1]}, the run asks for {size[0]}x{size[1]}; or set resize: true"
        return None

    def fingerprint_args(self) -> dict:
        # the folder's place and allow_missing change no image: the files' content is the identity
        return {"resize": self.args.resize}

    def weights_identity(self):
        """sha256 of what each request gets: (request, content of its file), over every file used."""
        if self._identity is None and self._files:
            import hashlib

            from relbench.io.content_hash import files_sha256
            from relbench.spec.data import graph_to_json

            reqs = list(self._files)
            digests = files_sha256([self._files[r] for r in reqs])
            pairs = sorted([r.prompt, graph_to_json(r.graph), r.seed, list(r.size), d] for r, d in zip(reqs, digests))
            blob = json.dumps(pairs, separators=(",", ":")).encode()
            self._identity = {"files": len(set(self._files.values())), "sha256": hashlib.sha256(blob).hexdigest()}
        return self._identity

    def generate(self, requests):
        import numpy as np
        from PIL import Image

        out = []
        for r in requests:
            path = self._files.get(r)
            if path is None:
                raise UserError(f"dir: no file was found for the prompt {r.prompt!r} (seed {r.seed})")
            try:
                with Image.open(path) as im:
                    im = im.convert("RGB")
            except OSError as exc:  # changed, or truncated past its header, since the plan checked it
                raise UserError(f"dir: {path}: cannot be read as an image ({exc})") from None
            if im.size != tuple(r.size):
                if not self.args.resize:
                    raise UserError(f"dir: {path} is {im.size[0]}x{im.size[1]} now; the run asks for "
                                    f"{r.size[0]}x{r.size[1]} (it changed since the run was planned)")
                im = im.resize(tuple(r.size), Image.Resampling.LANCZOS)
            out.append(np.asarray(im, dtype=np.uint8))
        return out


class _ExportLayout:
    """requests.jsonl's lines: a request finds its file by the fields the export deduplicated on."""

    def __init__(self, root: Path):
        from relbench.engine.export import identity, read_requests

        head, lines = read_requests(root)
        self.root, self.uses, self.identity = root, frozenset(head.get("uses") or ("prompt",)), identity
        self.files = {}
        for line in lines:
            key = identity(line["prompt"], line["graph"], line["seed"], line["width"], line["height"], self.uses)
            self.files.setdefault(key, line["file"])

    def __call__(self, w):
        from relbench.spec.data import graph_to_json

        r = w.request
        name = self.files.get(self.identity(r.prompt, graph_to_json(r.graph), r.seed, *r.size, self.uses))
        if name is None:
            return None, (f"no line of requests.jsonl asks for {r.prompt!r} at seed {r.seed}, {r.size[0]}x{r.size[1]} "
                          f"(export again with this config)")
        return self.root / name, None


class _GenevalLayout:
    """GenEval's folder: the first ``<index>/metadata.jsonl`` holding the prompt gives its samples."""

    def __init__(self, root: Path):
        self.root, self.folders = root, {}
        for d in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{5}", p.name)):
            meta = d / "metadata.jsonl"
            try:
                prompt = json.loads(meta.read_text(encoding="utf-8").splitlines()[0])["prompt"]
            except (OSError, ValueError, IndexError, KeyError, TypeError):
                raise UserError(f"dir: {meta}: not GenEval metadata (a JSON object with a prompt)") from None
            self.folders.setdefault(prompt, d)

    def __call__(self, w):
        d = self.folders.get(w.request.prompt)
        if d is None:
            return None, f"no <index>/metadata.jsonl has the prompt {w.request.prompt!r}"
        return d / "samples" / f"{w.replicate:05d}.png", None


class _CompbenchLayout:
    """T2I-CompBench's folder: ``samples/<prompt>_<n>.png``, a prompt's samples in number order."""

    def __init__(self, root: Path):
        self.root, self.samples = root, {}
        folder = root / "samples"
        if not folder.is_dir():
            raise UserError(f"dir: {folder} is missing (layout t2i_compbench reads samples/<prompt>_<number>.png)")
        found = []
        for p in folder.iterdir():
            m = re.fullmatch(r"(.+)_(\d+)\.png", p.name)
            if m:
                found.append((m.group(1), int(m.group(2)), p))
        for prompt, _, p in sorted(found):
            self.samples.setdefault(prompt, []).append(p)

    def __call__(self, w):
        have = self.samples.get(w.request.prompt, [])
        if w.replicate < len(have):
            return have[w.replicate], None
        name = f"samples/{w.request.prompt}_*.png"
        return None, f"{name}: {len(have)} file(s), sample {w.replicate + 1} wanted"
