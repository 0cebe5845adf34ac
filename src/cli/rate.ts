/**
 * Transfer speed and time left, from the bytes this run actually moved (never what an interrupted
 * run had already moved, which arrives in one jump when a file resumes), smoothed so that neither
 * jumps from one second to the next. Pure: the caller passes the clock's readings.
 *
 * The speed is an exponential moving average over time with a time constant of `tauMs` (5 s by
 * default): each sample adds its bytes with a weight that decays by e every tauMs, so it is the
 * same whether progress comes as one event a second or a thousand. Early on (less than a few tauMs
 * of history) the average is divided by the weight the history has so far (1 - e^(-t/tau)), which
 * makes it exact for a steady rate from the first sample instead of starting near zero.
 */

/** The default time constant of the average: a change of speed shows fully after ~3 × this. */
export const RATE_TAU_MS = 5000;

export interface Rate {
  /** The time constant of the average, in ms. */
  readonly tauMs: number;
  /** When the first sample was taken (ms). */
  readonly startMs: number;
  /** The last sample's time (ms) and bytes moved. */
  readonly lastMs: number;
  readonly lastBytes: number;
  /** The average's value before bias correction, in bytes per second. */
  readonly ema: number;
}

/** A rate with no history: `bytes` moved at `nowMs` (usually 0 when the transfer starts). */
export function startRate(nowMs: number, bytes = 0, tauMs = RATE_TAU_MS): Rate {
  if (!(tauMs > 0)) throw new RangeError(`tauMs must be positive, got ${tauMs}`);
  return { tauMs, startMs: nowMs, lastMs: nowMs, lastBytes: bytes, ema: 0 };
}

/**
 * The rate after `moved` bytes in all (this run's, never decreasing) at `nowMs`. A sample at the
 * same time as the last one (or one whose clock went back) changes nothing: its bytes count in
 * the next one.
 */
export function sampleRate(r: Rate, nowMs: number, moved: number): Rate {
  const dt = nowMs - r.lastMs;
  if (!(dt > 0)) return r;
  const bytes = Math.max(0, moved - r.lastBytes);
  const instant = (bytes * 1000) / dt;
  const alpha = 1 - Math.exp(-dt / r.tauMs);
  return { ...r, lastMs: nowMs, lastBytes: Math.max(moved, r.lastBytes), ema: r.ema + alpha * (instant - r.ema) };
}

/** The smoothed speed in bytes per second; null before any time has passed. */
export function speedOf(r: Rate): number | null {
  const t = r.lastMs - r.startMs;
  if (!(t > 0)) return null;
  return r.ema / (1 - Math.exp(-t / r.tauMs));
}

/** Seconds until `remaining` more bytes are moved at the smoothed speed; null when unknown. */
export function etaSeconds(r: Rate, remaining: number): number | null {
  if (remaining <= 0) return 0;
  const speed = speedOf(r);
  if (speed === null || speed <= 0) return null;
  const s = remaining / speed;
  return Number.isFinite(s) ? s : null;
}

/**
 * Time left for people: to the second under 10 s, to 5 s under a minute, to 10 s under 10
 * minutes, then to the minute ("7 s", "35 s", "2 min 10 s", "14 min", "1 h 05 min"); "?" when
 * unknown. Rounded up to its step below a minute (never "0 s" while bytes remain).
 */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 10) return `${Math.max(seconds > 0 ? 1 : 0, Math.ceil(seconds))} s`;
  if (seconds < 60) {
    const s = Math.ceil(seconds / 5) * 5;
    return s < 60 ? `${s} s` : '1 min';
  }
  if (seconds < 600) {
    const s = Math.round(seconds / 10) * 10;
    const m = Math.floor(s / 60);
    return s % 60 === 0 ? `${m} min` : `${m} min ${s % 60} s`;
  }
  const m = Math.round(seconds / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** A duration that has passed: "0.05 s", "4.2 s", "12 s", "2 min 05 s", "1 h 02 min". */
export function formatDuration(seconds: number): string {
  if (!(seconds >= 0)) return '0.00 s';
  if (seconds < 1) return `${seconds.toFixed(2)} s`;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}
