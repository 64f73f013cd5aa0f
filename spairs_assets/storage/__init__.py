"""Storage: the filesystem root, content-addressed images, Parquet tables, the DuckDB catalogue
and the per-item cache. Every path the platform writes goes through `Storage`."""

from spairs_assets.storage.cache import ItemCache, cache_key
from spairs_assets.storage.catalog import Catalog
from spairs_assets.storage.fs import Storage
from spairs_assets.storage.images import ImageStore, StoredImage
from spairs_assets.storage.tables import SchemaError, TableStore, content_hash

__all__ = [
    "Catalog",
    "ImageStore",
    "ItemCache",
    "SchemaError",
    "Storage",
    "StoredImage",
    "TableStore",
    "cache_key",
    "content_hash",
]
