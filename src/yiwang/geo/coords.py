"""Chinese map-service coordinate systems at the edges; WGS-84/CGCS2000 inside.

Yiwang stores WGS-84 (EPSG:4326; CGCS2000, EPSG:4490, is the same to well under a metre at
district scale). Amap and Tencent give GCJ-02, Baidu gives BD-09 (a second shift on top of
GCJ-02). The GCJ-02 shift is the public series on the Krasovsky ellipsoid; it has no closed
inverse, so the inverse iterates until the forward shift of the estimate lands on the input.

Every function takes scalars or NumPy arrays (of any shape) and returns the same.
"""

from __future__ import annotations

import enum
import math
from typing import TypeVar, overload

import numpy as np
import numpy.typing as npt

A = 6378245.0  # Krasovsky 1940 semi-major axis
EE = 0.00669342162296594323  # its first eccentricity squared
BD_X_PI = math.pi * 3000.0 / 180.0
EARTH_RADIUS_M = 6371008.8  # mean radius, for distances

FloatArray = npt.NDArray[np.float64]
Number = TypeVar("Number", float, FloatArray)

#: where maps open before they know better (the reference district, Lishui)
DEFAULT_CENTRE = (119.03, 31.60)


class CRS(enum.StrEnum):
    """The coordinate systems Yiwang accepts at its edges."""

    WGS84 = "wgs84"  # also CGCS2000 (天地图), GPS
    GCJ02 = "gcj02"  # Amap (高德), Tencent
    BD09 = "bd09"  # Baidu


def _arr(value: float | FloatArray) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


def _out(value: FloatArray, like: float | FloatArray) -> float | FloatArray:
    return float(value) if np.ndim(like) == 0 else value


def out_of_china(lon: FloatArray, lat: FloatArray) -> npt.NDArray[np.bool_]:
    """Points the GCJ-02 shift leaves alone (the rectangle the public algorithm uses)."""
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _transform_lat(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * math.pi) + 40.0 * np.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * math.pi) + 320 * np.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * math.pi) + 40.0 * np.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * math.pi) + 300.0 * np.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def _gcj_delta(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = 1 - EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((A * (1 - EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (A / sqrtmagic * np.cos(radlat) * math.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_gcj02(lon, lat):  # type: ignore[no-untyped-def]
    x, y = _arr(lon), _arr(lat)
    dx, dy = _gcj_delta(x, y)
    return _out(x + dx, lon), _out(y + dy, lat)


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_wgs84(lon, lat):  # type: ignore[no-untyped-def]
    """Invert the shift by fixed-point iteration: the shift varies slowly (a few metres per
    kilometre), so each step gains about three decimal digits; 10 steps reach 1e-9 degrees."""
    gx, gy = _arr(lon), _arr(lat)
    x, y = gx.copy(), gy.copy()
    for _ in range(10):
        dx, dy = _gcj_delta(x, y)
        ex, ey = x + dx - gx, y + dy - gy
        x, y = x - ex, y - ey
        if (
            float(np.max(np.abs(ex), initial=0.0)) < 1e-10
            and float(np.max(np.abs(ey), initial=0.0)) < 1e-10
        ):
            break
    return _out(x, lon), _out(y, lat)


@overload
def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_bd09(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_bd09(lon, lat):  # type: ignore[no-untyped-def]
    x, y = _arr(lon), _arr(lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * BD_X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * BD_X_PI)
    return _out(z * np.cos(theta) + 0.0065, lon), _out(z * np.sin(theta) + 0.006, lat)


@overload
def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_gcj02(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_gcj02(lon, lat):  # type: ignore[no-untyped-def]
    """The usual closed-form inverse is only good to a few decimetres; refine it by
    iterating the exact forward formula so that the round trip stays under a millimetre."""
    bx, by = _arr(lon), _arr(lat)
    x, y = bx - 0.0065, by - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * BD_X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * BD_X_PI)
    x, y = z * np.cos(theta), z * np.sin(theta)
    for _ in range(5):
        fx, fy = gcj02_to_bd09(x, y)
        x, y = x - (fx - bx), y - (fy - by)
    return _out(x, lon), _out(y, lat)


@overload
def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_bd09(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_bd09(lon, lat):  # type: ignore[no-untyped-def]
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


@overload
def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_wgs84(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_wgs84(lon, lat):  # type: ignore[no-untyped-def]
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


@overload
def to_wgs84(lon: float, lat: float, crs: CRS) -> tuple[float, float]: ...
@overload
def to_wgs84(lon: FloatArray, lat: FloatArray, crs: CRS) -> tuple[FloatArray, FloatArray]: ...
def to_wgs84(lon, lat, crs):  # type: ignore[no-untyped-def]
    """Coordinates in ``crs`` to WGS-84, the form Yiwang stores."""
    if crs is CRS.GCJ02:
        return gcj02_to_wgs84(lon, lat)
    if crs is CRS.BD09:
        return bd09_to_wgs84(lon, lat)
    return lon, lat


@overload
def from_wgs84(lon: float, lat: float, crs: CRS) -> tuple[float, float]: ...
@overload
def from_wgs84(lon: FloatArray, lat: FloatArray, crs: CRS) -> tuple[FloatArray, FloatArray]: ...
def from_wgs84(lon, lat, crs):  # type: ignore[no-untyped-def]
    """WGS-84 to ``crs``, for clients that draw on a Chinese map service's tiles."""
    if crs is CRS.GCJ02:
        return wgs84_to_gcj02(lon, lat)
    if crs is CRS.BD09:
        return wgs84_to_bd09(lon, lat)
    return lon, lat


def haversine_m(
    lon1: float | FloatArray,
    lat1: float | FloatArray,
    lon2: float | FloatArray,
    lat2: float | FloatArray,
) -> float | FloatArray:
    """Great-circle distance in metres."""
    p1, p2 = np.radians(_arr(lat1)), np.radians(_arr(lat2))
    dp = p2 - p1
    dl = np.radians(_arr(lon2) - _arr(lon1))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
    scalar = all(np.ndim(v) == 0 for v in (lon1, lat1, lon2, lat2))
    return float(d) if scalar else d


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """``haversine_m`` for two points, in plain floats (about twenty times faster than the
    array version on scalars: for loops over candidates)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(h, 1.0)))
