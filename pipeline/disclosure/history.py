"""What earlier releases of the study tell the reader of a new one (issue 22).

What belongs here: turning the releases already published (`pipeline.releases`: their
rows, zone trees, rounding and primary rule) into what the reader of the next table holds
beside it (`reader.Observation`, one per release and year), for the masking and the audit
to protect the new table against the union of everything published:

- **zones by what they cover**: a zone is identified by its composition, the communes
  under it (a commune nouvelle covers the communes merged into it, `config/commune_changes.csv`).
  A zone of an earlier release that covers what one of today's zones covers is that zone
  (today's code); any other (an RPE before a commune moved, before a split or a merger, a
  commune before it merged) is a zone of its own, `<code>@<release>`, with its own additivity
  in its own release's tree;
- **figures by what they are**: a figure of an earlier release is today's figure when the
  CAF's data behind both agree (`confidential.release_values` against
  `confidential.indicators`); where they differ (a corrected file) it is another unknown
  (`Observation.versioned`), and the correction is counted for the operator. Linking
  every figure that did not change is what the strongest reader would do: the masking
  protects against that reader;
- **parts**: nothing relates two zone trees but a zone of an earlier release covering
  communes of both (a commune moved from one EPCI to another); such trees become one part.

What does not: reading the warehouse (`pipeline.defs.disclosure`), deciding anything
(`audit`, `suppression`). Nothing here is ever written out: the truth is only compared.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.disclosure.reader import Observation
from pipeline.indicators import IndicatorSet
from pipeline.tables import PUBLISHED_TABLE, primary_key

COMMUNE = "commune"


@dataclass(frozen=True)
class Release:
    """An earlier publication as the masking reads it (`pipeline.releases.ReleaseRecord`)."""

    release_id: str
    published: pd.DataFrame  # level, zone_code, indicator, year, value, status (codes as released)
    zones: pd.DataFrame  # level, zone_code, parent_code: its zone tree
    rate_decimals: int
    threshold: int
    truth: pd.DataFrame | None = None  # level, zone_code, indicator, year, value, numerator, denominator


def figures(frame: pd.DataFrame | None, indicators: IndicatorSet) -> dict[tuple[str, int, str], float]:
    """(zone_code, year, measure) -> the confidential value of a frame of
    confidential.indicators' columns (a count's value, a rate's numerator and denominator)."""
    if frame is None or not len(frame):
        return {}
    defs = {i.id: i for i in indicators.indicators}
    out: dict[tuple[str, int, str], float] = {}
    zones, years, inds = frame["zone_code"].tolist(), frame["year"].tolist(), frame["indicator"].tolist()
    columns = {c: frame[c].tolist() for c in ("value", "numerator", "denominator") if c in frame}
    for k, (zone, year, ind) in enumerate(zip(zones, years, inds)):
        d = defs.get(ind)
        if d is None:
            continue
        pairs = [(d.measure, "value")] if d.kind == "count" else [(d.numerator, "numerator"),
                                                                  (d.denominator, "denominator")]
        for measure, column in pairs:
            if measure and column in columns:
                v = columns[column][k]
                out[(str(zone), int(year), measure)] = np.nan if v is None or pd.isna(v) else float(v)
    return out


def _known(a: float | None) -> bool:
    return a is not None and not np.isnan(a)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return True  # one side unknown: nothing says it changed
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return abs(a - b) <= 1e-9


def _behind(value: float | None, known: set[float]) -> float | None:
    """The value behind a figure: a blank at source (NaN: the CAF's files hold no value)
    is the one value the other releases and today's data hold, when they hold one. The
    CAF blanks a figure by its own secrecy rule, whose complementary blanks follow the
    grouping of its files (a commune whose RPE changed, an RPE split): the figure behind
    did not change, and the reader who kept the release that published it still knows it.
    Two values known (a corrected file) or none: the blank stays an unknown of its own."""
    if value is not None and np.isnan(value) and len(known) == 1:
        return next(iter(known))
    return value


class _Tree:
    """A release's zone tree, and what each of its zones covers."""

    def __init__(self, zones: pd.DataFrame, merged_into: Mapping[str, list[str]]) -> None:
        self.level_of = {str(c): str(lv) for c, lv in zip(zones["zone_code"], zones["level"])}
        self.children: dict[str, list[str]] = defaultdict(list)
        self.parent_of: dict[str, str] = {}
        for code, parent in zip(zones["zone_code"], zones["parent_code"]):
            if isinstance(parent, str) and parent:
                self.children[parent].append(str(code))
                self.parent_of[str(code)] = parent
        communes = {c for c, lv in self.level_of.items() if lv == COMMUNE}
        self._merged_into, self._communes = merged_into, communes
        self._cover: dict[str, frozenset[str]] = {}

    def atoms(self, code: str, seen: frozenset = frozenset()) -> set[str]:
        """A commune and the communes merged into it that this release does not list apart."""
        out = {code}
        for old in self._merged_into.get(code, ()):
            if old not in self._communes and old not in seen and old != code:
                out |= self.atoms(old, seen | {code})
        return out

    def cover(self, code: str) -> frozenset[str]:
        if code not in self._cover:
            level = self.level_of.get(code)
            if level == COMMUNE:
                found = frozenset(self.atoms(code))
            elif self.children.get(code):
                found = frozenset().union(*(self.cover(k) for k in self.children[code]))
            else:  # an IRIS or a zone of no commune: itself
                found = frozenset({f"{level}:{code}"})
            self._cover[code] = found
        return self._cover[code]


@dataclass
class History:
    """The earlier releases of the study, named for today's zone tree."""

    releases: list[Release]
    tables: list[pd.DataFrame] = field(default_factory=list)  # per release: its rows, zones by label, with `group`
    relations: list[dict[str, tuple]] = field(default_factory=list)  # per release: group -> (zone, its zones)
    level_of: list[dict[str, str]] = field(default_factory=list)
    versioned: list[dict[int, frozenset]] = field(default_factory=list)  # per release: year -> (label, measure)
    group_of_root: dict[str, str] = field(default_factory=dict)  # today's top-level zone -> its part's root
    related: dict[str, list[str]] = field(default_factory=dict)  # label -> today's zones covering any of it
    corrections: int = 0  # figures whose CAF data, known on both sides, differ between a release and today
    current_decimals: int = 1
    current_threshold: int | None = None  # today's primary threshold (None: as every release's)

    @classmethod
    def build(cls, releases: Sequence[Release], zones: pd.DataFrame, confidential: pd.DataFrame | None,
              indicators: IndicatorSet, commune_changes: Mapping[str, str] | None = None,
              rate_decimals: int = 1, threshold: int | None = None) -> History:
        """`zones`: today's tree (level, zone_code, parent_code); `confidential`: today's
        confidential.indicators (the truth each release's is compared with);
        `commune_changes`: old commune code -> new (config/commune_changes.csv)."""
        merged_into: dict[str, list[str]] = defaultdict(list)
        for old, new in (commune_changes or {}).items():
            merged_into[str(new)].append(str(old))
        history = cls(list(releases), current_decimals=rate_decimals, current_threshold=threshold)
        today = _Tree(zones, merged_into)
        # a zone is its level and what it covers (an RPE of one commune is not that commune)
        label_of_cover: dict[tuple[str, frozenset], str] = {}
        for code, level in today.level_of.items():
            label_of_cover.setdefault((level, today.cover(code)), code)
        owner_of_atom = {a: code for code, lv in today.level_of.items() for a in today.cover(code)
                         if lv == COMMUNE or not today.children.get(code)}
        root_of = {code: _root(code, today.parent_of) for code in today.level_of}
        truth_today = figures(confidential, indicators)
        owner: dict[str, int] = {}  # a label of no zone of today's -> the release that named it first
        truths = [figures(r.truth, indicators) for r in releases]
        parent = {root: root for root in set(root_of.values())}

        def find(a: str) -> str:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        label_roots: dict[str, set[str]] = {}
        mines: list[dict] = []  # per release: (label, year, measure) -> its CAF figure
        versioneds: list[dict[int, set]] = []
        trees = [_Tree(release.zones, merged_into) for release in releases]
        today_relations = [(p, tuple(kids)) for p, kids in today.children.items()]
        known = _known_values(truth_today, truths, trees, label_of_cover, releases)
        for k, release in enumerate(releases):
            tree = trees[k]
            labels: dict[str, str] = {}
            for code, level in tree.level_of.items():
                cover = tree.cover(code)
                if (level, cover) not in label_of_cover:
                    label_of_cover[(level, cover)] = f"{code}@{release.release_id}"
                    owner[label_of_cover[(level, cover)]] = k
                label = labels[code] = label_of_cover[(level, cover)]
                roots = {root_of[owner_of_atom[a]] for a in cover if a in owner_of_atom}
                label_roots.setdefault(label, set()).update(roots)
                history.related.setdefault(label, sorted(_with_ancestors(
                    {owner_of_atom[a] for a in cover if a in owner_of_atom}, today.parent_of)))
            for roots in label_roots.values():
                roots = sorted(roots)
                for other in roots[1:]:
                    parent[find(other)] = find(roots[0])
            history.level_of.append({labels[c]: lv for c, lv in tree.level_of.items()})
            history.relations.append([(labels[p], tuple(labels[k2] for k2 in kids))
                                      for p, kids in tree.children.items() if p in labels])
            table = release.published[[*primary_key(PUBLISHED_TABLE), "value", "status"]].copy()
            table["zone_code"] = table["zone_code"].astype(str).map(labels).fillna(table["zone_code"].astype(str))
            history.tables.append(table)
            # figures whose CAF data differ from today's (or from the release that named their zone)
            versioned: dict[int, set] = defaultdict(set)
            for (code, year, measure), value in truths[k].items():
                label = labels.get(code, code)
                base = truth_today.get((label, year, measure)) if label not in owner else \
                    (None if owner[label] == k else truths[owner[label]].get((_code_in(releases[owner[label]], label),
                                                                               year, measure)))
                seen = known.get((label, year, measure), set())
                if not _same(_behind(value, seen), _behind(base, seen)):
                    versioned[year].add((label, measure))
                    # a figure without data on one side (a year that had not come, a blank at
                    # source) is another unknown, but not a correction to report
                    history.corrections += _known(value) and _known(base)
            mines.append({(labels.get(code, code), year, measure): v for (code, year, measure), v in truths[k].items()})
            versioneds.append(versioned)
        _split_blanks(today_relations, truth_today, history.relations, mines, versioneds, owner)
        history.versioned = [{y: frozenset(v) for y, v in versioned.items()} for versioned in versioneds]
        history.group_of_root = {root: find(root) for root in parent}
        group_of_label = {label: (find(sorted(roots)[0]) if roots else "") for label, roots in label_roots.items()}
        for k, table in enumerate(history.tables):
            table["group"] = table["zone_code"].map(group_of_label).fillna("").to_numpy()
            by_group: dict[str, list] = defaultdict(list)
            for relation in history.relations[k]:
                by_group[group_of_label.get(relation[0], "")].append(relation)
            history.relations[k] = {g: tuple(rels) for g, rels in by_group.items()}
        return history

    def observations(self, year: int, group: str | None = None,
                     indicators: Iterable[str] | None = None) -> list[Observation]:
        """What each earlier release published of `year` in the part of top-level zone
        `group` (None: all), for the given indicators (None: all)."""
        wanted = None if indicators is None else set(indicators)
        out = []
        for k, (release, table) in enumerate(zip(self.releases, self.tables)):
            rows = table["year"].to_numpy() == year
            if group is not None:
                rows &= table["group"].to_numpy() == group
            if wanted is not None:
                rows &= table["indicator"].isin(wanted).to_numpy()
            if not rows.any():
                continue
            relations = self.relations[k].get(group) if group is not None else \
                tuple(r for rels in self.relations[k].values() for r in rels)
            out.append(Observation(table[rows], self.level_of[k], relations or (),
                                   0.5 * 10 ** (-release.rate_decimals), float(release.threshold),
                                   release.release_id, self.versioned[k].get(year, frozenset())))
        return out

    def digest(self, year: int, group: str | None = None) -> str:
        """A fingerprint of what the releases say of a part: the masking and the audit of
        the part depend on it (`pipeline.disclosure.memo`)."""
        h = hashlib.sha256()
        for obs in self.observations(year, group):
            h.update(obs.tag.encode() + b"\0")
            h.update(pd.util.hash_pandas_object(obs.table.reset_index(drop=True), index=False).to_numpy().tobytes())
            h.update(repr((obs.relations, obs.half_unit, obs.threshold, sorted(obs.versioned))).encode())
        return h.hexdigest()

    def group(self, root: str) -> str:
        return self.group_of_root.get(root, root)

    def before(self, cells: pd.DataFrame, kinds: Mapping[str, str], measures: Mapping[str, tuple[str, ...]]
               ) -> tuple[np.ndarray, np.ndarray]:
        """For each of today's cells (level, zone_code, indicator, year): known (some release
        published the same figure, a rate at least as finely rounded and under a threshold at
        least as high) and masked before
        (the last release that holds it masked it), both for figures that did not change."""
        known = np.zeros(len(cells), dtype=bool)
        masked = np.zeros(len(cells), dtype=bool)
        if not self.releases:
            return known, masked
        last: dict[tuple, str] = {}
        published: set[tuple] = set()
        for k, (release, table) in enumerate(zip(self.releases, self.tables)):
            versioned = self.versioned[k]
            # a rate is known as finely as it was rounded, and its terms as the primary rule of
            # its release said (0 or >= its threshold): published again under a stricter
            # threshold or a finer rounding, it tells more, and masking it protects
            fine = release.rate_decimals >= self.current_decimals and (
                self.current_threshold is None or release.threshold >= self.current_threshold)
            for zone, ind, year, status in zip(table["zone_code"], table["indicator"], table["year"], table["status"]):
                changed = versioned.get(int(year), frozenset())
                if any((zone, m) in changed for m in measures.get(ind, ())):
                    continue
                key = (zone, ind, int(year))
                last[key] = status
                if status == "published" and (kinds.get(ind) != "ratio" or fine):
                    published.add(key)
        for i, key in enumerate(zip(cells["zone_code"], cells["indicator"], cells["year"].astype(int))):
            known[i] = key in published
            masked[i] = last.get(key) == "masked"
        return known, masked


def _split_blanks(today_relations: Sequence[tuple[str, tuple[str, ...]]], today: Mapping[tuple, float],
                  relations: Sequence[Sequence[tuple[str, tuple[str, ...]]]], mines: Sequence[Mapping[tuple, float]],
                  versioneds: Sequence[dict[int, set]], owner: Mapping[str, int]) -> None:
    """Blanks at source the CAF's data changed behind, added to each release's `versioneds`.

    A figure read as the same on two sides (`_behind`: a blank is the one value the others
    hold, two blanks are one unknown) is one unknown of the CAF's own sums on every side:
    today's relations on today's figures, each release's on its own. Where those sums ask
    two values of it (a corrected figure the CAF blanks: its total moved, nothing known did),
    it is not one figure. The releases are added newest first (the closest to today's data);
    a release whose sums contradict what is held so far has its figures read as shared
    there made unknowns of its own, in every contradicted set of sums. The reader who kept
    the releases sees the same contradiction, and cannot say which blank changed.
    `relations[k]` and `mines[k]`: release k's sums and figures, by label; `owner`: the
    release that named a zone of no tree of today's (its figure is the shared one);
    `versioneds[k]`: year -> (label, measure) already apart (`_behind`, `_same`)."""
    keys: dict[tuple[int, str], None] = {}
    for mine in mines:
        for _label, year, measure in mine:
            keys.setdefault((year, measure))
    for year, measure in keys:
        def shared(label: str, year: int = year, measure: str = measure) -> float | None:
            k = owner.get(label)
            return today.get((label, year, measure)) if k is None else mines[k].get((label, year, measure))

        held = _rows(today_relations, lambda label, y=year, m=measure: today.get((label, y, m)), None, shared)
        for k in reversed(range(len(mines))):
            if not any((year, measure) == (y, m) for _l, y, m in mines[k]):
                continue
            apart = {label for label, m in versioneds[k].get(year, ()) if m == measure}

            def value(label: str, k: int = k, year: int = year, measure: str = measure) -> float | None:
                return mines[k].get((label, year, measure))

            mine = _rows(relations[k], value, (k, apart, owner), shared)
            bad = _contradicted(held + mine)
            if bad:
                # the labels read as shared in this release's contradicted sums (or in a sum of
                # figures known on both sides that the shared values contradict alone)
                split = {label for terms, constant, used in mine
                         if (bad & set(terms)) or (not terms and abs(constant) > 1e-6) for label in used}
                for label in split:
                    versioneds[k][year].add((label, measure))
                mine = _rows(relations[k], value, (k, apart | split, owner), shared)
            held += mine


def _rows(relations, value, side, shared) -> list[tuple[dict[str, float], float, set[str]]]:
    """The sums `relations` (total − its zones = 0) as (unknown -> coefficient, constant, the
    labels read as shared in it). `value(label)`: this side's figure; `side`: None for today,
    else (release, labels apart, owner): a blank read as shared is the unknown named by
    its label, one kept apart is the release's own; a figure known on one side and blank on
    the other, read as one, ties the shared unknown to its value (a row of its own)."""
    rows: list[tuple[dict[str, float], float, set[str]]] = []
    links: dict[str, float] = {}
    for parent, kids in relations:
        terms: dict[str, float] = {}
        constant, used, ok = 0.0, set(), True
        for label, sign in ((parent, 1.0), *((kid, -1.0) for kid in kids)):
            v = value(label)
            if v is None:
                ok = False  # a zone this side has no figure of: the sum says nothing here
                break
            if side is None or side[2].get(label) == side[0]:  # today's, or the release that named the zone
                name = label
            elif label in side[1]:
                name = f"{side[0]}:{label}"
            else:
                name = label
                used.add(label)
                other = shared(label)
                if _known(v) and not (other is not None and _known(other)):
                    links[label] = float(v)  # known here, blank (or absent) there: the shared unknown is v
                elif not _known(v) and other is not None and _known(other):
                    v = other  # blank here, known there: that value
            if _known(v):
                constant += sign * float(v)
            else:
                terms[name] = terms.get(name, 0.0) + sign
        if ok:
            rows.append((terms, constant, used))
    rows += [({label: 1.0}, -v, {label}) for label, v in links.items()]
    return rows


def _contradicted(rows: list[tuple[dict[str, float], float, set[str]]]) -> set[str]:
    """The unknowns of the connected sets of `rows` (terms + constant = 0) that no values
    satisfy."""
    names = sorted({n for terms, _c, _u in rows for n in terms})
    index = {n: i for i, n in enumerate(names)}
    parent = list(range(len(names)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for terms, _c, _u in rows:
        first, *rest = [index[n] for n in terms] or [None]
        for j in rest:
            parent[find(j)] = find(first)
    components: dict[int, list[int]] = defaultdict(list)
    for k, (terms, _c, _u) in enumerate(rows):
        if terms:
            components[find(index[next(iter(terms))])].append(k)
    out: set[str] = set()
    for members in components.values():
        used = sorted({n for k in members for n in rows[k][0]})
        col = {n: j for j, n in enumerate(used)}
        matrix = np.zeros((len(members), len(used)))
        rhs = np.zeros(len(members))
        for r, k in enumerate(members):
            for n, c in rows[k][0].items():
                matrix[r, col[n]] = c
            rhs[r] = -rows[k][1]
        solution = np.linalg.lstsq(matrix, rhs, rcond=None)[0]
        if np.abs(matrix @ solution - rhs).max() > 1e-6:
            out.update(used)
    return out


def _known_values(truth_today: Mapping[tuple, float], truths: Sequence[Mapping[tuple, float]],
                  trees: Sequence[_Tree], label_of_cover: Mapping[tuple, str],
                  releases: Sequence[Release]) -> dict[tuple, set[float]]:
    """(zone label, year, measure) -> the values the CAF's data gave the figure, today and in
    every release (blanks left out), the zone named by what it covers as `History.build` does."""
    out: dict[tuple, set[float]] = defaultdict(set)
    label_of_cover = dict(label_of_cover)  # the labels of zones of no tree of today's, given in the same order
    for (code, year, measure), value in truth_today.items():
        if _known(value):
            out[(code, year, measure)].add(round(float(value), 9))
    for release, tree, truth in zip(releases, trees, truths):
        for (code, year, measure), value in truth.items():
            if code not in tree.level_of:
                continue
            label = label_of_cover.setdefault((tree.level_of[code], tree.cover(code)), f"{code}@{release.release_id}")
            if _known(value):
                out[(label, year, measure)].add(round(float(value), 9))
    return out


def _root(code: str, parent_of: Mapping[str, str]) -> str:
    seen = {code}
    while code in parent_of and parent_of[code] not in seen:
        code = parent_of[code]
        seen.add(code)
    return code


def _with_ancestors(codes: set[str], parent_of: Mapping[str, str]) -> set[str]:
    out = set(codes)
    for code in codes:
        while code in parent_of and parent_of[code] not in out:
            code = parent_of[code]
            out.add(code)
    return out


def _code_in(release: Release, label: str) -> str:
    """The code a release gave the zone it named `label` (`<code>@<release>`)."""
    return label.rsplit("@", 1)[0] if label.endswith(f"@{release.release_id}") else label
