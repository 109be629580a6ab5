"""The model tier: an in-process Model (no gRPC server), real LMDB in a temp directory,
manifests given as ComponentDecls through a fake resolver."""

import shutil
import tempfile
from pathlib import Path

import pytest

from component_manager import actions
from component_manager.model.model import Model
from component_manager.model.resolver import ResolvedComponent


class DeclResolver:
    """Resolves ``file:///decls/NAME`` to ``decls[NAME]``: the real Resolver's interface."""

    def __init__(self, decls: dict, package_dir: Path):
        self.decls = decls
        self.package_dir = package_dir

    def resolve(self, url: str, fresh: bool = False) -> ResolvedComponent:
        from component_manager.errors import UrlError

        name = url.rsplit("/", 1)[-1]
        if name not in self.decls:
            raise UrlError(url, "no such component")
        return ResolvedComponent(url, self.decls[name], self.package_dir)

    def cached(self, url: str) -> ResolvedComponent | None:
        return self.resolve(url) if url.rsplit("/", 1)[-1] in self.decls else None


@pytest.fixture
def make_model():
    folders, models = [], []

    def make(decls: dict, root: str = "root", state_dir: Path | None = None) -> Model:
        if state_dir is None:
            state_dir = Path(tempfile.mkdtemp(prefix="cm-model-"))
            folders.append(state_dir)
        model = Model(state_dir, f"file:///decls/{root}")
        model.resolver = DeclResolver(decls, state_dir)
        models.append(model)
        actions.boot(model)
        return model

    yield make
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
