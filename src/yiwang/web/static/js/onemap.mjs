// The one-map page: the district's own vector layers (no outside requests unless a raster
// base map is configured), a layer switcher, address search and record cards.
import * as maplibregl from "/static/vendor/maplibre-gl/maplibre-gl.mjs";

const config = JSON.parse(document.getElementById("map-config").textContent);
const T = config.text;
const COLORS = {
  towns: "#1f5fa8", communities: "#2e8b57", grids: "#d2691e",
  roads: "#777777", buildings: "#8a6d3b", addresses: "#c0392b",
  units: "#6c3483", facilities: "#117a65",
};
const LABELLED = new Set(["towns", "communities", "grids"]);

function style() {
  const sources = {};
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#f4f3ef" } }];
  if (config.raster) {
    sources.base = { type: "raster", tiles: config.raster.tiles, tileSize: 256,
                     attribution: config.raster.attribution || "" };
    layers.push({ id: "base", type: "raster", source: "base" });
  }
  for (const layer of config.layers) {
    sources[layer.name] = {
      type: "vector",
      tiles: [`${location.origin}/tiles/${layer.name}/{z}/{x}/{y}.mvt`],
      minzoom: layer.minzoom, maxzoom: 16,
    };
    const color = COLORS[layer.name] || "#555";
    const base = { source: layer.name, "source-layer": layer.name, minzoom: layer.minzoom };
    if (layer.geometry === "polygon") {
      layers.push({ ...base, id: `${layer.name}-fill`, type: "fill",
        paint: { "fill-color": color, "fill-opacity": layer.name === "buildings" ? 0.35 : 0.04 } });
      layers.push({ ...base, id: `${layer.name}-line`, type: "line",
        paint: { "line-color": color,
                 "line-width": layer.name === "towns" ? 2.5 : layer.name === "communities" ? 1.5 : 0.8 } });
    } else if (layer.geometry === "line") {
      layers.push({ ...base, id: `${layer.name}-line`, type: "line",
        paint: { "line-color": color, "line-width": ["interpolate", ["linear"], ["zoom"], 11, 0.5, 16, 4] } });
    } else {
      layers.push({ ...base, id: `${layer.name}-circle`, type: "circle",
        paint: layer.name === "cases"
          // cases: the colour of their time-limit light, larger so they stand out
          ? { "circle-color": ["match", ["get", "light"], "red", "#d62728", "yellow", "#f0b400",
                                "green", "#2ca02c", "#7f7f7f"],
              "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 3, 18, 8],
              "circle-stroke-color": "#fff", "circle-stroke-width": 1 }
          : { "circle-color": color, "circle-radius": ["interpolate", ["linear"], ["zoom"], 14, 1.5, 18, 5] } });
    }
  }
  return { version: 8, sources, layers };
}

const map = new maplibregl.Map({
  container: "map", style: style(), center: config.centre, zoom: config.zoom,
  attributionControl: false,
});
map.addControl(new maplibregl.NavigationControl(), "top-right");
map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
window.yiwangMap = map; // for tests and the browser console

// --- labels: DOM markers (no glyph server needed, so no outside fonts) ------------------
const labelMarkers = new Map();
function refreshLabels() {
  const wanted = new Map();
  for (const name of LABELLED) {
    const layer = config.layers.find((l) => l.name === name);
    if (!layer || !visible(name) || map.getZoom() < labelZoom(name)) continue;
    for (const f of map.querySourceFeatures(name, { sourceLayer: name })) {
      const code = f.properties.code;
      if (!code || wanted.has(code)) continue;
      wanted.set(code, { name: f.properties.name, kind: name, feature: f });
    }
  }
  for (const [code, marker] of labelMarkers) {
    if (!wanted.has(code)) { marker.remove(); labelMarkers.delete(code); }
  }
  for (const [code, item] of wanted) {
    if (labelMarkers.has(code)) continue;
    const el = document.createElement("div");
    el.className = `map-label map-label-${item.kind}`;
    el.textContent = item.name;
    el.dataset.code = code;
    const at = centreOf(item.feature);
    if (!at) continue;
    labelMarkers.set(code, new maplibregl.Marker({ element: el }).setLngLat(at).addTo(map));
  }
}
function labelZoom(name) { return name === "towns" ? 0 : name === "communities" ? 12 : 14; }
function centreOf(feature) {
  // the area's own label point comes with its tiles; fall back to the first ring's mean
  const p = feature.properties;
  if (p.label_lon !== undefined && p.label_lat !== undefined) return [p.label_lon, p.label_lat];
  const g = feature.geometry;
  const ring = g.type === "Polygon" ? g.coordinates[0] : g.type === "MultiPolygon" ? g.coordinates[0][0] : null;
  if (!ring) return null;
  let x = 0, y = 0;
  for (const [a, b] of ring) { x += a; y += b; }
  return [x / ring.length, y / ring.length];
}
map.on("idle", refreshLabels);

// --- layer switcher ----------------------------------------------------------------------
function visible(name) {
  const box = document.querySelector(`#map-layers input[value="${name}"]`);
  return !box || box.checked;
}
const list = document.getElementById("map-layers");
for (const layer of config.layers) {
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox"; box.value = layer.name; box.checked = true;
  box.addEventListener("change", () => {
    for (const suffix of ["fill", "line", "circle"]) {
      const id = `${layer.name}-${suffix}`;
      if (map.getLayer(id)) map.setLayoutProperty(id, "visibility", box.checked ? "visible" : "none");
    }
    refreshLabels();
  });
  label.append(box, " ", layer.title);
  list.append(label);
}

// --- search ------------------------------------------------------------------------------
const result = document.getElementById("map-result");
let pin = null;
document.getElementById("map-search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = document.getElementById("map-q").value.trim();
  if (!q) return;
  const response = await fetch(`/api/v1/basedata/match?q=${encodeURIComponent(q)}`,
                               { headers: { accept: "application/json" } });
  const body = await response.json();
  result.replaceChildren();
  if (!response.ok || !body.kind) {
    result.textContent = T.noResult;
    result.dataset.state = "none";
    return;
  }
  const title = document.createElement("strong");
  title.textContent = body.name;
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `${T.code}: ${body.code} · ${T.score}: ${body.score}`;
  result.append(title, meta);
  result.dataset.state = body.kind;
  result.dataset.code = body.code;
  if (pin) pin.remove();
  if (body.bbox) {
    map.fitBounds([[body.bbox[0], body.bbox[1]], [body.bbox[2], body.bbox[3]]], { padding: 30, duration: 800 });
  } else {
    map.flyTo({ center: [body.lon, body.lat], zoom: 17, duration: 800 });
    pin = new maplibregl.Marker({ color: "#c0392b" }).setLngLat([body.lon, body.lat]).addTo(map);
  }
});

// --- record cards ------------------------------------------------------------------------
const ORDER = ["units-circle", "facilities-circle", "addresses-circle", "buildings-fill", "roads-line", "grids-fill", "communities-fill", "towns-fill"];
map.on("click", (event) => {
  const ids = ORDER.filter((id) => map.getLayer(id));
  const features = map.queryRenderedFeatures(event.point, { layers: ids });
  if (!features.length) return;
  const f = features[0];
  const card = document.createElement("div");
  card.className = "record-card";
  const h = document.createElement("strong");
  h.textContent = f.properties.name || f.properties.code;
  card.append(h);
  const table = document.createElement("table");
  for (const [key, value] of Object.entries(f.properties)) {
    const row = table.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = value;
  }
  card.append(table);
  const link = document.createElement("a");
  link.href = `/ogcapi/collections/${f.source}/items/${encodeURIComponent(f.properties.code)}`;
  link.textContent = T.details;
  card.append(link);
  new maplibregl.Popup({ maxWidth: "360px" }).setLngLat(event.lngLat).setDOMContent(card).addTo(map);
});
