/**
 * The QR benchmark's fixed-rate generator (bench/paced.ts) against a real HTTP server: every
 * request arrives whole (method, path, headers, body), at most the asked number of keep-alive
 * connections carry them, and each answer is counted by its status; a connection the server
 * drops mid-request counts as an error and the run still ends.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PacedConnections, paced } from '../bench/paced.ts';

let server: http.Server;
let base: string;
const seen: { method: string; url: string; auth: string | undefined; body: string }[] = [];
const sockets = new Set<unknown>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    sockets.add(req.socket);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => { body += c; });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
      if (req.url === '/drop') { req.socket.destroy(); return; }
      const status = req.url === '/busy' ? 503 : req.method === 'POST' ? 201 : 200;
      const answer = JSON.stringify({ got: body.length });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
      res.end(answer);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

it('sends every request whole over at most the asked connections, and counts each answer by status', async () => {
  seen.length = 0;
  sockets.clear();
  const r = await paced({
    baseUrl: base, ratePerS: 400, seconds: 0.5, connectionsMax: 3,
    request: (i) => (i % 10 === 9
      ? { method: 'GET', path: '/busy' }
      : { method: 'POST', path: `/pay/${i}`, headers: { authorization: `Bearer t${i}`, 'content-type': 'application/json' }, body: JSON.stringify({ n: i, note: '支付' }) }),
  });
  expect(r.sent).toBe(200);
  expect(r.statusCounts).toEqual({ 201: 180, 503: 20 });
  expect(r.ok).toBe(180);
  expect(r.non2xx).toBe(20);
  expect(r.errors).toBe(0);
  expect(r.latencyMs).toHaveLength(180);
  expect(r.answers.dueMs).toHaveLength(180);
  expect(r.latencyMs.every((ms, i) => ms >= 0 && (i === 0 || ms >= r.latencyMs[i - 1]))).toBe(true);
  expect(seen).toHaveLength(200);
  const posted = seen.filter((s) => s.method === 'POST').sort((a, b) => Number(a.url.split('/')[2]) - Number(b.url.split('/')[2]));
  expect(posted).toHaveLength(180);
  for (const s of posted) {
    const i = Number(s.url.split('/')[2]);
    expect(s.auth).toBe(`Bearer t${i}`);
    expect(JSON.parse(s.body)).toEqual({ n: i, note: '支付' });
  }
  expect(sockets.size).toBeGreaterThan(0);
  expect(sockets.size).toBeLessThanOrEqual(3);
});

it('keeps the caller\'s connections open from one run to the next', async () => {
  sockets.clear();
  const conns = new PacedConnections(base, 2);
  try {
    const first = await paced({ baseUrl: base, ratePerS: 200, seconds: 0.25, connectionsMax: 2, connections: conns, request: () => ({ method: 'GET', path: '/' }) });
    const afterFirst = sockets.size;
    const second = await paced({ baseUrl: base, ratePerS: 200, seconds: 0.25, connectionsMax: 2, connections: conns, request: () => ({ method: 'GET', path: '/' }) });
    expect(first.ok + second.ok).toBe(100);
    expect(sockets.size).toBe(afterFirst);
  } finally {
    conns.close();
  }
});

it('a connection dropped by the server counts as an error, and the run still ends', async () => {
  const r = await paced({
    baseUrl: base, ratePerS: 100, seconds: 0.3, connectionsMax: 2,
    request: (i) => ({ method: 'GET', path: i % 5 === 0 ? '/drop' : '/' }),
  });
  expect(r.sent).toBe(30);
  expect(r.errors).toBe(6);
  expect(r.ok).toBe(24);
});
