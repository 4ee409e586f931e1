"""Feature state of one feeder and the feature matrices the horizon models learn from and forecast with.

Everything a forecast at issue time ``n`` (after interval ``n`` closed) uses is known then: lagged load one
day and one week before the *target*, slowly updated weekly and daily profiles (EWMA per local time slot), the
recent level and its deviation from the profile, the local calendar, and weather (a forecast for the target
interval if one was received, else the latest observation). Load features are divided by the running peak so
one model fits feeders of any size; only the holiday flag is 0/1 and the least-squares models are scale-free.

Interval numbers ``t = start // interval_ms`` index everything.
"""

from __future__ import annotations

import numpy as np

from streams.forecasting.calendar import LocalCalendar

__all__ = ["FEATURES", "N_ISSUE", "FeatureState"]

FEATURES = (
    "intercept", "lag_day", "lag_week", "profile_week", "profile_day", "dev_last", "dev_hour", "dev_day",
    "last", "last_vs_day", "last_vs_week", "holiday", "temp", "heating", "ghi", "smooth_day", "smooth_week",
)
SMOOTH_SLOTS = 2  # smooth_day / smooth_week: mean load over +-2 slots around the target's time of day
SMOOTH_DAYS, SMOOTH_WEEKS = 7, 3  # ... on each of the last 7 days / the same weekday of the last 3 weeks
N_ISSUE = 6  # issue-time features: dev_last, dev_hour, dev_day, last, last_vs_day, last_vs_week
_ISSUE_COL = 5  # first issue-time column in FEATURES


class FeatureState:
    """History, profiles, issue-time features and weather of one feeder. Picklable (numpy arrays and dicts).

    Parameters
    ----------
    calendar : LocalCalendar
        Local calendar (interval length, time zone, holidays).
    horizon : int
        Forecast steps.
    profile_alpha : float
        EWMA weight of a new value in the weekly and daily profiles.
    """

    def __init__(self, calendar: LocalCalendar, horizon: int, profile_alpha: float = 0.2) -> None:
        self.cal = calendar
        self.day = calendar.slots_per_day
        self.week = 7 * self.day
        self.horizon = horizon
        self.alpha = profile_alpha
        self.ring = max((SMOOTH_WEEKS + 1) * self.week, horizon) + 1
        self.hist = np.full(self.ring, np.nan)  # load kW by t % ring
        self.prof_week = np.full(self.week, np.nan)
        self.prof_day = np.full((3, self.day), np.nan)
        self.issue = np.zeros((horizon + 1, N_ISSUE))  # issue-time features by t % (horizon + 1)
        self.issue_t = np.full(horizon + 1, -1, dtype=np.int64)
        self.dev_hour = 0.0
        self.dev_day = 0.0
        self.last = np.nan
        self.t: int | None = None  # last closed interval number
        self.peak = 0.0
        self.weather_obs: dict[int, tuple[float, float]] = {}
        self.weather_fc: dict[int, tuple[int, float, float]] = {}  # t -> (issued, temp, ghi)
        self.last_temp: float | None = None

    # ---- history -------------------------------------------------------------------------------
    def value(self, t: np.ndarray) -> np.ndarray:
        """Load at interval numbers ``t`` (NaN if unknown or older than the ring)."""
        assert self.t is not None
        ok = (t <= self.t) & (t > self.t - self.ring)
        out = np.full(t.shape, np.nan)
        out[ok] = self.hist[t[ok] % self.ring]
        return out

    @property
    def scale(self) -> float:
        """Feature scale: the running peak (kW), at least 1e-6."""
        return max(self.peak, 1e-6)

    def _slots(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        block = self.cal.block(t * self.cal.interval_ms)
        return block.weekday * self.day + block.slot, block.daytype, block.slot, block.holiday

    def _profiles(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        wslot, dtype, slot, hol = self._slots(t)
        pw = self.prof_week[wslot]
        pd = self.prof_day[dtype, slot]
        pw = np.where(np.isnan(pw), pd, pw)
        pd = np.where(np.isnan(pd), pw, pd)
        last = self.last if not np.isnan(self.last) else 0.0
        pw = np.where(np.isnan(pw), last, pw)
        pd = np.where(np.isnan(pd), last, pd)
        return pw, pd, hol

    def time_bins(self, t: np.ndarray, per_day: int) -> np.ndarray:
        """Bin of each interval ``t`` by local day type (working day, Saturday, Sunday or holiday) and time of day:
        ``daytype * per_day + slot * per_day // slots_per_day``, in ``0 .. 3 * per_day - 1``."""
        _, daytype, slot, _ = self._slots(t)
        return np.asarray(daytype * per_day + slot * per_day // self.day, dtype=np.int64)

    # ---- feature matrices ----------------------------------------------------------------------
    def _smooth(self, targets: np.ndarray, known: np.ndarray, period: int, count: int) -> np.ndarray:
        """Mean load over +-``SMOOTH_SLOTS`` around each target's slot, ``count`` periods back, known by ``known``."""
        first = (targets - known + period - 1 + SMOOTH_SLOTS) // period  # first period whose window is all known
        first = np.maximum(first, 1)
        offsets = np.arange(-SMOOTH_SLOTS, SMOOTH_SLOTS + 1)
        k = first[:, None] + np.arange(count)[None, :]
        at = targets[:, None, None] - (k * period)[:, :, None] + offsets[None, None, :]
        vals = self.value(at.reshape(len(targets), -1))
        ok = ~np.isnan(vals)
        n = ok.sum(axis=1)
        return np.where(n > 0, np.where(ok, vals, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)

    def matrix(self, targets: np.ndarray, issue: np.ndarray, lag_day: np.ndarray | None = None,
               known: np.ndarray | None = None) -> np.ndarray:
        """Feature matrix (len(targets) x len(FEATURES)) for ``targets`` with issue-time rows ``issue``.

        ``known``: per row, the last interval known at issue time (default: the last closed one).
        """
        pw, pd, hol = self._profiles(targets)
        ld = self.value(targets - self.day) if lag_day is None else lag_day
        lw = self.value(targets - self.week)
        lw = np.where(np.isnan(lw), pw, lw)
        ld = np.where(np.isnan(ld), pd, ld)
        inv = 1.0 / self.scale
        x = np.empty((len(targets), len(FEATURES)))
        x[:, 0] = 1.0
        x[:, 1] = ld * inv
        x[:, 2] = lw * inv
        x[:, 3] = pw * inv
        x[:, 4] = pd * inv
        x[:, _ISSUE_COL:_ISSUE_COL + N_ISSUE] = issue * inv
        x[:, 11] = hol
        x[:, 12:15] = self._weather(targets)
        assert self.t is not None
        kn = np.full(len(targets), self.t, dtype=np.int64) if known is None else known
        sd = self._smooth(targets, kn, self.day, SMOOTH_DAYS)
        sw = self._smooth(targets, kn, self.week, SMOOTH_WEEKS)
        x[:, 15] = np.where(np.isnan(sd), pd, sd) * inv
        x[:, 16] = np.where(np.isnan(sw), pw, sw) * inv
        return x

    def forecast_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(targets, X) for the next ``horizon`` intervals after the last closed one."""
        assert self.t is not None
        targets = np.arange(self.t + 1, self.t + 1 + self.horizon, dtype=np.int64)
        cur = self.issue[self.t % (self.horizon + 1)]
        return targets, self.matrix(targets, np.broadcast_to(cur, (self.horizon, N_ISSUE)))

    def learn_matrix(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(X, valid) for target ``t`` seen from each horizon h = 1..horizon (row h-1 issued after t-h)."""
        hs = np.arange(1, self.horizon + 1)
        issued = t - hs
        pos = issued % (self.horizon + 1)
        valid = self.issue_t[pos] == issued
        targets = np.full(self.horizon, t, dtype=np.int64)
        return self.matrix(targets, self.issue[pos], known=issued), valid

    # ---- state updates -------------------------------------------------------------------------
    def advance_to(self, t: int) -> None:
        """Move the ring to interval ``t`` (marking skipped intervals missing)."""
        if self.t is not None and t <= self.t:
            raise ValueError(f"interval {t} is not after {self.t}")
        if self.t is not None:
            for skipped in range(max(self.t + 1, t - self.ring + 1), t):
                self.hist[skipped % self.ring] = np.nan
        self.t = t
        self.hist[t % self.ring] = np.nan

    def record(self, t: int, kw: float | None) -> None:
        """Record the closed interval ``t`` (``kw`` None when missing) and its issue-time features."""
        self.advance_to(t)
        arr = np.array([t], dtype=np.int64)
        if kw is not None:
            wslot, dtype, slot, _ = self._slots(arr)
            ws, dt, sl = int(wslot[0]), int(dtype[0]), int(slot[0])
            pw = self.prof_week[ws]
            ref = pw if not np.isnan(pw) else self.prof_day[dt, sl]
            dev = kw - ref if not np.isnan(ref) else 0.0
            self.dev_hour += 0.25 * (dev - self.dev_hour)
            self.dev_day += (dev - self.dev_day) / 24.0
            a = self.alpha
            self.prof_week[ws] = kw if np.isnan(pw) else (1 - a) * pw + a * kw
            pd = self.prof_day[dt, sl]
            self.prof_day[dt, sl] = kw if np.isnan(pd) else (1 - a) * pd + a * kw
            self.hist[t % self.ring] = kw
            self.last = kw
            self.peak = max(self.peak, kw)
            day_ago, week_ago = self.value(np.array([t - self.day, t - self.week]))
            row: tuple[float, ...] = (
                dev, self.dev_hour, self.dev_day, kw,
                kw - day_ago if not np.isnan(day_ago) else 0.0, kw - week_ago if not np.isnan(week_ago) else 0.0)
        else:  # keep the last known issue-time features
            prev = self.issue[(t - 1) % (self.horizon + 1)]
            row = tuple(prev) if self.issue_t[(t - 1) % (self.horizon + 1)] == t - 1 else (0.0,) * N_ISSUE
            if np.isnan(self.last):
                row = (0.0,) * N_ISSUE
        pos = t % (self.horizon + 1)
        self.issue[pos] = row
        self.issue_t[pos] = t
        self._prune_weather(t)

    # ---- weather -------------------------------------------------------------------------------
    def add_weather(self, timestamp: int, forecast_for: int | None, temp_c: float, ghi_wm2: float) -> None:
        """Remember an observation (``forecast_for`` None) or a forecast valid at ``forecast_for``."""
        step = self.cal.interval_ms
        if forecast_for is None:
            self.weather_obs[timestamp // step] = (temp_c, ghi_wm2)
            if self.t is None or timestamp // step >= self.t:
                self.last_temp = temp_c
        else:
            t = forecast_for // step
            old = self.weather_fc.get(t)
            if old is None or old[0] <= timestamp:
                self.weather_fc[t] = (timestamp, temp_c, ghi_wm2)

    def _prune_weather(self, t: int) -> None:
        if len(self.weather_obs) + len(self.weather_fc) < 4 * self.ring:
            return
        oldest = t - self.day - self.horizon - 1
        self.weather_obs = {k: v for k, v in self.weather_obs.items() if k >= oldest}
        self.weather_fc = {k: v for k, v in self.weather_fc.items() if k >= oldest}

    def _weather(self, targets: np.ndarray) -> np.ndarray:
        out = np.zeros((len(targets), 3))
        if not self.weather_obs and not self.weather_fc:
            return out
        fallback_temp = self.last_temp
        for i, k in enumerate(targets.tolist()):
            fc = self.weather_fc.get(k)
            if fc is not None:
                temp, ghi = fc[1], fc[2]
            else:
                obs = self.weather_obs.get(k)
                if obs is not None:
                    temp, ghi = obs
                else:
                    if fallback_temp is None:
                        continue
                    temp = fallback_temp
                    ghi = self.weather_obs.get(k - self.day, (0.0, 0.0))[1]
            out[i] = ((temp - 15.0) / 10.0, max(0.0, 15.0 - temp) / 10.0, ghi / 1000.0)
        return out
