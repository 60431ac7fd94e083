"""Commune outlines for the maps: a GeoJSON file joined to the territory on the INSEE code.

The path is `geometry.path` of `config/report.yaml` (none ships with the project, see
docs/reports.md). A missing or unreadable file is not an error: the HTML report is built
with a note in place of the maps. Codes of the territory without an outline are reported
(`Geometry.missing`). Former codes listed in `config/commune_changes.csv` are mapped to
the referential's code, so an older outline file can serve a newer territory.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.territory import Territory

Ring = np.ndarray  # (n, 2) longitude, latitude
Polygon = list  # [exterior ring, hole rings...]


class GeometryError(PipelineError, ValueError):
    pass


@dataclass
class Geometry:
    """The outlines of the territory's communes, or the reason there are none."""

    shapes: dict[str, list[Polygon]] = field(default_factory=dict)  # commune code -> polygons
    missing: list[str] = field(default_factory=list)  # territory codes without outline
    source: Path | None = None
    problem: str | None = None  # why there is no map at all

    @property
    def available(self) -> bool:
        return self.problem is None and bool(self.shapes)

    def bounds(self) -> tuple[float, float, float, float]:
        rings = [ring for polys in self.shapes.values() for poly in polys for ring in poly]
        allpts = np.concatenate(rings)
        xs, ys = allpts[:, 0], allpts[:, 1]
        return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())

    def boundary_lines(self, codes: list[str]) -> list[np.ndarray]:
        """The outer border of a group of communes, as polylines: the edges that belong to
        one commune of the group only (shared borders of a topological file cancel out),
        chained end to end."""
        count: Counter = Counter()
        for code in codes:
            for poly in self.shapes.get(code, []):
                for ring in poly:
                    pts = [tuple(p) for p in np.round(ring, 6).tolist()]
                    for a, b in zip(pts, pts[1:]):
                        if a != b:
                            count[(a, b) if a <= b else (b, a)] += 1
        neighbours: dict[tuple, list[tuple]] = {}
        for (a, b), n in count.items():
            if n == 1:
                neighbours.setdefault(a, []).append(b)
                neighbours.setdefault(b, []).append(a)
        lines = []
        while neighbours:
            # start at a loose end if there is one, else anywhere (a closed ring)
            start = next((p for p, ns in neighbours.items() if len(ns) % 2), next(iter(neighbours)))
            line, current = [start], start
            while neighbours.get(current):
                nxt = neighbours[current].pop()
                neighbours[nxt].remove(current)
                line.append(nxt)
                for point in (current, nxt):
                    if not neighbours[point]:
                        del neighbours[point]
                current = nxt
            lines.append(np.array(line))
        return lines


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _ring(coords, where: str) -> np.ndarray:
    ring = np.asarray(coords, dtype=float)
    if ring.ndim != 2 or ring.shape[0] < 4 or ring.shape[1] < 2:
        raise GeometryError(f"{where}: a ring needs at least 4 [longitude, latitude] positions")
    ring = ring[:, :2]
    if not np.isfinite(ring).all():
        raise GeometryError(f"{where}: a ring has non-numeric positions")
    return ring


def _polygons(geometry: dict, where: str) -> list[Polygon]:
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if kind == "Polygon":
        raw = [coords]
    elif kind == "MultiPolygon":
        raw = coords
    else:
        raise GeometryError(f"{where}: geometry must be a Polygon or MultiPolygon (got {kind!r})")
    out = []
    for poly in raw or []:
        rings = [_ring(r, where) for r in poly]
        if not rings:
            continue
        # exterior counter-clockwise, holes clockwise: filled right whatever the file's winding
        rings = [r if (_signed_area(r) > 0) == (i == 0) else r[::-1] for i, r in enumerate(rings)]
        out.append(rings)
    return out


def read_geojson(path: Path, code_property: str, territory: Territory) -> Geometry:
    """Read the outlines of the territory's communes; GeometryError if the file is unusable."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GeometryError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeometryError(f"{path.name}: not a JSON file ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise GeometryError(f"{path.name}: expected a GeoJSON FeatureCollection")
    wanted = set(territory.commune_codes)
    changes = territory.code_changes
    shapes: dict[str, list[Polygon]] = {}
    for i, feature in enumerate(doc["features"]):
        props = (feature or {}).get("properties") or {}
        raw_code = props.get(code_property)
        if raw_code is None:
            continue
        code = str(raw_code).strip().split(".")[0].zfill(5)
        code = changes.get(code, code)
        if code not in wanted:
            continue
        shapes.setdefault(code, []).extend(_polygons(feature.get("geometry"), f"{path.name}: feature {i} ({code})"))
    if not shapes:
        raise GeometryError(
            f"{path.name}: no feature's property {code_property!r} matches a commune code of the territory"
        )
    missing = sorted(wanted - set(shapes))
    return Geometry(shapes=shapes, missing=missing, source=path)


def load_geometry(path: Path | None, code_property: str, territory: Territory) -> Geometry:
    """The outlines, or a Geometry whose `problem` says why the maps are replaced by a note."""
    if path is None:
        return Geometry(problem="aucun fichier de contours des communes n'est configuré (config/report.yaml)")
    if not Path(path).exists():
        return Geometry(source=Path(path), problem=f"le fichier de contours des communes {Path(path).name} est absent")
    try:
        return read_geojson(Path(path), code_property, territory)
    except GeometryError as exc:
        return Geometry(source=Path(path), problem=f"le fichier de contours des communes est inutilisable ({exc})")


def territory_outlines(source: Path, code_property: str, name_property: str, territory: Territory) -> str:
    """The features of `source` whose code is a commune of the territory (former codes mapped
    through config/commune_changes.csv), as compact GeoJSON text sorted by code, with only
    the code and name properties: the file shipped in config/geo/ is made this way."""
    doc = json.loads(Path(source).read_text(encoding="utf-8"))
    wanted, changes = set(territory.commune_codes), territory.code_changes
    kept = []
    for feature in doc.get("features", []):
        props = feature.get("properties") or {}
        code = str(props.get(code_property, "")).strip().split(".")[0].zfill(5)
        code = changes.get(code, code)
        if code in wanted:
            kept.append({"type": "Feature", "properties": {"code": code, "nom": props.get(name_property)},
                         "geometry": feature["geometry"]})
    kept.sort(key=lambda f: f["properties"]["code"])
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in kept]
    return '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"
