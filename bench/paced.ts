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
 *
 * The generator shares the machine's two cores with the engine and Postgres, so it stays light,
 * as autocannon does: each request is written to a plain keep-alive socket as one buffer, and
 * answers are read by http-parser-js, one request at a time per connection (no pipelining).
 * node:http's client cost about 0.19 ms of CPU a request, a tenth of the machine at 1,000 req/s.
 */
import net from 'node:net';
import { HTTPParser } from 'http-parser-js';

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
/** How often requests in flight are checked against request_timeout_ms. */
const timeout_sweep_ms = 250;

/** How a request ended: its HTTP status, or null for a network error or a timeout. */
type Done = (status: number | null) => void;

interface Pending {
  bytes: Buffer;
  done: Done;
  /** Told when the request is written to a connection (for the queue wait). */
  onSocket: () => void;
}

/** One keep-alive connection carrying one request at a time. */
class Connection {
  readonly socket: net.Socket;
  readonly #parser = new HTTPParser(HTTPParser.RESPONSE);
  #status = 0;
  #done: Done | null = null;
  /** When the request in flight was written (performance.now()), for the timeout sweep. */
  sentAt = 0;

  constructor(host: string, port: number, onFree: (c: Connection) => void, onGone: (c: Connection) => void) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.#parser[HTTPParser.kOnHeadersComplete] = (info) => { this.#status = info.statusCode; };
    this.#parser[HTTPParser.kOnBody] = () => undefined;
    this.#parser[HTTPParser.kOnMessageComplete] = () => {
      const done = this.#done;
      this.#done = null;
      done?.(this.#status);
      onFree(this);
    };
    this.socket.on('data', (chunk: Buffer) => {
      const r = this.#parser.execute(chunk);
      if (r instanceof Error) this.socket.destroy(r);
    });
    const gone = () => {
      const done = this.#done;
      this.#done = null;
      done?.(null);
      onGone(this);
    };
    this.socket.once('close', gone);
    this.socket.on('error', () => undefined);
  }

  get busy(): boolean {
    return this.#done !== null;
  }

  send(p: Pending): void {
    this.#done = p.done;
    this.sentAt = performance.now();
    p.onSocket();
    this.socket.write(p.bytes);
  }
}

/**
 * At most `connectionsMax` keep-alive connections to one server, opened as requests need them
 * and kept between runs (a warm-up's connections then carry the measured run, as a fleet of
 * scanners keeps its connections); a request that finds them all busy waits for the first free.
 */
export class PacedConnections {
  readonly #host: string;
  readonly #port: number;
  readonly #max: number;
  readonly #all = new Set<Connection>();
  readonly #idle: Connection[] = [];
  readonly #queue: Pending[] = [];
  readonly #sweep: NodeJS.Timeout;

  constructor(baseUrl: string, connectionsMax: number) {
    const url = new URL(baseUrl);
    this.#host = url.hostname;
    this.#port = Number(url.port);
    this.#max = connectionsMax;
    this.#sweep = setInterval(() => {
      const now = performance.now();
      for (const c of this.#all) if (c.busy && now - c.sentAt > request_timeout_ms) c.socket.destroy(new Error('timeout'));
    }, timeout_sweep_ms);
    this.#sweep.unref();
  }

  send(p: Pending): void {
    const idle = this.#idle.pop();
    if (idle !== undefined) idle.send(p);
    else {
      this.#queue.push(p);
      if (this.#all.size < this.#max) this.#open();
    }
  }

  #open(): void {
    const c = new Connection(this.#host, this.#port, (free) => this.#free(free), (gone) => this.#gone(gone));
    this.#all.add(c);
    c.socket.once('connect', () => this.#free(c));
  }

  #free(c: Connection): void {
    const next = this.#queue.shift();
    if (next !== undefined) c.send(next);
    else this.#idle.push(c);
  }

  #gone(c: Connection): void {
    this.#all.delete(c);
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    if (this.#queue.length > 0 && this.#all.size < this.#max) this.#open();
  }

  close(): void {
    clearInterval(this.#sweep);
    for (const c of this.#all) c.socket.destroy();
  }
}

/** The request as bytes on the wire (HTTP/1.1, keep-alive). */
function requestBytes(spec: PacedRequest, host: string): Buffer {
  const body = spec.body === undefined ? null : Buffer.from(spec.body);
  let head = `${spec.method} ${spec.path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const [k, v] of Object.entries(spec.headers ?? {})) head += `${k}: ${v}\r\n`;
  if (body !== null) head += `content-length: ${body.length}\r\n`;
  head += '\r\n';
  return body === null ? Buffer.from(head) : Buffer.concat([Buffer.from(head), body]);
}

export async function paced(o: {
  baseUrl: string;
  ratePerS: number;
  seconds: number;
  connectionsMax: number;
  request: (i: number) => PacedRequest;
  onProgress?: (sent: number, total: number) => void;
  /** The connections to send on (the caller's, kept open after the run); by default this run's own. */
  connections?: PacedConnections;
}): Promise<PacedResult> {
  const host = new URL(o.baseUrl).host;
  const connections = o.connections ?? new PacedConnections(o.baseUrl, o.connectionsMax);
  const total = Math.round(o.ratePerS * o.seconds);
  const intervalMs = 1000 / o.ratePerS;
  const out: PacedResult = { sent: 0, ok: 0, non2xx: 0, errors: 0, statusCounts: {}, latencyMs: [], answers: { dueMs: [], latencyMs: [] }, queueWaitMsMax: 0, durationS: 0 };
  let done = 0;
  const start = performance.now();

  await new Promise<void>((resolve) => {
    const fire = (i: number) => {
      const dueAt = start + i * intervalMs;
      connections.send({
        bytes: requestBytes(o.request(i), host),
        onSocket: () => { out.queueWaitMsMax = Math.max(out.queueWaitMsMax, performance.now() - dueAt); },
        done: (status) => {
          if (status === null) {
            out.errors++;
          } else {
            out.statusCounts[status] = (out.statusCounts[status] ?? 0) + 1;
            if (status >= 200 && status < 300) {
              out.ok++;
              out.answers.dueMs.push(dueAt - start);
              out.answers.latencyMs.push(performance.now() - dueAt);
            } else {
              out.non2xx++;
            }
          }
          if (++done === total) resolve();
        },
      });
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
  if (o.connections === undefined) connections.close();
  out.latencyMs = out.answers.latencyMs.slice().sort((a, b) => a - b);
  return out;
}
