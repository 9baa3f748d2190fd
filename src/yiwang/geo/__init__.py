"""Geo kit: coordinates, H3 cells, the in-memory polygon index, GeoJSON and file import.

Imports nothing from the domain modules (see docs/architecture.md): everything here works on
plain numbers, Shapely geometries and dictionaries, so every module can use it.
"""
