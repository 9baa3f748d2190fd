import json

import pytest
import shapely
from shapely.geometry import Point, box

from yiwang.core.errors import InvalidRows
from yiwang.geo import coords, files
from yiwang.geo.coords import CRS
from yiwang.geo.files import Feature

FEATURES = [
    Feature(1, box(119.0, 31.6, 119.01, 31.61), {"code": "A1", "name": "一号网格", "n": 3}),
    Feature(2, box(119.01, 31.6, 119.02, 31.61), {"code": "A2", "name": "二号网格", "n": 4}),
]
POINTS = [
    Feature(1, Point(119.03, 31.65), {"code": "P1", "name": "永阳街道 12号"}),
    Feature(2, Point(119.031, 31.651), {"code": "P2", "name": "中山路 3号"}),
]


def same(a: list[Feature], b: list[Feature], keys: tuple[str, ...]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert shapely.equals_exact(x.geometry, y.geometry, tolerance=1e-9)
        assert {k: str(x.properties[k]) for k in keys} == {k: str(y.properties[k]) for k in keys}


def test_geojson_round_trip() -> None:
    same(files.read_geojson(files.write_geojson(FEATURES)), FEATURES, ("code", "name", "n"))


def test_shapefile_round_trip_with_chinese_text() -> None:
    data = files.write_shapefile_zip(
        FEATURES, [("code", "C", 20), ("name", "C", 50), ("n", "N", 6)], name="grids"
    )
    same(files.read_shapefile_zip(data), FEATURES, ("code", "name", "n"))


def test_csv_round_trip_of_points() -> None:
    data = files.write_csv(POINTS, ["code", "name"])
    same(files.read_csv(data), POINTS, ("code", "name"))


def test_csv_from_excel_in_gb18030_is_read() -> None:
    data = "code,name,lon,lat\nP1,永阳街道,119.03,31.65\n".encode("gb18030")
    (feature,) = files.read_csv(data)
    assert feature.properties["name"] == "永阳街道"


def test_gcj02_input_is_stored_as_wgs84() -> None:
    g_lon, g_lat = coords.wgs84_to_gcj02(119.03, 31.65)
    data = f"code,lon,lat\nP1,{g_lon},{g_lat}\n".encode()
    (feature,) = files.read_csv(data, crs=CRS.GCJ02)
    assert coords.haversine_m(feature.geometry.x, feature.geometry.y, 119.03, 31.65) < 0.001


def test_bad_csv_cells_are_named_by_row_and_field() -> None:
    data = b"code,lon,lat\nP1,119.03,31.65\nP2,east,31.6\nP3,119.0,95\n"
    with pytest.raises(InvalidRows) as caught:
        files.read_csv(data)
    assert [(p.row, p.field) for p in caught.value.problems] == [(3, "lon"), (4, "lat")]


def test_bad_geojson_features_are_named() -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}},
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[1]]}},
            {"type": "Nonsense"},
        ],
    }
    with pytest.raises(InvalidRows) as caught:
        files.read_geojson(json.dumps(doc).encode())
    assert [(p.row, p.field) for p in caught.value.problems] == [(2, "geometry"), (3, None)]


def test_a_projected_shapefile_is_refused() -> None:
    import io
    import zipfile

    good = files.write_shapefile_zip(FEATURES, [("code", "C", 20)], name="g")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            body = src.read(name)
            if name.endswith(".prj"):
                body = b'PROJCS["CGCS2000_3_Degree_GK_CM_120E",GEOGCS["GCS_China_2000"]]'
            dst.writestr(name, body)
    with pytest.raises(InvalidRows, match="not valid"):
        files.read_shapefile_zip(out.getvalue())


def test_not_a_zip_and_unknown_extensions_are_refused() -> None:
    with pytest.raises(InvalidRows):
        files.read_shapefile_zip(b"hello")
    with pytest.raises(InvalidRows):
        files.read_any(b"x", "data.xlsx")
