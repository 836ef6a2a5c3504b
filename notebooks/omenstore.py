"""Reading an omen store from a notebook: a local folder or ``s3://bucket/prefix``.

The store is found through ``OMEN_STORE`` (as the ``omen`` CLI finds it); without it,
``./omen-data``, or ``../omen-data`` when the notebooks are opened from ``notebooks/`` of a
checkout where ``omen quickstart`` wrote its store. The registry is ``<store>/registry`` unless
``OMEN_REGISTRY`` names another path or ``s3://`` URL.

S3 credentials and endpoint come from the usual environment variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` or
``AWS_ENDPOINT``, ``AWS_ALLOW_HTTP``): Polars reads the Parquet datasets with them, boto3 lists
the store and reads its JSON records.

A dataset a notebook cannot do without is opened with ``required=True`` and its absence raises
:class:`MissingDataset`, naming the dataset, the store and the command that writes it; an
optional one that is absent is reported with :func:`note` and comes back as ``None``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

# What writes each dataset, for the messages about missing ones.
WRITERS = {
    "requests": "omen ingest logs … (or omen quickstart)",
    "commits": "omen ingest commits … (or omen quickstart)",
    "commit_files": "omen ingest commits … (or omen quickstart)",
    "metrics": "omen ingest metrics … (or omen quickstart)",
    "deployments": "omen ingest deployments … (or omen quickstart)",
    "features": "omen features build (or omen quickstart)",
    "profiles": "omen profiles fit",
    "scores": "omen-serve with this store (its score log writes scores/)",
    "anomalies": "omen detect",
    "registry": "omen train … or omen profiles fit (they register what they fit)",
}

# AWS_* variables that Polars' object store understands, by the key Polars takes.
_AWS_KEYS = [
    ("aws_access_key_id", ["AWS_ACCESS_KEY_ID"]),
    ("aws_secret_access_key", ["AWS_SECRET_ACCESS_KEY"]),
    ("aws_session_token", ["AWS_SESSION_TOKEN"]),
    ("aws_region", ["AWS_REGION", "AWS_DEFAULT_REGION"]),
    ("aws_endpoint", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]),
    ("aws_allow_http", ["AWS_ALLOW_HTTP"]),
]


class MissingDataset(RuntimeError):
    """A dataset the notebook needs is not in the store."""


def note(message: str) -> None:
    """Says, in the notebook's output, why a section shows less than it could."""
    print(f"NOTE: {message}")


def _first_env(names: list[str]) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


@dataclass
class Store:
    """A store root: a local folder or an ``s3://`` URL."""

    url: str
    storage_options: dict = field(default_factory=dict)

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # --- low level: keys and objects ---------------------------------------------------------

    def path(self, rel: str) -> str:
        """The URL (or local path) of ``rel`` under the root, as Polars takes it."""
        return f"{self.url.rstrip('/')}/{rel.lstrip('/')}"

    def _s3(self):
        import boto3

        endpoint = _first_env(["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"])
        region = _first_env(["AWS_REGION", "AWS_DEFAULT_REGION"])
        client = boto3.client("s3", endpoint_url=endpoint, region_name=region)
        bucket, _, prefix = self.url[len("s3://"):].partition("/")
        return client, bucket, prefix.strip("/")

    def keys(self, prefix: str) -> list[str]:
        """Objects under ``prefix`` (relative to the root), sorted; empty when there are none."""
        prefix = prefix.strip("/")
        if self.is_s3:
            client, bucket, root = self._s3()
            full = f"{root}/{prefix}/" if root else f"{prefix}/"
            out = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=full):
                for o in page.get("Contents", []):
                    out.append(o["Key"][len(root) + 1 if root else 0:])
            return sorted(out)
        base = Path(self.url.removeprefix("file://"))
        start = base / prefix
        if not start.is_dir():
            return []
        return sorted(str(p.relative_to(base)) for p in start.rglob("*") if p.is_file())

    def read_bytes(self, rel: str) -> bytes:
        if self.is_s3:
            client, bucket, root = self._s3()
            key = f"{root}/{rel}" if root else rel
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return (Path(self.url.removeprefix("file://")) / rel).read_bytes()

    def read_json(self, rel: str):
        return json.loads(self.read_bytes(rel))

    # --- datasets -------------------------------------------------------------------------------

    def has(self, dataset: str) -> bool:
        """Whether ``dataset/`` holds at least one Parquet file."""
        return any(k.endswith(".parquet") for k in self.keys(dataset))

    def scan(self, dataset: str, required: bool = True) -> pl.LazyFrame | None:
        """``dataset/`` as one lazy frame, hive partition keys (``service``, ``date``) as columns.

        Files of one dataset may differ in columns (the feature table of a service without some
        metric); missing columns read as null.
        """
        if not self.has(dataset):
            message = f"{dataset}/ is not in the store {self.url}; {WRITERS.get(dataset, 'omen')} writes it"
            if required:
                raise MissingDataset(message)
            note(message)
            return None
        return pl.scan_parquet(
            self.path(f"{dataset}/**/*.parquet"),
            hive_partitioning=True,
            missing_columns="insert",
            storage_options=self.storage_options or None,
        )

    def read_parquet(self, rel: str) -> pl.DataFrame:
        return pl.read_parquet(self.path(rel), storage_options=self.storage_options or None)

    # --- the registry ---------------------------------------------------------------------------

    def registry(self, required: bool = False) -> "Registry":
        """omen's registry: ``OMEN_REGISTRY`` when it names a path or s3:// URL, else ``<store>/registry``.

        With ``required``, a registry without any model raises :class:`MissingDataset`.
        """
        url = os.environ.get("OMEN_REGISTRY")
        if url and url.startswith(("mlflow+http://", "mlflow+https://")):
            raise MissingDataset(
                f"OMEN_REGISTRY={url} is an MLflow server: read it with mlflow.MlflowClient "
                "(these notebooks read omen's own registry)"
            )
        root = open_store(url, quiet=True, must_exist=False) if url else Store(self.path("registry"), self.storage_options)
        registry = Registry(root)
        if required and not registry.models():
            where = f"the registry {url}" if url else f"the store {self.url}"
            raise MissingDataset(f"registry/ is not in {where} (no model version in it); {WRITERS['registry']}")
        return registry


@dataclass
class Registry:
    """omen's own registry: ``models/<name>/versions/<n>.json``, ``aliases/<alias>/<n>.json``,
    ``deleted/<n>.json`` (see ``models/src/registry/store.rs``)."""

    root: Store

    def models(self) -> list[str]:
        names = set()
        for k in self.root.keys("models"):
            parts = k.split("/")
            if len(parts) >= 4 and parts[2] == "versions" and parts[3].endswith(".json"):
                names.add(parts[1])
        return sorted(names)

    def versions(self, name: str) -> list[dict]:
        """Every version record of ``name``, oldest first, with ``deleted`` set for tombstoned ones."""
        deleted = {k.rsplit("/", 1)[-1] for k in self.root.keys(f"models/{name}/deleted")}
        out = []
        for k in self.root.keys(f"models/{name}/versions"):
            if not k.endswith(".json"):
                continue
            rec = self.root.read_json(k)
            rec["deleted"] = k.rsplit("/", 1)[-1] in deleted
            out.append(rec)
        return sorted(out, key=lambda r: r["version"])

    def alias_log(self, name: str) -> list[dict]:
        """Every move of every alias of ``name``, oldest first; the newest per alias is current."""
        out = []
        for k in self.root.keys(f"models/{name}/aliases"):
            if k.endswith(".json"):
                rec = self.root.read_json(k)
                rec["seq"] = int(k.rsplit("/", 1)[-1].removesuffix(".json"))
                out.append(rec)
        return sorted(out, key=lambda r: (r["alias"], r["seq"]))

    def aliases(self, name: str) -> dict[str, int]:
        current: dict[str, int] = {}
        for rec in self.alias_log(name):
            current[rec["alias"]] = rec["version"]
        return current


def open_store(url: str | None = None, quiet: bool = False, must_exist: bool = True) -> Store:
    """The store named by ``url``, else ``OMEN_STORE``, else ``./omen-data`` (or ``../omen-data``)."""
    url = url or os.environ.get("OMEN_STORE")
    if not url:
        here = Path("omen-data")
        url = str(here if here.exists() or not Path("../omen-data").exists() else Path("../omen-data"))
    if url.startswith(("gs://", "az://", "abfs://")):
        raise MissingDataset(f"{url}: these notebooks read local and s3:// stores")
    options = {}
    if url.startswith("s3://"):
        for key, names in _AWS_KEYS:
            v = _first_env(names)
            if v:
                options[key] = v
    else:
        local = Path(url.removeprefix("file://")).expanduser().resolve()
        if must_exist and not local.is_dir():
            raise MissingDataset(f"the store {local} does not exist; set OMEN_STORE or run omen quickstart")
        url = str(local)
    store = Store(url, options)
    if not quiet:
        print(f"store: {store.url}")
    return store


# --- small statistics shared by the notebooks ----------------------------------------------------


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (95 % by default); (nan, nan) for n = 0."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, centre - half), min(1.0, centre + half))


# Bucket widths for plots over time, with the Polars duration string of each.
_BUCKETS = [
    (1, "1s"), (10, "10s"), (60, "1m"), (300, "5m"), (900, "15m"), (3600, "1h"), (3 * 3600, "3h"), (6 * 3600, "6h"),
    (86400, "1d"), (7 * 86400, "1w"),
]


def time_bucket(span_seconds: float, target: int = 60) -> str:
    """A bucket width giving at most about ``target`` buckets over ``span_seconds``."""
    for seconds, every in _BUCKETS:
        if span_seconds / seconds <= target:
            return every
    return _BUCKETS[-1][1]
