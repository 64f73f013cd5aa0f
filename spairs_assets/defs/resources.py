"""The one resource every asset uses: configuration and storage."""


from typing import TYPE_CHECKING

import dagster as dg
from pydantic import PrivateAttr

from spairs_assets.config import SpairsConfig, load_config

if TYPE_CHECKING:  # storage pulls in numpy/pyarrow/duckdb: loaded when a step first needs it
    from spairs_assets.storage import Catalog, ImageStore, ItemCache, Storage, TableStore


class SpairsResource(dg.ConfigurableResource):
    """Loads `spairs.yaml` (or `$SPAIRS_CONFIG`) and opens the data root.

    Set `config_path` to point a deployment at another file; leave it empty to use the same
    file the code location read its partitions from.
    """

    config_path: str | None = None
    _config: SpairsConfig | None = PrivateAttr(default=None)
    _storage: "Storage | None" = PrivateAttr(default=None)

    @property
    def config(self) -> SpairsConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def storage(self) -> "Storage":
        if self._storage is None:
            from spairs_assets.storage import Storage

            self._storage = Storage(self.config.data_url)
        return self._storage

    @property
    def tables(self) -> "TableStore":
        from spairs_assets.storage import TableStore

        return TableStore(self.storage)

    @property
    def images(self) -> "ImageStore":
        from spairs_assets.storage import ImageStore

        return ImageStore(self.storage)

    @property
    def catalog(self) -> "Catalog":
        from spairs_assets.storage import Catalog

        return Catalog(self.storage)

    def cache(self, stage: str) -> "ItemCache":
        from spairs_assets.storage import ItemCache

        return ItemCache(self.storage, stage)
