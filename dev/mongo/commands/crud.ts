/** insert / update / delete / findAndModify, with per-statement write errors like mongod. */
import type { Document } from 'mongodb';
import { sameValue } from '../compare.js';
import { compileFilter, letVariables, projectAll } from '../engine.js';
import { CommandError } from '../errors.js';
import { isPlainObject } from '../bson.js';
import { collectionName, type CommandContext, type Handler } from './context.js';
import { findFirst, rejectCollation, updatedDocument, upsertDocument, validateUpdate, writeErrorEntry } from './writes.js';

function statements(cmd: Document, field: string): Document[] {
  const list = cmd[field];
  if (!Array.isArray(list)) throw new CommandError(14, `BSON field '${Object.keys(cmd)[0]}.${field}' is missing but a required field`);
  return list as Document[];
}

function writeReply(n: number, writeErrors: Document[], extra: Document = {}): Document {
  const reply: Document = { n, ...extra };
  if (writeErrors.length > 0) reply.writeErrors = writeErrors;
  reply.ok = 1;
  return reply;
}

export const insert: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'insert');
  const docs = statements(cmd, 'documents');
  const ordered = cmd.ordered !== false;
  const errors: Document[] = [];
  let n = 0;
  const coll = ctx.state.storage.ensure(ctx.db, name);
  for (let i = 0; i < docs.length; i++) {
    try {
      const doc = docs[i];
      if (!isPlainObject(doc)) throw new CommandError(14, 'document to insert must be an object');
      coll.insert(doc);
      n += 1;
    } catch (error) {
      errors.push(writeErrorEntry(i, error));
      if (ordered) break;
    }
  }
  return writeReply(n, errors);
};

export interface UpdateOutcome {
  n: number;
  nModified: number;
  upsertedId?: unknown;
}

/** One update statement (`{q, u, multi, upsert, arrayFilters, sort}`) against `db.name`; `vars`: the command's `let`. */
export function runUpdate(ctx: CommandContext, db: string, name: string, spec: Document, vars?: Document): UpdateOutcome {
  if (!isPlainObject(spec)) throw new CommandError(14, 'update statement must be an object');
  rejectCollation(spec.collation);
  const u = validateUpdate(spec.u);
  const q = (spec.q ?? {}) as Document;
  const arrayFilters = spec.arrayFilters as Document[] | undefined;
  const storage = ctx.state.storage;
  const coll = storage.get(db, name);
  if (spec.multi === true && !Array.isArray(u) && !Object.keys(u)[0]?.startsWith('$') && Object.keys(u).length > 0) {
    throw new CommandError(9, 'multi update is not supported for replacement-style update');
  }
  const targets = spec.multi === true ? (coll?.find(q, 0, vars) ?? []) : [findFirst(coll, q, spec.sort as Document | undefined, vars)].filter((d): d is Document => !!d);
  if (targets.length === 0) {
    compileFilter(q, vars); // an invalid filter fails even when the collection is empty
    if (spec.upsert !== true) return { n: 0, nModified: 0 };
    const doc = upsertDocument(q, u, arrayFilters, vars);
    storage.ensure(db, name).insert(doc);
    return { n: 1, nModified: 0, upsertedId: doc._id };
  }
  let nModified = 0;
  for (const before of targets) {
    const { after, kind } = updatedDocument(before, u, arrayFilters, q, vars);
    if (!sameValue(after, before)) {
      coll!.replace(before, after, kind);
      nModified += 1;
    }
  }
  return { n: targets.length, nModified };
}

export const update: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'update');
  const specs = statements(cmd, 'updates');
  const vars = letVariables(cmd.let);
  const ordered = cmd.ordered !== false;
  const errors: Document[] = [];
  const upserted: Document[] = [];
  let n = 0;
  let nModified = 0;
  for (let i = 0; i < specs.length; i++) {
    try {
      const r = runUpdate(ctx, ctx.db, name, specs[i]!, vars);
      n += r.n;
      nModified += r.nModified;
      if (r.upsertedId !== undefined) upserted.push({ index: i, _id: r.upsertedId });
    } catch (error) {
      errors.push(writeErrorEntry(i, error));
      if (ordered) break;
    }
  }
  return writeReply(n, errors, { nModified, ...(upserted.length ? { upserted } : {}) });
};

/** One delete statement (`{q, limit: 0 | 1}`) against `db.name`; returns the number deleted. `vars`: the command's `let`. */
export function runDelete(ctx: CommandContext, db: string, name: string, spec: Document, vars?: Document): number {
  if (!isPlainObject(spec)) throw new CommandError(14, 'delete statement must be an object');
  rejectCollation(spec.collation);
  const q = (spec.q ?? {}) as Document;
  const coll = ctx.state.storage.get(db, name);
  if (!coll) {
    compileFilter(q, vars);
    return 0;
  }
  const victims = Number(spec.limit ?? 0) === 1 ? [findFirst(coll, q, spec.sort as Document | undefined, vars)].filter((d): d is Document => !!d) : coll.find(q, 0, vars);
  for (const doc of victims) coll.remove(doc);
  return victims.length;
}

const deleteCommand: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'delete');
  const specs = statements(cmd, 'deletes');
  const vars = letVariables(cmd.let);
  const ordered = cmd.ordered !== false;
  const errors: Document[] = [];
  let n = 0;
  for (let i = 0; i < specs.length; i++) {
    try {
      n += runDelete(ctx, ctx.db, name, specs[i]!, vars);
    } catch (error) {
      errors.push(writeErrorEntry(i, error));
      if (ordered) break;
    }
  }
  return writeReply(n, errors);
};
export { deleteCommand as delete };

export const findAndModify: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, Object.keys(cmd)[0]!);
  const query = (cmd.query ?? {}) as Document;
  const sort = cmd.sort as Document | undefined;
  const fields = cmd.fields as Document | undefined;
  const vars = letVariables(cmd.let);
  const storage = ctx.state.storage;
  const coll = storage.get(ctx.db, name);
  const shape = (doc: Document | undefined | null) =>
    doc ? (fields && Object.keys(fields).length ? projectAll([doc], {}, fields)[0]! : doc) : null;
  if (cmd.remove === true) {
    if (cmd.update !== undefined) throw new CommandError(9, 'Cannot specify both an update and remove=true');
    if (cmd.upsert === true) throw new CommandError(9, 'Cannot specify both upsert=true and remove=true');
    if (cmd.new === true) throw new CommandError(9, 'Cannot specify both new=true and remove=true; \'remove\' always returns the deleted document');
    const victim = findFirst(coll, query, sort, vars);
    if (!victim) {
      compileFilter(query, vars);
      return { lastErrorObject: { n: 0 }, value: null, ok: 1 };
    }
    coll!.remove(victim);
    return { lastErrorObject: { n: 1 }, value: shape(victim), ok: 1 };
  }
  if (cmd.update === undefined) throw new CommandError(9, 'Either an update or remove=true must be specified');
  const u = validateUpdate(cmd.update);
  const arrayFilters = cmd.arrayFilters as Document[] | undefined;
  const before = findFirst(coll, query, sort, vars);
  if (!before) {
    compileFilter(query, vars);
    if (cmd.upsert !== true) return { lastErrorObject: { n: 0, updatedExisting: false }, value: null, ok: 1 };
    const doc = upsertDocument(query, u, arrayFilters, vars);
    storage.ensure(ctx.db, name).insert(doc);
    return {
      lastErrorObject: { n: 1, updatedExisting: false, upserted: doc._id },
      value: cmd.new === true ? shape(doc) : null,
      ok: 1,
    };
  }
  const { after, kind } = updatedDocument(before, u, arrayFilters, query, vars);
  if (!sameValue(after, before)) coll!.replace(before, after, kind);
  return { lastErrorObject: { n: 1, updatedExisting: true }, value: shape(cmd.new === true ? after : before), ok: 1 };
};
