/**
 * Change events built from oplog entries, shaped like mongod 8's: `_id` (resume token),
 * operationType, clusterTime, wallTime, fullDocument, ns, documentKey, updateDescription, to.
 */
import type { Document } from 'mongodb';
import { keyString } from './compare.js';
import { cachedSizeOf, sizeOf } from './bson.js';
import type { OplogEntry } from './oplog.js';
import type { Storage } from './storage.js';
import { eventToken } from './tokens.js';

/**
 * The event for one entry. `fullDocument`: 'default' (inserts and replaces only), 'updateLookup'
 * (updates get the current document, or null once deleted), 'whenAvailable' / 'required' (updates
 * get the post-image kept in the entry).
 */
export function buildEvent(e: OplogEntry, fullDocument: string, beforeChange: string, storage: Storage): Document {
  const identity = e.documentKey ? `${e.op}:${keyString(e.documentKey._id)}` : e.op;
  const ev: Document = { _id: eventToken(e.ts.t, e.ts.i, identity), operationType: e.op, clusterTime: e.ts, wallTime: e.wall };
  switch (e.op) {
    case 'insert':
    case 'replace':
      ev.fullDocument = e.doc;
      break;
    case 'update':
      if (fullDocument === 'updateLookup') ev.fullDocument = storage.get(e.db, e.coll!)?.getById(e.documentKey?._id) ?? null;
      else if (fullDocument !== 'default') ev.fullDocument = e.doc ?? null;
      break;
  }
  // No pre-images are kept: 'whenAvailable' reports them as unavailable.
  if (beforeChange !== 'off' && (e.op === 'update' || e.op === 'replace' || e.op === 'delete')) ev.fullDocumentBeforeChange = null;
  ev.ns = e.op === 'dropDatabase' ? { db: e.db } : { db: e.db, coll: e.coll };
  if (e.documentKey) ev.documentKey = e.documentKey;
  if (e.op === 'update') ev.updateDescription = e.updateDescription;
  if (e.op === 'rename') ev.to = e.to;
  return ev;
}

/** The invalidate that follows a drop/rename (collection stream) or dropDatabase (database stream). */
export function invalidateEvent(e: OplogEntry): Document {
  return { _id: eventToken(e.ts.t, e.ts.i, undefined, true), operationType: 'invalidate', clusterTime: e.ts, wallTime: e.wall };
}


/**
 * An upper bound of an event's BSON size, for the 16 MiB batch budget (events as built here, not
 * reshaped by a user pipeline). Stored documents are immutable, so their exact size is computed
 * once and cached; the rest of an event is small.
 */
export function estimateSize(event: Document): number {
  const doc = event.fullDocument as Document | null | undefined;
  let size = 1024 + ((event._id as { _data?: string })._data?.length ?? 0);
  if (doc) size += cachedSizeOf(doc);
  if (event.updateDescription) size += sizeOf(event.updateDescription as Document);
  return size;
}
