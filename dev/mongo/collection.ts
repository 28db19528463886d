/**
 * One collection: documents in a Map keyed by the canonical `_id` string (Map order = insertion
 * order = natural order), plus its indexes. Stored documents are never mutated; every write
 * replaces the stored object and appends to the oplog.
 */
import { ObjectId, UUID, type Document } from 'mongodb';
import { keyString } from './compare.js';
import { compileFilter } from './engine.js';
import { CommandError } from './errors.js';
import { Index, duplicateKeyError, normalizeIndexSpec, sameIndexOptions } from './indexes.js';
import type { Oplog } from './oplog.js';
import { diffDocuments } from './diff.js';
import { cachedSizeOf, isPlainObject, MAX_USER_BSON_SIZE } from './bson.js';

export const ID_INDEX_SPEC: Document = { v: 2, key: { _id: 1 }, name: '_id_' };

export class Collection {
  readonly uuid = new UUID();
  readonly docs = new Map<string, Document>();
  /** Secondary indexes by name (the `_id_` index is the `docs` map itself). */
  readonly indexes = new Map<string, Index>();

  constructor(
    readonly db: string,
    public name: string,
    private readonly oplog: Oplog,
    /** Creation options, changed by collMod (validator, changeStreamPreAndPostImages, ...). */
    public options: Document = {},
  ) {}

  /** Whether change streams may report pre- and post-images of this collection's writes. */
  private get images(): boolean {
    return isPlainObject(this.options.changeStreamPreAndPostImages) && this.options.changeStreamPreAndPostImages.enabled === true;
  }

  /**
   * Document validation (mongod's `validator` / `validationLevel` / `validationAction`): a document
   * that does not match fails with DocumentValidationFailure (121). With 'moderate', updates of
   * documents that already failed are not checked; 'warn' and level 'off' check nothing.
   * `errInfo.details` names the validator that failed (mongod explains it clause by clause).
   */
  private validate(doc: Document, before?: Document): void {
    const validator = this.options.validator;
    if (!isPlainObject(validator) || Object.keys(validator).length === 0) return;
    if (this.options.validationLevel === 'off' || this.options.validationAction === 'warn') return;
    const matcher = compileFilter(validator);
    if (matcher.test(doc)) return;
    if (before && this.options.validationLevel === 'moderate' && !matcher.test(before)) return;
    throw new CommandError(121, 'Document failed validation', {
      errInfo: { failingDocumentId: doc._id, details: { operatorName: '$and', specifiedAs: validator, reason: 'the document does not match the collection validator' } },
    });
  }

  get ns(): string {
    return `${this.db}.${this.name}`;
  }

  /** Inserts a document (adds an ObjectId `_id` first if missing); returns the stored document. */
  insert(input: Document): Document {
    // mongod stores `_id` as the first field, whatever order the client sent.
    const doc = !('_id' in input)
      ? { _id: new ObjectId(), ...input }
      : Object.keys(input)[0] === '_id'
        ? input
        : { _id: input._id, ...input };
    validateForStorage(doc);
    this.validate(doc);
    const size = cachedSizeOf(doc);
    if (size > MAX_USER_BSON_SIZE) {
      throw new CommandError(2, `object to insert too large. size in bytes: ${size}, max size: ${MAX_USER_BSON_SIZE}`);
    }
    const id = keyString(doc._id);
    if (this.docs.has(id)) {
      throw duplicateKeyError(this.ns, ID_INDEX, { key: id, values: [doc._id] });
    }
    const keyed = this.checkUnique(id, doc);
    for (const [index, keys] of keyed) index.add(id, keys);
    this.docs.set(id, doc);
    this.oplog.append({ op: 'insert', db: this.db, coll: this.name, uuid: this.uuid, documentKey: { _id: doc._id }, doc });
    return doc;
  }

  /** Replaces a stored document by a new version of it (update or replacement). */
  replace(before: Document, after: Document, kind: 'update' | 'replace'): Document {
    if (keyString(before._id) !== keyString(after._id)) {
      throw new CommandError(
        66,
        `Performing an update on the path '_id' would modify the immutable field '_id'`,
      );
    }
    validateForStorage(after);
    this.validate(after, before);
    if (cachedSizeOf(after) > MAX_USER_BSON_SIZE) {
      throw new CommandError(17419, `Resulting document after update is larger than ${MAX_USER_BSON_SIZE}`);
    }
    const id = keyString(before._id);
    const keyed = this.checkUnique(id, after);
    for (const index of this.indexes.values()) index.remove(id, index.keysOf(before));
    for (const [index, keys] of keyed) index.add(id, keys);
    this.docs.set(id, after);
    const entry =
      kind === 'replace'
        ? { op: 'replace' as const, doc: after }
        : { op: 'update' as const, doc: after, updateDescription: diffDocuments(before, after) };
    const images = this.images ? { images: true, preImage: before } : {};
    this.oplog.append({ ...entry, ...images, db: this.db, coll: this.name, uuid: this.uuid, documentKey: { _id: after._id } });
    return after;
  }

  remove(doc: Document): void {
    const id = keyString(doc._id);
    if (!this.docs.delete(id)) return;
    for (const index of this.indexes.values()) index.remove(id, index.keysOf(doc));
    const images = this.images ? { images: true, preImage: doc } : {};
    this.oplog.append({ op: 'delete', ...images, db: this.db, coll: this.name, uuid: this.uuid, documentKey: { _id: doc._id } });
  }

  getById(id: unknown): Document | undefined {
    return this.docs.get(keyString(id));
  }

  private checkUnique(id: string, doc: Document): [Index, ReturnType<Index['keysOf']>][] {
    const out: [Index, ReturnType<Index['keysOf']>][] = [];
    for (const index of this.indexes.values()) {
      const keys = index.keysOf(doc);
      const clash = index.conflict(id, keys);
      if (clash) throw duplicateKeyError(this.ns, index, clash);
      out.push([index, keys]);
    }
    return out;
  }

  /** Creates an index, building it over existing documents; false when it already existed. */
  createIndex(raw: Document): boolean {
    const spec = normalizeIndexSpec(raw);
    const name = spec.name as string;
    const keyStr = keyString(spec.key);
    if (name === '_id_' || keyStr === keyString({ _id: 1 })) {
      if (keyStr !== keyString({ _id: 1 }) || name !== '_id_') {
        throw new CommandError(86, `An existing index has the same name as the requested index. Requested index: ${JSON.stringify(spec)}`);
      }
      return false;
    }
    const existing = this.indexes.get(name);
    if (existing) {
      if (keyString(existing.spec.key) !== keyStr) {
        throw new CommandError(86, `An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(existing.spec)}`);
      }
      if (!sameIndexOptions(existing.spec, spec)) {
        throw new CommandError(85, `An equivalent index already exists with the same name but different options. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(existing.spec)}`);
      }
      return false;
    }
    for (const other of this.indexes.values()) {
      if (keyString(other.spec.key) === keyStr && sameIndexOptions(other.spec, spec)) {
        throw new CommandError(85, `Index already exists with a different name: ${other.name}`);
      }
    }
    const index = new Index(spec);
    for (const [id, doc] of this.docs) {
      const keys = index.keysOf(doc);
      const clash = index.conflict(id, keys);
      if (clash) throw duplicateKeyError(this.ns, index, clash);
      index.add(id, keys);
    }
    this.indexes.set(name, index);
    return true;
  }

  /** Candidate documents for a filter: `_id` or whole-index equality lookups, else every document. */
  candidates(filter: Document | undefined): Iterable<Document> {
    if (!filter || !isPlainObject(filter)) return this.docs.values();
    if ('_id' in filter) {
      const ids = idLookup(filter._id);
      if (ids) return this.byIds(ids);
    }
    let best: Set<string> | undefined;
    for (const index of this.indexes.values()) {
      const hit = index.lookup(filter);
      if (hit && (!best || hit.size < best.size)) best = hit;
    }
    if (best) return [...best].map((id) => this.docs.get(id)).filter((d): d is Document => d !== undefined);
    return this.docs.values();
  }

  private byIds(ids: string[]): Document[] {
    const out: Document[] = [];
    for (const id of ids) {
      const d = this.docs.get(id);
      if (d) out.push(d);
    }
    return out;
  }

  /** Matching documents in natural order (or index order), stopping after `limit` (0 = all); `variables`: the command's `let`. */
  find(filter: Document | undefined, limit = 0, variables?: Document): Document[] {
    // `{_id: <value>}` is answered exactly by the _id map: no filter to compile.
    if (filter && isPlainObject(filter) && '_id' in filter && Object.keys(filter).length === 1) {
      const ids = idLookup(filter._id);
      if (ids && ids.length === 1 && !isPlainObject(filter._id)) return this.byIds(ids);
    }
    const matcher = compileFilter(filter, variables);
    const out: Document[] = [];
    for (const doc of this.candidates(filter)) {
      if (matcher.test(doc)) {
        out.push(doc);
        if (limit > 0 && out.length >= limit) break;
      }
    }
    return out;
  }

  listIndexSpecs(): Document[] {
    return [ID_INDEX_SPEC, ...[...this.indexes.values()].map((i) => i.spec)];
  }
}

const ID_INDEX = new Index(ID_INDEX_SPEC);

/** `_id` values to look up directly when the filter pins `_id` by equality or `$in`. */
function idLookup(cond: unknown): string[] | undefined {
  if (isPlainObject(cond)) {
    const keys = Object.keys(cond);
    if (keys.length === 0 || !keys[0]!.startsWith('$')) return [keyString(cond)];
    if (keys.length !== 1) return undefined;
    if (keys[0] === '$eq') return idLookup(cond.$eq);
    if (keys[0] === '$in' && Array.isArray(cond.$in) && cond.$in.every((v) => !(v instanceof RegExp) && !Array.isArray(v) && v !== null)) {
      return [...new Set(cond.$in.map(keyString))];
    }
    return undefined;
  }
  if (Array.isArray(cond) || cond instanceof RegExp || cond === null || cond === undefined) return undefined;
  return [keyString(cond)];
}

function validateForStorage(doc: Document): void {
  if (Array.isArray(doc._id)) throw new CommandError(2, `can't use an array for _id`);
  if (doc._id instanceof RegExp) throw new CommandError(2, `can't use a regex for _id`);
}
