/**
 * The catalog: databases → collections, and the oplog every write goes to. Collections are created
 * implicitly on first write, as on mongod. Namespace-level changes (drop, rename, dropDatabase) are
 * logged so change streams can report and invalidate on them.
 */
import type { Document } from 'mongodb';
import { Collection } from './collection.js';
import { CommandError } from './errors.js';
import { Oplog } from './oplog.js';

export class Storage {
  readonly databases = new Map<string, Map<string, Collection>>();

  constructor(readonly oplog: Oplog) {}

  get(db: string, coll: string): Collection | undefined {
    return this.databases.get(db)?.get(coll);
  }

  /** Returns the collection, creating it (and its database) when missing. */
  ensure(db: string, coll: string, options: Document = {}): Collection {
    validateNamespace(db, coll);
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
