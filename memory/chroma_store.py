"""The Chroma side of the image index: one collection per embedding model, our vectors only.

Embedded (`PersistentClient` under the index dir) by default; a Chroma server (`chroma run`,
`HttpClient`) when `chroma_host` is set. Collections are created and opened with
`embedding_function=None`, so Chroma's default embedding function (which downloads a model) can
never run, and every call passes vectors we computed.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.core.disk_full import disk_full_error, is_disk_full
from agent.core.errors import ConfigError, StorageError, one_line

if TYPE_CHECKING:
    import numpy as np

    from agent.core.settings import Settings

COLLECTION_PREFIX = "images-"
# A better-connected graph than Chroma's defaults (100/100/16): on 10k random 512-d unit vectors
# those defaults find only half of the true top 10 (bench/library.py). Fixed at creation.
HNSW_CONFIGURATION = {"space": "cosine", "ef_construction": 200, "ef_search": 200, "max_neighbors": 32}
# Candidates asked of the graph per query. hnswlib searches with max(ef_search, n_results), and this
# Chroma cannot change ef_search after creation, so asking for more results is how a query buys
# recall; only the best k are kept, and metadata is read for those alone.
SEARCH_BREADTH = 400


class ModelMismatchError(ConfigError):
    """Vectors from one embedding model must never be compared with another model's."""


@dataclass(frozen=True)
class EmbeddingModel:
    """What a collection is for: the model's id, its vector width and a digest of its weights."""

    model_id: str
    dim: int
    fingerprint: str

    @property
    def collection_name(self) -> str:
        # Chroma names: 3-512 of [a-zA-Z0-9._-], alphanumeric at both ends.
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.model_id.rstrip("/").split("/")[-1]).strip("-._")[:48]
        return f"{COLLECTION_PREFIX}{slug or 'model'}-{self.dim}-{self.fingerprint[:12]}"


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    model_id: str
    dim: int
    fingerprint: str
    count: int


@dataclass(frozen=True)
class Neighbour:
    id: str
    score: float
    metadata: dict[str, Any]


class ChromaStore:
    """A thin, typed wrapper: Chroma errors become one-line `StorageError`s naming the fix."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        if self.settings.chroma_host:
            return f"Chroma server {self.settings.chroma_host}:{self.settings.chroma_port}"
        return f"embedded Chroma in {self.settings.index_dir / 'chroma'}"

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        host = self.settings.chroma_host
        try:
            if host:
                return chromadb.HttpClient(
                    host=host, port=self.settings.chroma_port, settings=chroma_settings
                )
            path = self.settings.index_dir / "chroma"
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        except Exception as exc:  # chromadb raises many types (ValueError, ConnectError, ...) for this
            if host:
                raise StorageError(
                    f"cannot reach the Chroma server at {host}:{self.settings.chroma_port} ({one_line(exc)}); "
                    "start it with `chroma run --path DIR --port PORT` or unset MODALGRAPH_CHROMA_HOST"
                ) from None
            self._raise_if_disk_full(exc)
            raise StorageError(
                f"cannot open the image index in {self.settings.index_dir}: {one_line(exc)}"
            ) from None

    # ----------------------------------------------------------------- collections

    def collections(self) -> list[CollectionInfo]:
        """Our collections (one per model), with their metadata and record counts."""
        infos = []
        for collection in self._call(self.client.list_collections):
            if not collection.name.startswith(COLLECTION_PREFIX):
                continue
            meta = collection.metadata or {}
            infos.append(
                CollectionInfo(
                    name=collection.name,
                    model_id=str(meta.get("model_id", "?")),
                    dim=int(meta.get("dim", 0)),
                    fingerprint=str(meta.get("fingerprint", "")),
                    count=self._call(collection.count),
                )
            )
        return infos

    def open(self, model: EmbeddingModel, create: bool) -> Any | None:
        """The model's collection; None when it does not exist and `create` is false."""
        from chromadb.errors import NotFoundError

        name = model.collection_name
        if create:
            collection = self._call(
                self.client.get_or_create_collection,
                name=name,
                embedding_function=None,
                configuration={"hnsw": HNSW_CONFIGURATION},
                metadata={"model_id": model.model_id, "dim": model.dim, "fingerprint": model.fingerprint},
            )
        else:
            try:
                collection = self.client.get_collection(name=name, embedding_function=None)
            except NotFoundError:
                return None
            except Exception as exc:
                raise StorageError(f"{self.where}: {one_line(exc)}") from None
        check_model(collection.metadata or {}, model)
        return collection

    # ----------------------------------------------------------------- records

    def count(self, collection: Any) -> int:
        return int(self._call(collection.count))

    def existing_ids(self, collection: Any, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        found = self._call(collection.get, ids=list(ids), include=[])
        return set(found["ids"])

    def all_ids(self, collection: Any, page: int = 5000) -> set[str]:
        ids: set[str] = set()
        offset = 0
        while True:
            found = self._call(collection.get, include=[], limit=page, offset=offset)
            ids.update(found["ids"])
            if len(found["ids"]) < page:
                return ids
            offset += page

    def upsert(self, collection: Any, ids: Sequence[str], vectors: np.ndarray, metadatas: list[dict]) -> None:
        if not ids:
            return
        limit = self._call(self.client.get_max_batch_size)
        for start in range(0, len(ids), limit):
            stop = start + limit
            self._call(
                collection.upsert,
                ids=list(ids[start:stop]),
                embeddings=vectors[start:stop],
                metadatas=metadatas[start:stop],
            )

    def update_metadata(self, collection: Any, ids: Sequence[str], metadatas: list[dict]) -> None:
        """Merge fields into existing records' metadata; vectors are not touched."""
        if not ids:
            return
        limit = self._call(self.client.get_max_batch_size)
        for start in range(0, len(ids), limit):
            stop = start + limit
            self._call(collection.update, ids=list(ids[start:stop]), metadatas=metadatas[start:stop])

    def matching(self, collection: Any, where: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
        """Every record the filter lets through (all of them for None), with its metadata (no vectors)."""
        found = self._call(collection.get, where=where or None, include=["metadatas"])
        return [(id_, dict(meta or {})) for id_, meta in zip(found["ids"], found["metadatas"], strict=True)]

    def count_matching(self, collection: Any, where: dict[str, Any] | None, limit: int) -> int:
        """How many records the filter lets through, counting no further than `limit`: ids only,
        so a probe costs little however large the library."""
        found = self._call(collection.get, where=where or None, limit=limit, include=[])
        return len(found["ids"])

    def vectors(self, collection: Any, ids: Sequence[str]) -> dict[str, np.ndarray]:
        import numpy as np

        if not ids:
            return {}
        found = self._call(collection.get, ids=list(ids), include=["embeddings"])
        return {
            id_: np.asarray(vector, dtype=np.float32)
            for id_, vector in zip(found["ids"], found["embeddings"], strict=True)
        }

    def sample_vectors(self, collection: Any, n: int, blocks: int = 8) -> np.ndarray:
        """Up to `n` stored vectors, read as `blocks` runs spread over the collection: records are
        stored in indexing order, so one run would be one folder."""
        import numpy as np

        count = self._call(collection.count)
        per_block = max(1, n // blocks)
        starts = sorted({int(i * count / blocks) for i in range(blocks)}) if count > n else [0]
        rows: list[Any] = []
        for start in starts:
            found = self._call(
                collection.get, include=["embeddings"], limit=n if count <= n else per_block, offset=start
            )
            rows += list(found["embeddings"])
        return np.asarray(rows, dtype=np.float32)

    def delete(self, collection: Any, ids: Sequence[str]) -> None:
        if ids:
            self._call(collection.delete, ids=list(ids))

    def query(
        self,
        collection: Any,
        model: EmbeddingModel,
        vector: np.ndarray,
        k: int,
        breadth: int = SEARCH_BREADTH,
        where: dict[str, Any] | None = None,
    ) -> list[Neighbour]:
        """Nearest records by cosine similarity (1 - Chroma's cosine distance), best first, among
        those `where` lets through: the filter runs inside the graph search, so k come back
        whenever k match."""
        check_model(collection.metadata or {}, model)
        if vector.shape[-1] != model.dim:
            raise ModelMismatchError(
                f"query vector has {vector.shape[-1]} dimensions but {model.model_id} makes {model.dim}"
            )
        # Chroma returns fewer results when the collection is smaller: no count() round trip needed.
        found = self._call(
            collection.query,
            query_embeddings=vector.reshape(1, -1),
            n_results=max(k, breadth),
            where=where,
            include=["distances"],
        )
        best = list(zip(found["ids"][0], found["distances"][0], strict=True))[:k]
        if not best:
            return []
        records = self._call(collection.get, ids=[id_ for id_, _ in best], include=["metadatas"])
        metadata = dict(zip(records["ids"], records["metadatas"], strict=True))
        return [
            Neighbour(id=id_, score=1.0 - float(distance), metadata=dict(metadata.get(id_) or {}))
            for id_, distance in best
        ]

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModelMismatchError:
            raise
        except Exception as exc:  # chromadb's errors share no base class worth naming
            self._raise_if_disk_full(exc)
            raise StorageError(f"{self.where}: {one_line(exc)}") from None

    def _raise_if_disk_full(self, exc: Exception) -> None:
        """Chroma reports a full disk as "Error in compaction: Failed to apply logs to the metadata
        segment" or a bare SQLite I/O error: say what it is, and where. Embedded Chroma only: a
        server's disk is not the one this machine can measure."""
        if self.settings.chroma_host:
            return
        where = self.settings.index_dir
        if is_disk_full(exc, where):
            raise disk_full_error(where) from None


def check_model(metadata: dict[str, Any], model: EmbeddingModel) -> None:
    """Refuse to mix vectors: the collection must have been built by exactly this model."""
    stored_id = metadata.get("model_id")
    stored_dim = metadata.get("dim")
    stored_fp = metadata.get("fingerprint")
    if stored_dim is not None and int(stored_dim) != model.dim:
        raise ModelMismatchError(
            f"the index was built with {stored_id} ({stored_dim}-d vectors) but the CLIP model now "
            f"configured, {model.model_id}, makes {model.dim}-d vectors; re-run `modalgraph index`"
        )
    if stored_fp is not None and stored_fp != model.fingerprint:
        raise ModelMismatchError(
            f"the index collection was built with different weights ({stored_id}) than the configured "
            f"CLIP model ({model.model_id}); re-run `modalgraph index`"
        )
