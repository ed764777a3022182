/**
 * An open-loop load generator at a truly fixed rate: request i is due at start + i / rate, sent
 * when due whatever earlier requests are doing, over a bounded pool of keep-alive connections.
 * Its latency is measured from when it was due, not from when a socket was free, so a slow
 * engine that makes requests wait is charged for the wait (no coordinated omission).
 *
 * autocannon, which the ingest benchmark uses, keeps a rate per second and per connection: each
 * connection sends back to back until it has made its share of the second, then idles until the
 * next second. At 1,000 req/s over 64 connections that is 64 requests at once at the top of every
 * second and a multiple of the asked rate for the first part of it, which measures bursts, not a
 * rate; with few connections the rate is capped by latency instead (Little's law). This sends
 * the asked rate evenly.
 */
import http from 'node:http';

export interface PacedRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface PacedResult {
  sent: number;
  /** Answered with 2xx. */
  ok: number;
  non2xx: number;
  /** Network errors and timeouts. */
  errors: number;
  statusCounts: Record<string, number>;
  /** Latency of each 2xx answer from when its request was due (ms), sorted ascending. */
  latencyMs: number[];
  /**
   * Each 2xx answer in the order answered: when its request was due (ms after the run began) and
   * its latency (ms). Says whether a tail is spread over the run or a few stalls.
   */
  answers: { dueMs: number[]; latencyMs: number[] };
  /** The longest a due request waited for a free connection (ms). */
  queueWaitMsMax: number;
  durationS: number;
}

/** Due requests are checked this often; each check sends every request that has come due. */
const tick_ms = 1;
const request_timeout_ms = 10_000;

export async function paced(o: {
  baseUrl: string;
  ratePerS: number;
  seconds: number;
  connectionsMax: number;
  request: (i: number) => PacedRequest;
  onProgress?: (sent: number, total: number) => void;
  /**
   * The keep-alive connections to send on (the caller's, kept open after the run: a warm-up's
   * connections then carry the measured run, as a fleet of scanners keeps its connections); by
   * default a pool of this run's own, closed at its end.
   */
  agent?: http.Agent;
}): Promise<PacedResult> {
  const url = new URL(o.baseUrl);
  const agent = o.agent ?? pacedAgent(o.connectionsMax);
  const total = Math.round(o.ratePerS * o.seconds);
  const intervalMs = 1000 / o.ratePerS;
  const out: PacedResult = { sent: 0, ok: 0, non2xx: 0, errors: 0, statusCounts: {}, latencyMs: [], answers: { dueMs: [], latencyMs: [] }, queueWaitMsMax: 0, durationS: 0 };
  let done = 0;
  const start = performance.now();

  await new Promise<void>((resolve) => {
    const finish = () => {
      done++;
      if (done === total) resolve();
    };
    const fire = (i: number) => {
      const dueAt = start + i * intervalMs;
      const spec = o.request(i);
      const req = http.request({
        agent, host: url.hostname, port: url.port, method: spec.method, path: spec.path, timeout: request_timeout_ms,
        headers: { ...spec.headers, ...(spec.body === undefined ? {} : { 'content-length': Buffer.byteLength(spec.body) }) },
      }, (res) => {
        res.resume();
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          out.statusCounts[status] = (out.statusCounts[status] ?? 0) + 1;
          if (status >= 200 && status < 300) {
            out.ok++;
            out.answers.dueMs.push(dueAt - start);
            out.answers.latencyMs.push(performance.now() - dueAt);
          } else {
            out.non2xx++;
          }
          finish();
        });
      });
      req.on('socket', () => { out.queueWaitMsMax = Math.max(out.queueWaitMsMax, performance.now() - dueAt); });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => { out.errors++; finish(); });
      req.end(spec.body);
      out.sent++;
    };
    const tick = () => {
      const now = performance.now();
      while (out.sent < total && start + out.sent * intervalMs <= now) fire(out.sent);
      o.onProgress?.(out.sent, total);
      if (out.sent < total) setTimeout(tick, tick_ms);
    };
    if (total === 0) resolve();
    else tick();
  });
  out.durationS = (performance.now() - start) / 1000;
  if (o.agent === undefined) agent.destroy();
  out.latencyMs = out.answers.latencyMs.slice().sort((a, b) => a - b);
  return out;
}

/** A pool of at most `connectionsMax` keep-alive connections, for one or several runs. */
export function pacedAgent(connectionsMax: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: connectionsMax, maxFreeSockets: connectionsMax });
}
