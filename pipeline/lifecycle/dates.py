"""Times: UTC instants for the journal, French renderings for the certificate."""

from __future__ import annotations

import datetime as dt

FR_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre",
    "décembre",
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(moment: dt.datetime | None = None) -> str:
    return (moment or now()).isoformat(timespec="seconds")


def paris(moment: dt.datetime) -> dt.datetime:
    try:
        from zoneinfo import ZoneInfo

        return moment.astimezone(ZoneInfo("Europe/Paris"))
    except Exception:  # no tz database: stay in UTC
        return moment.astimezone(dt.timezone.utc)


def fr_date(day: dt.date | None) -> str:
    if day is None:
        return "non renseignée"
    return f"{day.day}{'er' if day.day == 1 else ''} {FR_MONTHS[day.month - 1]} {day.year}"


def fr_datetime(moment: dt.datetime) -> str:
    local = paris(moment)
    zone = "UTC" if local.tzinfo is dt.timezone.utc else "heure de Paris"
    return f"{fr_date(local.date())} à {local.hour:02d} h {local.minute:02d} min {local.second:02d} s ({zone})"


def fr_int(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def fr_short(value: str) -> str:
    """'2026-11-29T17:55:38+00:00' -> '29/11/2026 18:55' (Paris)."""
    if not value:
        return ""
    return paris(dt.datetime.fromisoformat(value)).strftime("%d/%m/%Y %H:%M")


def fr_bytes(n: int) -> str:
    for unit, size in (("Go", 1 << 30), ("Mo", 1 << 20), ("ko", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}".replace(".", ",")
    return f"{n} octets"
