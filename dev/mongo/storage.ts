/**
 * The catalog: databases → collections, and the oplog every write goes to. Collections are created
 * implicitly on first write, as on mongod. Namespace-level changes (drop, rename, dropDatabase) are
 * logged so change streams can report and invalidate on them.
 */
import type { Document } from 'mongodb';
import { Collection } from './collection.js';
import { CommandError } from './errors.js';
import { Oplog } from './oplog.js';
import { keyString } from './compare.js';

/** A read-only view (`create` with `viewOn`): documents of `viewOn` through `pipeline`. */
export interface ViewDefinition {
  viewOn: string;
  pipeline: Document[];
}

/** How deep views may be stacked on views (mongod's limit is 20). */
const MAX_VIEW_DEPTH = 20;

export class Storage {
  readonly databases = new Map<string, Map<string, Collection>>();
  /** Views by database, then name. */
  readonly views = new Map<string, Map<string, ViewDefinition>>();

  constructor(readonly oplog: Oplog) {}

  get(db: string, coll: string): Collection | undefined {
    return this.databases.get(db)?.get(coll);
  }

  view(db: string, name: string): ViewDefinition | undefined {
    return this.views.get(db)?.get(name);
  }

  /** Creates a view; logged as a `create` event with its definition (showExpandedEvents). */
  createView(db: string, name: string, def: ViewDefinition): void {
    validateNamespace(db, name);
    if (this.get(db, name) || this.view(db, name)) throw new CommandError(48, `Namespace ${db}.${name} already exists`);
    let views = this.views.get(db);
    if (!views) this.views.set(db, (views = new Map()));
    views.set(name, def);
    this.oplog.append({ op: 'create', db, coll: name, description: { viewOn: def.viewOn, pipeline: def.pipeline } });
  }

  /**
   * What a read of `db.name` sees: the collection, or for a view a transient collection holding
   * the view's result (computed per read; views are read-only). Undefined when neither exists.
   */
  readable(db: string, name: string, run: (docs: Document[], pipeline: Document[]) => Document[], depth = 0): Collection | undefined {
    const coll = this.get(db, name);
    if (coll) return coll;
    const def = this.view(db, name);
    if (!def) return undefined;
    if (depth >= MAX_VIEW_DEPTH) throw new CommandError(2, `View depth too deep or view cycle detected; maximum depth is ${MAX_VIEW_DEPTH}`);
    const source = this.readable(db, def.viewOn, run, depth + 1);
    const out = new Collection(db, name, this.oplog);
    for (const doc of run([...(source?.docs.values() ?? [])], def.pipeline)) out.docs.set(keyString(doc._id), doc);
    return out;
  }

  /** Writes to a view fail as on mongod (CommandNotSupportedOnView, 166). */
  assertWritable(db: string, name: string): void {
    if (this.view(db, name)) throw new CommandError(166, `Namespace ${db}.${name} is a view, not a collection`);
  }

  /** Returns the collection, creating it (and its database) when missing. */
  ensure(db: string, coll: string, options: Document = {}): Collection {
    validateNamespace(db, coll);
    this.assertWritable(db, coll);
    let colls = this.databases.get(db);
    if (!colls) this.databases.set(db, (colls = new Map()));
    let c = colls.get(coll);
    if (!c) {
      colls.set(coll, (c = new Collection(db, coll, this.oplog, options)));
      // mongod logs every creation, explicit or implicit (a `create` event with showExpandedEvents).
      this.oplog.append({ op: 'create', db, coll, uuid: c.uuid, description: { idIndex: { v: 2, key: { _id: 1 }, name: '_id_' }, ...options } });
    }
    return c;
  }

  /** Drops a collection; returns it, or undefined when it did not exist. */
  drop(db: string, coll: string): Collection | undefined {
    if (this.views.get(db)?.delete(coll)) return undefined;
    const colls = this.databases.get(db);
    const c = colls?.get(coll);
    if (!colls || !c) return undefined;
    colls.delete(coll);
    if (colls.size === 0) this.databases.delete(db);
    this.oplog.append({ op: 'drop', db, coll, uuid: c.uuid });
    return c;
  }

  dropDatabase(db: string): boolean {
    const colls = this.databases.get(db);
    if (!colls) return false;
    for (const name of [...colls.keys()]) this.drop(db, name);
    this.databases.delete(db);
    this.views.delete(db);
    this.oplog.append({ op: 'dropDatabase', db });
    return true;
  }

  rename(fromDb: string, fromColl: string, toDb: string, toColl: string, dropTarget: boolean): void {
    const source = this.get(fromDb, fromColl);
    if (!source) throw new CommandError(26, 'Source collection does not exist');
    validateNamespace(toDb, toColl);
    if (fromDb === toDb && fromColl === toColl) {
      throw new CommandError(20, "Can't rename a collection to itself");
    }
    const existing = this.get(toDb, toColl);
    if (existing) {
      if (!dropTarget) throw new CommandError(48, 'target namespace exists');
      this.drop(toDb, toColl);
    }
    const fromColls = this.databases.get(fromDb)!;
    fromColls.delete(fromColl);
    if (fromColls.size === 0) this.databases.delete(fromDb);
    let target = this.databases.get(toDb);
    if (!target) this.databases.set(toDb, (target = new Map()));
    const moved = new Collection(toDb, toColl, this.oplog, source.options);
    for (const [id, doc] of source.docs) moved.docs.set(id, doc);
    for (const [name, index] of source.indexes) moved.indexes.set(name, index);
    target.set(toColl, moved);
    const to = { db: toDb, coll: toColl };
    const description = { to, ...(existing ? { dropTarget: existing.uuid } : {}) };
    this.oplog.append({ op: 'rename', db: fromDb, coll: fromColl, uuid: source.uuid, to, description });
  }
}

export function validateNamespace(db: string, coll: string): void {
  if (!db || /[/\\. "$]/.test(db) || db.length > 63) throw new CommandError(73, `Invalid database name: '${db}'`);
  if (!coll || coll.includes('\0') || coll.startsWith('.') || coll.includes('$')) {
    throw new CommandError(73, `Invalid collection name: ${coll}`);
  }
}
