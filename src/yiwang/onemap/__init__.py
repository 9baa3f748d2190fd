"""一张图 (onemap): the layer registry served as OGC API - Features and vector tiles, the map
page and the base-data statistics pages. Layers come from the modules (``registry.layers``)."""
