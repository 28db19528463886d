/**
 * Secondary indexes as hash maps from a canonical key string to the `_id` keys of the documents
 * holding it. Unique indexes are enforced through the same map; every index can serve exact
 * equality lookups on all of its fields. Range scans are not indexed (queries fall back to a scan).
 */
import type { Document } from 'mongodb';
import { keyString, valuesAtPath } from './compare.js';
import { compileFilter, type Matcher } from './engine.js';
import { CommandError } from './errors.js';
import { isPlainObject } from './bson.js';

export interface IndexKey {
  key: string;
  values: unknown[];
}

export class Index {
  readonly fields: string[];
  readonly unique: boolean;
  readonly sparse: boolean;
  /** Whether every field is a top-level field name (no dotted path). */
  private readonly topLevel: boolean;
  private readonly partial: Matcher | undefined;
  /** key string → ids (keyString of `_id`) of documents with that key. */
  readonly entries = new Map<string, Set<string>>();

  constructor(readonly spec: Document) {
    this.fields = Object.keys(spec.key as Document);
    this.unique = spec.unique === true;
    this.sparse = spec.sparse === true;
    this.topLevel = this.fields.every((f) => !f.includes('.'));
    this.partial = spec.partialFilterExpression ? compileFilter(spec.partialFilterExpression as Document) : undefined;
  }

  get name(): string {
    return this.spec.name as string;
  }

  /** Index keys of a document; empty when the document is not indexed (sparse/partial). */
  keysOf(doc: Document): IndexKey[] {
    if (this.partial && !this.partial.test(doc)) return [];
    // Top-level fields without arrays (the common case) have exactly one key.
    if (this.topLevel) {
      const values = this.fields.map((f) => doc[f]);
      if (!values.some(Array.isArray)) {
        if (this.sparse && values.every((v) => v === undefined)) return [];
        return [{ key: values.map(keyString).join('|'), values }];
      }
    }
    const perField = this.fields.map((f) => {
      const vals: unknown[] = [];
      for (const v of valuesAtPath(doc, f)) {
        if (Array.isArray(v)) vals.push(...(v.length ? v : [undefined]));
        else vals.push(v);
      }
      return vals.length ? vals : [undefined];
    });
    if (this.sparse && perField.every((vals) => vals.every((v) => v === undefined))) return [];
    let combos: unknown[][] = [[]];
    for (const vals of perField) {
      const next: unknown[][] = [];
      for (const c of combos) for (const v of vals) next.push([...c, v]);
      combos = next;
    }
    const seen = new Set<string>();
    const out: IndexKey[] = [];
    for (const values of combos) {
      const key = values.map(keyString).join('|');
      if (!seen.has(key)) {
        seen.add(key);
        out.push({ key, values });
      }
    }
    return out;
  }

  add(id: string, keys: IndexKey[]): void {
    for (const { key } of keys) {
      let set = this.entries.get(key);
      if (!set) this.entries.set(key, (set = new Set()));
      set.add(id);
    }
  }

  remove(id: string, keys: IndexKey[]): void {
    for (const { key } of keys) {
      const set = this.entries.get(key);
      if (!set) continue;
      set.delete(id);
      if (set.size === 0) this.entries.delete(key);
    }
  }

  /** The first key that another document already holds, if this index is unique. */
  conflict(id: string, keys: IndexKey[]): IndexKey | undefined {
    if (!this.unique) return undefined;
    for (const k of keys) {
      const set = this.entries.get(k.key);
      if (set && (set.size > 1 || !set.has(id))) return k;
    }
    return undefined;
  }

  /** Ids for an exact-equality lookup on every field of this index, or undefined if not applicable. */
  lookup(filter: Document): Set<string> | undefined {
    const parts: string[] = [];
    for (const f of this.fields) {
      if (!(f in filter)) return undefined;
      let v = filter[f];
      if (isPlainObject(v)) {
        const keys = Object.keys(v);
        if (keys.length === 1 && keys[0] === '$eq') v = v.$eq;
        else if (keys.some((k) => k.startsWith('$'))) return undefined;
      }
      if (Array.isArray(v) || v === null || v === undefined || v instanceof RegExp) return undefined;
      parts.push(keyString(v));
    }
    if (this.partial || this.sparse) return undefined;
    return this.entries.get(parts.join('|')) ?? new Set();
  }
}

/** Formats a value the way mongod's duplicate-key messages show it. */
function shellValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined || v === null) return 'null';
  if (v instanceof Date) return `new Date(${v.getTime()})`;
  const bt = (v as { _bsontype?: string })._bsontype;
  if (bt === 'ObjectId') return `ObjectId('${String(v)}')`;
  if (Array.isArray(v)) return `[ ${v.map(shellValue).join(', ')} ]`;
  if (isPlainObject(v)) return `{ ${Object.entries(v).map(([k, x]) => `${k}: ${shellValue(x)}`).join(', ')} }`;
  return String(v);
}

export function duplicateKeyError(ns: string, index: Index, key: IndexKey): CommandError {
  const keyPattern: Document = { ...(index.spec.key as Document) };
  const keyValue: Document = {};
  index.fields.forEach((f, i) => {
    keyValue[f] = key.values[i] === undefined ? null : key.values[i];
  });
  const dup = index.fields.map((f, i) => `${f}: ${shellValue(key.values[i])}`).join(', ');
  return new CommandError(
    11000,
    `E11000 duplicate key error collection: ${ns} index: ${index.name} dup key: { ${dup} }`,
    { keyPattern, keyValue },
  );
}

/** Validates an index spec from createIndexes and returns the normalized spec stored for listIndexes. */
export function normalizeIndexSpec(raw: Document): Document {
  if (!isPlainObject(raw.key) || Object.keys(raw.key).length === 0) {
    throw new CommandError(67, 'Index keys cannot be empty.');
  }
  if (typeof raw.name !== 'string' || raw.name.length === 0) {
    throw new CommandError(9, "The 'name' field is a required property of an index specification");
  }
  for (const [field, dir] of Object.entries(raw.key)) {
    const ok = dir === 1 || dir === -1 || typeof dir === 'number' || ['text', 'hashed', '2dsphere', '2d'].includes(String(dir));
    if (!ok) throw new CommandError(67, `Values in the index key pattern can't be of type ${typeof dir} for field '${field}'`);
  }
  if (raw.collation !== undefined && !(isPlainObject(raw.collation) && raw.collation.locale === 'simple')) {
    throw new CommandError(115, 'index collations are not supported by this server (the development emulator)');
  }
  const spec: Document = { v: 2, key: raw.key, name: raw.name };
  for (const [k, v] of Object.entries(raw)) if (k !== 'key' && k !== 'name' && k !== 'v' && k !== 'ns') spec[k] = v;
  return spec;
}

/** Whether two index specs are the same index (same key and same options that matter). */
export function sameIndexOptions(a: Document, b: Document): boolean {
  const relevant = ['unique', 'sparse', 'expireAfterSeconds', 'partialFilterExpression'];
  return relevant.every((k) => keyString(a[k] ?? null) === keyString(b[k] ?? null) || (k === 'unique' && !a[k] === !b[k]));
}
