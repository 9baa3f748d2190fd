// A small map: the district's towns and grids, a marker, and (on the report page) a pin the
// citizen places by tapping. No outside requests: our own vector tiles only.
import * as maplibregl from "/static/vendor/maplibre-gl/maplibre-gl.mjs";

const holder = document.getElementById("pinmap");
const config = JSON.parse(document.getElementById("pinmap-config").textContent);
if (holder) {
  const tiles = (name) => ({ type: "vector", tiles: [`${location.origin}/tiles/${name}/{z}/{x}/{y}.mvt`], maxzoom: 16 });
  const map = new maplibregl.Map({
    container: holder,
    style: {
      version: 8,
      sources: { towns: tiles("towns"), grids: tiles("grids") },
      layers: [
        { id: "bg", type: "background", paint: { "background-color": "#f4f3ef" } },
        { id: "towns", type: "line", source: "towns", "source-layer": "towns", paint: { "line-color": "#1f5fa8", "line-width": 2 } },
        { id: "grids", type: "line", source: "grids", "source-layer": "grids", paint: { "line-color": "#d2691e", "line-width": 0.8 } },
      ],
    },
    center: config.centre, zoom: config.zoom, attributionControl: false,
  });
  window.yiwangPinMap = map;
  let marker = config.marker ? new maplibregl.Marker().setLngLat(config.marker).addTo(map) : null;
  const lon = document.getElementById("lon");
  const lat = document.getElementById("lat");
  function place(lngLat) {
    if (!marker) { marker = new maplibregl.Marker().setLngLat(lngLat).addTo(map); }
    marker.setLngLat(lngLat);
    if (lon && lat) { lon.value = lngLat.lng.toFixed(6); lat.value = lngLat.lat.toFixed(6); }
  }
  if (config.pick) {
    map.on("click", (e) => place(e.lngLat));
    document.querySelectorAll("#report-form .locate").forEach((button) => {
      button.addEventListener("click", () => {
        if (!navigator.geolocation) { return; }
        navigator.geolocation.getCurrentPosition((pos) => {
          const here = { lng: pos.coords.longitude, lat: pos.coords.latitude };
          place(here);
          map.flyTo({ center: [here.lng, here.lat], zoom: 16 });
        });
      });
    });
  }
}
