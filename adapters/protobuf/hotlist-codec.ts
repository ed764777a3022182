/** Protobuf encoding of the terminals' hotlist (hotlist.proto); the JSON form has the same field names. */
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import type { Type } from 'protobufjs';

export const hotlist_protobuf_content_type = 'application/x-protobuf';

const proto_source = readFileSync(new URL('./hotlist.proto', import.meta.url), 'utf8');
const proto_root = protobuf.parse(proto_source, { keepCase: true }).root;
proto_root.resolveAll();
const HotlistPageType: Type = proto_root.lookupType('onecard.cards.v1.HotlistPage');
const HotlistDeltaType: Type = proto_root.lookupType('onecard.cards.v1.HotlistDelta');
const status_values = proto_root.lookupEnum('onecard.cards.v1.HotlistStatus').values;
const op_values = proto_root.lookupEnum('onecard.cards.v1.HotlistOp').values;

export interface HotlistEntryView {
  card_no: string;
  status: string;
  since: string;
}

export interface HotlistPageView {
  version: string;
  entries: HotlistEntryView[];
  next_cursor: string | null;
}

export interface HotlistChangeView {
  version: string;
  card_no: string;
  op: 'ADD' | 'REMOVE';
  status: string;
  changed_at: string;
}

export interface HotlistDeltaView {
  from_version: string;
  to_version: string;
  changes: HotlistChangeView[];
  more: boolean;
}

function statusCode(s: string): number {
  const v = status_values[s];
  if (v === undefined) throw new Error(`hotlist status ${s} has no protobuf value`);
  return v;
}

function check(type: Type, message: Record<string, unknown>): Uint8Array {
  // fromObject turns decimal-string versions into Longs; verify then checks the typed message.
  const typed = type.fromObject(message);
  const err = type.verify(typed);
  if (err) throw new Error(`hotlist message invalid: ${err}`);
  return type.encode(typed).finish();
}

export function encodeHotlistPage(p: HotlistPageView): Uint8Array {
  return check(HotlistPageType, {
    version: p.version,
    entries: p.entries.map((e) => ({ card_no: e.card_no, status: statusCode(e.status), since: e.since })),
    next_cursor: p.next_cursor ?? '',
  });
}

export function encodeHotlistDelta(d: HotlistDeltaView): Uint8Array {
  return check(HotlistDeltaType, {
    from_version: d.from_version,
    to_version: d.to_version,
    changes: d.changes.map((c) => ({ version: c.version, card_no: c.card_no, op: op_values[c.op], status: statusCode(c.status), changed_at: c.changed_at })),
    more: d.more,
  });
}

/** Decoders, for clients and tests: 64-bit numbers as decimal strings, enums as names. */
const to_object_options = { longs: String, enums: String, defaults: true, arrays: true } as const;

export function decodeHotlistPage(bytes: Uint8Array): HotlistPageView {
  const o = HotlistPageType.toObject(HotlistPageType.decode(bytes), to_object_options) as { version: string; entries: HotlistEntryView[]; next_cursor: string };
  return { version: o.version, entries: o.entries, next_cursor: o.next_cursor === '' ? null : o.next_cursor };
}

export function decodeHotlistDelta(bytes: Uint8Array): HotlistDeltaView {
  return HotlistDeltaType.toObject(HotlistDeltaType.decode(bytes), to_object_options) as HotlistDeltaView;
}
