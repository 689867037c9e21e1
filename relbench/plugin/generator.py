"""The generator interface every plugin implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from relbench.spec.data import Request, stable_hash
from relbench.plugin.context import Context


class GeneratorArgs(BaseModel):
    """A plugin's arguments from benchmark.yaml; unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


@dataclass(frozen=True)
class Wanted:
    """One image a run will ask for, and where it sits in the benchmark: what a generator that
    reads images made elsewhere needs to find the file drawn for it (see ``Generator.prepare``)."""

    request: Request
    case_id: str
    side: str  # "pos" (g+) or "neg" (g-)
    replicate: int  # index of the case's seed in the benchmark's `seeds`


class Generator(ABC):
    """Base class: draws a batch of requests into uint8 RGB arrays (H, W, 3); a subclass
    implements ``generate`` (an incomplete one cannot be instantiated).

    Contract: an image depends only on its own request (never on the rest of its batch), so
    the harness may batch, shard and resume freely.
    """

    name: ClassVar[str] = ""
    Args: ClassVar[type[GeneratorArgs]] = GeneratorArgs
    #: which request fields the images depend on; the image store keys on exactly these
    uses: ClassVar[frozenset[str]] = frozenset({"prompt", "graph"})
    #: explicit override: images are keyed by the plugin's code already (``code_identity``);
    #: bump this to redraw when something outside the code changes them
    version: ClassVar[str] = "1"
    #: largest per-pixel difference (0-255 levels) allowed between an image drawn in a batch and
    #: drawn alone: float kernels of neural generators round differently with the batch size
    #: (the tiny FLUX: 1 level on ~0.03% of pixels), which is not a dependence on other requests
    batch_tolerance: ClassVar[int] = 0
    #: what the terminal says ``generate`` did: "loaded" for a generator of files made elsewhere
    verb: ClassVar[str] = "generated"

    def __init__(self, args: GeneratorArgs, ctx: Context):
        self.args = args
        self.ctx = ctx

    def prepare(self, wanted: list[Wanted]) -> list[str]:
        """Called with every image of the run (in case order) before ``fingerprint`` and before
        anything is drawn or scored: at plan time, and again on the generating instance. A
        generator of files made elsewhere finds and checks them here (raising UserError to refuse
        the run) and returns the ids of the cases it leaves out; the run drops them. Default: none."""
        return []

    def weights_identity(self) -> Any:
        """Identity of the weights the images depend on (file hashes, hub revision); None if none."""
        return None

    def code_identity(self) -> dict:
        """Digest of the plugin's source and the relbench modules it imports, with the versions of
        the libraries it imports: editing a generator redraws its images."""
        from relbench.io.code_identity import code_identity

        return code_identity(type(self))

    def fingerprint_args(self) -> dict:
        """The validated arguments images depend on (all of them unless a plugin says otherwise)."""
        return self.args.model_dump(mode="json")

    def fingerprint_parts(self) -> dict:
        """What the fingerprint hashes, kept in manifest.json so a changed one can say what changed."""
        return {"generator": self.name, "version": self.version, "code": self.code_identity(),
                "args": self.fingerprint_args(), "weights": self.weights_identity()}

    def fingerprint(self) -> str:
        """Stable across processes and machines for the same code, configuration and weights."""
        return stable_hash(self.fingerprint_parts())

    def run_info(self, requests: list[Request]) -> dict:
        """Facts about how a run's images are drawn, for its manifest entry (e.g. how many were
        drawn without a layout); a function of all the run's requests, drawn now or cached."""
        return {}

    @abstractmethod
    def generate(self, requests: list[Request]):  # -> list[np.ndarray]
        """One uint8 (height, width, 3) image per request, of the request's size."""

    def close(self) -> None:
        """Release models before the next run's generator is built."""
