import numpy as np
import pytest

from yiwang.geo import coords
from yiwang.geo.coords import CRS


def test_gcj02_and_bd09_match_the_published_reference_values() -> None:
    # The reference values published with the widely used coordTransform implementations.
    assert coords.wgs84_to_gcj02(128.543, 37.065) == pytest.approx(
        (128.54820547949757, 37.065651049489816), abs=1e-12
    )
    assert coords.gcj02_to_bd09(128.543, 37.065) == pytest.approx(
        (128.54944656269413, 37.07113427883019), abs=1e-12
    )


def test_the_gcj02_offset_in_lishui_is_a_few_hundred_metres() -> None:
    lon, lat = 119.03, 31.65
    g_lon, g_lat = coords.wgs84_to_gcj02(lon, lat)
    offset = coords.haversine_m(lon, lat, g_lon, g_lat)
    assert 300 < offset < 800


@pytest.mark.parametrize("crs", [CRS.GCJ02, CRS.BD09])
def test_round_trips_stay_under_a_millimetre_across_china(crs: CRS) -> None:
    rng = np.random.default_rng(3)
    lon = rng.uniform(74, 135, 5000)
    lat = rng.uniform(18, 53, 5000)
    there = coords.from_wgs84(lon, lat, crs)
    back = coords.to_wgs84(there[0], there[1], crs)
    error = coords.haversine_m(lon, lat, back[0], back[1])
    assert float(np.max(error)) < 1e-3
    # and the shift itself is real, not a no-op
    assert float(np.min(coords.haversine_m(lon, lat, there[0], there[1]))) > 1


def test_points_outside_china_are_not_shifted() -> None:
    assert coords.wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert coords.gcj02_to_wgs84(2.35, 48.85) == pytest.approx((2.35, 48.85))


def test_scalars_give_floats_and_arrays_give_arrays() -> None:
    lon, lat = coords.wgs84_to_bd09(119.0, 31.6)
    assert isinstance(lon, float) and isinstance(lat, float)
    lons, lats = coords.wgs84_to_bd09(np.array([119.0, 119.1]), np.array([31.6, 31.7]))
    assert lons.shape == (2,) and lats.shape == (2,)


def test_haversine_of_one_degree_of_latitude() -> None:
    assert coords.haversine_m(119.0, 31.0, 119.0, 32.0) == pytest.approx(111_195, rel=1e-3)
