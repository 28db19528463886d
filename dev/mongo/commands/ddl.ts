/** Namespace and index commands: create, drop, dropDatabase, renameCollection, indexes, listings. */
import type { Document } from 'mongodb';
import { CommandError } from '../errors.js';
import { compileFilter } from '../engine.js';
import { isPlainObject } from '../bson.js';
import { keyString } from '../compare.js';
import { collectionName, type Handler } from './context.js';
import { docsCursorReply } from './batches.js';

export const create: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'create');
  const { create: _c, $db, lsid, $clusterTime, writeConcern, txnNumber, $readPreference, comment, ...options } = cmd;
  if (options.capped === true || options.timeseries !== undefined || options.viewOn !== undefined) {
    throw new CommandError(115, 'capped collections, time series and views are not supported by this server (the development emulator)');
  }
  const existing = ctx.state.storage.get(ctx.db, name);
  if (existing) {
    if (keyString(existing.options) === keyString(options)) return { ok: 1 };
    throw new CommandError(48, `Collection ${ctx.db}.${name} already exists.`);
  }
  ctx.state.storage.ensure(ctx.db, name, options);
  return { ok: 1 };
};

export const drop: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'drop');
  const dropped = ctx.state.storage.drop(ctx.db, name);
  // Since 7.0 dropping a missing collection succeeds.
  if (!dropped) return { ok: 1 };
  return { nIndexesWas: dropped.indexes.size + 1, ns: dropped.ns, ok: 1 };
};

export const dropDatabase: Handler = (_cmd, ctx) => {
  ctx.state.storage.dropDatabase(ctx.db);
  return { dropped: ctx.db, ok: 1 };
};

export const renameCollection: Handler = (cmd, ctx) => {
  if (ctx.db !== 'admin') throw new CommandError(13, 'renameCollection may only be run against the admin database.');
  const from = cmd.renameCollection;
  const to = cmd.to;
  if (typeof from !== 'string' || typeof to !== 'string') throw new CommandError(14, 'renameCollection and to must be namespace strings');
  const split = (ns: string) => {
    const dot = ns.indexOf('.');
    if (dot <= 0 || dot === ns.length - 1) throw new CommandError(73, `Invalid namespace specified '${ns}'`);
    return [ns.slice(0, dot), ns.slice(dot + 1)] as const;
  };
  const [fromDb, fromColl] = split(from);
  const [toDb, toColl] = split(to);
  ctx.state.storage.rename(fromDb, fromColl, toDb, toColl, cmd.dropTarget === true);
  return { ok: 1 };
};

export const createIndexes: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'createIndexes');
  const specs = cmd.indexes;
  if (!Array.isArray(specs) || specs.length === 0) throw new CommandError(2, 'Must specify at least one index to create');
  const existed = ctx.state.storage.get(ctx.db, name) !== undefined;
  const coll = ctx.state.storage.ensure(ctx.db, name);
  const before = coll.indexes.size + 1;
  let created = 0;
  for (const spec of specs) {
    if (!isPlainObject(spec)) throw new CommandError(14, 'index specification must be an object');
    if (coll.createIndex(spec)) {
      created += 1;
      const stored = coll.indexes.get(spec.name as string)?.spec ?? spec;
      ctx.state.storage.oplog.append({ op: 'createIndexes', db: ctx.db, coll: name, uuid: coll.uuid, description: { indexes: [stored] } });
    }
  }
  const reply: Document = { createdCollectionAutomatically: !existed, numIndexesBefore: before, numIndexesAfter: coll.indexes.size + 1 };
  if (created === 0) reply.note = 'all indexes already exist';
  reply.ok = 1;
  return reply;
};

export const listIndexes: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'listIndexes');
  const coll = ctx.state.storage.get(ctx.db, name);
  if (!coll) throw new CommandError(26, `ns does not exist: ${ctx.db}.${name}`);
  const batch = ((cmd.cursor ?? {}) as Document).batchSize;
  return docsCursorReply(ctx, `${ctx.db}.${name}`, coll.listIndexSpecs(), typeof batch === 'number' ? batch : 101);
};

export const dropIndexes: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'dropIndexes');
  const coll = ctx.state.storage.get(ctx.db, name);
  if (!coll) throw new CommandError(26, `ns not found ${ctx.db}.${name}`);
  const nIndexesWas = coll.indexes.size + 1;
  const which = cmd.index;
  const names = Array.isArray(which) ? which : [which];
  const dropped: Document[] = [];
  for (const target of names) {
    if (target === '*') {
      dropped.push(...[...coll.indexes.values()].map((i) => i.spec));
      coll.indexes.clear();
      continue;
    }
    let indexName: string | undefined;
    if (typeof target === 'string') indexName = target;
    else if (isPlainObject(target)) indexName = [...coll.indexes.values()].find((i) => keyString(i.spec.key) === keyString(target))?.name;
    if (indexName === '_id_') throw new CommandError(72, 'cannot drop _id index');
    if (!indexName || !coll.indexes.has(indexName)) {
      throw new CommandError(27, `index not found with name [${typeof target === 'string' ? target : JSON.stringify(target)}]`);
    }
    dropped.push(coll.indexes.get(indexName)!.spec);
    coll.indexes.delete(indexName);
  }
  if (dropped.length > 0) ctx.state.storage.oplog.append({ op: 'dropIndexes', db: ctx.db, coll: name, uuid: coll.uuid, description: { indexes: dropped } });
  return { nIndexesWas, ok: 1 };
};

export const listCollections: Handler = (cmd, ctx) => {
  const colls = ctx.state.storage.databases.get(ctx.db);
  const nameOnly = cmd.nameOnly === true;
  const all: Document[] = [...(colls?.values() ?? [])].map((c) =>
    nameOnly
      ? { name: c.name, type: 'collection' }
      : { name: c.name, type: 'collection', options: c.options, info: { readOnly: false, uuid: c.uuid }, idIndex: { v: 2, key: { _id: 1 }, name: '_id_' } },
  );
  const matcher = compileFilter(cmd.filter as Document | undefined);
  const batch = ((cmd.cursor ?? {}) as Document).batchSize;
  return docsCursorReply(ctx, `${ctx.db}.$cmd.listCollections`, all.filter((d) => matcher.test(d)), typeof batch === 'number' ? batch : 101);
};

export const listDatabases: Handler = (cmd, ctx) => {
  const matcher = compileFilter(cmd.filter as Document | undefined);
  const databases: Document[] = [];
  for (const [name, colls] of ctx.state.storage.databases) {
    let docs = 0;
    for (const c of colls.values()) docs += c.docs.size;
    const entry = cmd.nameOnly === true ? { name } : { name, sizeOnDisk: 4096 * (1 + colls.size) + docs * 64, empty: docs === 0 };
    if (matcher.test(entry)) databases.push(entry);
  }
  const totalSize = databases.reduce((s, d) => s + ((d.sizeOnDisk as number | undefined) ?? 0), 0);
  return cmd.nameOnly === true ? { databases, ok: 1 } : { databases, totalSize, totalSizeMb: Math.floor(totalSize / 1048576), ok: 1 };
};

/** collMod options that change the collection's options (and what they take effect on). */
const COLLMOD_OPTIONS = ['validator', 'validationLevel', 'validationAction', 'changeStreamPreAndPostImages'];
/** Accepted and recorded in the modify event only (TTL and hidden index changes are not enforced here). */
const COLLMOD_RECORDED = ['index', 'expireAfterSeconds', 'comment'];

/**
 * collMod: `validator` / `validationLevel` / `validationAction` take effect on later writes,
 * `changeStreamPreAndPostImages: {enabled}` on which writes keep images for change streams. Each
 * collMod is logged as a `modify` event (showExpandedEvents) with the changed options and the
 * collection's options before the change.
 */
export const collMod: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'collMod');
  const coll = ctx.state.storage.get(ctx.db, name);
  if (!coll) throw new CommandError(26, `ns does not exist: ${ctx.db}.${name}`);
  const changes: Document = {};
  for (const [key, value] of Object.entries(cmd)) {
    if (key === 'collMod' || key.startsWith('$') || ['lsid', 'txnNumber', 'writeConcern', 'comment', 'dryRun'].includes(key)) continue;
    if (!COLLMOD_OPTIONS.includes(key) && !COLLMOD_RECORDED.includes(key)) {
      throw new CommandError(115, `collMod option '${key}' is not supported by this server (the development emulator)`);
    }
    changes[key] = value;
  }
  if (changes.validationLevel !== undefined && !['off', 'strict', 'moderate'].includes(changes.validationLevel)) {
    throw new CommandError(2, `Enumeration value '${String(changes.validationLevel)}' for field 'validationLevel' is not a valid value.`);
  }
  if (changes.validationAction !== undefined && !['error', 'warn', 'errorAndLog'].includes(changes.validationAction)) {
    throw new CommandError(2, `Enumeration value '${String(changes.validationAction)}' for field 'validationAction' is not a valid value.`);
  }
  if (changes.validator !== undefined) {
    if (!isPlainObject(changes.validator)) throw new CommandError(14, "BSON field 'collMod.validator' is the wrong type, expected type 'object'");
    compileFilter(changes.validator); // an invalid validator is refused now, not at the next write
  }
  if (changes.changeStreamPreAndPostImages !== undefined && !(isPlainObject(changes.changeStreamPreAndPostImages) && typeof changes.changeStreamPreAndPostImages.enabled === 'boolean')) {
    throw new CommandError(14, "BSON field 'collMod.changeStreamPreAndPostImages.enabled' is missing but a required field");
  }
  const before = coll.options;
  const next: Document = { ...before };
  for (const key of COLLMOD_OPTIONS) if (changes[key] !== undefined) next[key] = changes[key];
  coll.options = next;
  ctx.state.storage.oplog.append({
    op: 'modify', db: ctx.db, coll: name, uuid: coll.uuid,
    description: changes, stateBefore: { collectionOptions: { uuid: coll.uuid, ...before } },
  });
  return { ok: 1 };
};
