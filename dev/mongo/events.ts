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
import { CommandError } from './errors.js';

function imageMissing(which: 'pre' | 'post', e: OplogEntry): CommandError {
  const want = which === 'pre' ? 'a pre-image for all update, delete and replace events' : 'a post-image for all update events';
  return new CommandError(47, `Change stream was configured to require ${want}, but the ${which}-image was not found for the event at ${e.ts.t},${e.ts.i}`);
}

/**
 * The event for one entry. `fullDocument`: 'default' (inserts and replaces only), 'updateLookup'
 * (updates get the current document, or null once deleted), 'whenAvailable' / 'required' (updates
 * get their post-image when the collection had changeStreamPreAndPostImages enabled at the time of
 * the write; 'required' fails with NoMatchingDocument (47) otherwise). `beforeChange`
 * (fullDocumentBeforeChange): 'off', 'whenAvailable' (the pre-image or null), 'required' (47 when
 * missing). `expanded` (showExpandedEvents) adds collectionUUID and operationDescription.
 */
export function buildEvent(e: OplogEntry, fullDocument: string, beforeChange: string, storage: Storage, expanded = false): Document {
  const identity = e.documentKey ? `${e.op}:${keyString(e.documentKey._id)}` : e.op;
  const ev: Document = { _id: eventToken(e.ts.t, e.ts.i, identity), operationType: e.op, clusterTime: e.ts, wallTime: e.wall };
  if (expanded && e.uuid && e.op !== 'dropDatabase') ev.collectionUUID = e.uuid;
  switch (e.op) {
    case 'insert':
    case 'replace':
      ev.fullDocument = e.doc;
      break;
    case 'update':
      if (fullDocument === 'updateLookup') ev.fullDocument = storage.get(e.db, e.coll!)?.getById(e.documentKey?._id) ?? null;
      else if (fullDocument !== 'default') {
        if (!e.images && fullDocument === 'required') throw imageMissing('post', e);
        ev.fullDocument = e.images ? (e.doc ?? null) : null;
      }
      break;
  }
  if (beforeChange !== 'off' && (e.op === 'update' || e.op === 'replace' || e.op === 'delete')) {
    if (!e.preImage && beforeChange === 'required') throw imageMissing('pre', e);
    ev.fullDocumentBeforeChange = e.preImage ?? null;
  }
  ev.ns = e.op === 'dropDatabase' ? { db: e.db } : { db: e.db, coll: e.coll };
  if (e.documentKey) ev.documentKey = e.documentKey;
  if (e.op === 'update') {
    // disambiguatedPaths is part of the expanded event shape only (mongod 6.1+).
    const { disambiguatedPaths, ...description } = (e.updateDescription ?? {}) as Document;
    ev.updateDescription = expanded ? { ...description, disambiguatedPaths: disambiguatedPaths ?? {} } : disambiguatedPaths ? description : e.updateDescription;
  }
  if (e.op === 'rename') ev.to = e.to;
  if (expanded && e.description) ev.operationDescription = e.description;
  if (expanded && e.stateBefore) ev.stateBeforeChange = e.stateBefore;
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
