#!/usr/bin/env python3
"""Generate the sample data of the analytics example: three weeks (Mon 2026-11-02 .. Sun
2026-11-22) of part requests and advisors' offers on an auto-parts quotation marketplace.

One file per local day and kind: requests_YYYY-MM-DD.csv (by created_at) and
offers_YYYY-MM-DD.csv (by offered_at; offers for late requests of the 22nd land on the 23rd).
Times are local to Bogotá (UTC-5), as a user would see them. Deterministic (fixed seed),
standard library only:

    python3 examples/analytics/data/generate.py        # rewrites the CSVs beside this script
"""

import csv
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

SEED = 20261102
FIRST_DAY = date(2026, 11, 2)  # a Monday
DAYS = 21
OUT = Path(__file__).resolve().parent

# City: (share of requests, chance that a request ends with a won offer).
CITIES = {
    "Bogotá": (0.30, 0.70),
    "Medellín": (0.20, 0.66),
    "Cali": (0.14, 0.58),
    "Barranquilla": (0.10, 0.50),
    "Bucaramanga": (0.08, 0.62),
    "Cartagena": (0.07, 0.45),
    "Pereira": (0.06, 0.60),
    "Manizales": (0.05, 0.55),
}

# Category: (typical price in COP, demand weight in weeks 1, 2, 3). November is rainy season:
# brakes and electrical parts (wipers, lights) climb in the third week.
CATEGORIES = {
    "engine": (780_000, (1.0, 1.0, 0.9)),
    "brakes": (190_000, (1.0, 1.2, 1.6)),
    "suspension": (340_000, (0.9, 0.9, 1.0)),
    "electrical": (160_000, (0.8, 1.0, 1.4)),
    "bodywork": (420_000, (0.7, 0.7, 0.6)),
    "transmission": (1_150_000, (0.5, 0.5, 0.5)),
}

# Advisor: (mean minutes to answer, price factor, closing skill, category affinities,
# works on Sundays). Affinities weigh which requests an advisor answers: specialists
# answer mostly their categories.
ADVISORS = {
    "Camila Rojas": (14, 1.00, 1.3, {"brakes": 4, "suspension": 2}, True),
    "Andrés Gómez": (28, 0.95, 1.0, {"engine": 4, "transmission": 3}, False),
    "Valentina Ruiz": (18, 1.05, 1.2, {"electrical": 4, "brakes": 1.5}, False),
    "Santiago López": (45, 0.92, 0.9, {"bodywork": 4, "suspension": 1.5}, False),
    "Daniela Moreno": (24, 1.02, 1.1, {}, True),
    "Juan Pablo Castro": (65, 0.88, 0.8, {"transmission": 4, "engine": 2}, False),
    "Laura Herrera": (20, 1.00, 1.0, {"suspension": 3, "bodywork": 2}, False),
    "Felipe Vargas": (95, 1.10, 0.6, {"electrical": 2, "engine": 1.5}, False),
}

# Requests per hour of the day (local), on weekdays and at weekends.
WEEKDAY_HOURS = [0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.9, 2.5, 4.0, 5.0, 4.5, 3.6,
                 2.4, 3.0, 4.0, 4.3, 3.6, 3.0, 2.6, 2.2, 1.8, 1.2, 0.6, 0.3]
WEEKEND_HOURS = [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.9, 2.0, 3.4, 4.6, 4.8,
                 3.8, 3.0, 2.6, 2.4, 2.2, 2.0, 1.8, 1.6, 1.4, 1.0, 0.6, 0.4]
# Requests per day of the week (Monday first), before a growth of ~8% a week.
PER_DAY = [26, 24, 23, 22, 24, 16, 9]


def pick(rng, weights):
    """A key of `weights` (a dict of key -> weight), drawn in proportion to its weight."""
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def working(advisor, t):
    """Whether `advisor` answers at local time `t`: 07:00-19:00 Mon-Sat, 09:00-14:00 on
    Sundays for those on the Sunday rota."""
    sunday_rota = ADVISORS[advisor][4]
    if t.weekday() == 6:
        return sunday_rota and time(9) <= t.time() < time(14)
    return time(7) <= t.time() < time(19)


def next_working(advisor, t):
    """The first minute at or after `t` when `advisor` works."""
    while not working(advisor, t):
        t = (t + timedelta(minutes=30)).replace(second=0)
        t = t.replace(minute=0 if t.minute < 30 else 30)
    return t


def main():
    rng = random.Random(SEED)
    users = [f"U{n:04d}" for n in rng.sample(range(1000, 10000), 260)]
    # A few users come back often (workshops); most ask once or twice.
    user_weights = [8 if i < 20 else 1 for i in range(len(users))]

    requests = []
    next_request_id = 50001
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        week = offset // 7
        growth = 1.08 ** week
        count = max(1, round(PER_DAY[day.weekday()] * growth * rng.uniform(0.85, 1.15)))
        hours = WEEKEND_HOURS if day.weekday() >= 5 else WEEKDAY_HOURS
        category_weights = {c: w[week] for c, (_, w) in CATEGORIES.items()}
        times = sorted(
            datetime.combine(day, time(rng.choices(range(24), weights=hours)[0], rng.randrange(60), rng.randrange(60)))
            for _ in range(count)
        )
        for created_at in times:
            requests.append({
                "request_id": next_request_id,
                "user_id": rng.choices(users, weights=user_weights)[0],
                "city": pick(rng, {c: s for c, (s, _) in CITIES.items()}),
                "part_category": pick(rng, category_weights),
                "created_at": created_at,
            })
            next_request_id += 1

    offers = []
    for r in requests:
        n_offers = rng.choices([0, 1, 2, 3, 4], weights=[4, 14, 36, 31, 15])[0]
        affinity = {a: 1 + spec[3].get(r["part_category"], 0) for a, spec in ADVISORS.items()}
        chosen = []
        while len(chosen) < n_offers:
            a = pick(rng, {k: v for k, v in affinity.items() if k not in chosen})
            chosen.append(a)
        base = CATEGORIES[r["part_category"]][0] * rng.lognormvariate(0, 0.35)
        made = []
        for a in chosen:
            mean_minutes, price_factor, skill, _, _ = ADVISORS[a]
            start = next_working(a, r["created_at"])
            waited = start > r["created_at"]
            delay = rng.expovariate(1 / mean_minutes) + 2
            if waited:  # answered once the shift starts: the queue of the night goes first
                delay = rng.uniform(5, 60) + delay / 2
            offered_at = start + timedelta(minutes=delay, seconds=rng.randrange(60))
            price = round(base * price_factor * rng.uniform(0.9, 1.1), -3)
            made.append({"request_id": r["request_id"], "advisor": a, "price": price,
                         "offered_at": offered_at.replace(microsecond=0), "skill": skill})
        city_conversion = CITIES[r["city"]][1]
        if made and rng.random() < city_conversion + 0.04 * (len(made) - 2):
            cheapest = min(o["price"] for o in made)
            first = min(o["offered_at"] for o in made)
            winner = pick(rng, {
                i: o["skill"] * (cheapest / o["price"]) ** 3
                * (1.3 if o["offered_at"] == first else 1.0)
                for i, o in enumerate(made)
            })
            for i, o in enumerate(made):
                o["status"] = "won" if i == winner else "lost"
        else:
            for o in made:
                o["status"] = "expired"
        offers.extend(made)

    offers.sort(key=lambda o: (o["offered_at"], o["request_id"]))
    for i, o in enumerate(offers):
        o["offer_id"] = 900001 + i

    for old in list(OUT.glob("requests_*.csv")) + list(OUT.glob("offers_*.csv")):
        old.unlink()
    write(requests, "requests", "created_at",
          ["request_id", "user_id", "city", "part_category", "created_at"])
    write(offers, "offers", "offered_at",
          ["offer_id", "request_id", "advisor", "price", "offered_at", "status"])
    print(f"{len(requests)} requests, {len(offers)} offers")


def write(rows, kind, at, columns):
    by_day = {}
    for row in rows:
        by_day.setdefault(row[at].date(), []).append(row)
    for day, day_rows in sorted(by_day.items()):
        with open(OUT / f"{kind}_{day.isoformat()}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(columns)
            for row in day_rows:
                w.writerow([
                    row[c].strftime("%Y-%m-%d %H:%M:%S") if isinstance(row[c], datetime)
                    else f"{row[c]:.2f}" if c == "price"
                    else row[c]
                    for c in columns
                ])


if __name__ == "__main__":
    main()
