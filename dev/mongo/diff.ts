/**
 * `updateDescription` of an update event, computed by comparing the pre- and post-image, in the
 * shape mongod produces: changed paths in `updatedFields` (dotted, with array indexes for changed or
 * appended elements), removed paths in `removedFields`, shrunk arrays in `truncatedArrays`, and for
 * showExpandedEvents streams `disambiguatedPaths`: each reported path whose dotted form is
 * ambiguous (a numeric field name, an array index, a field name with a dot), as its components,
 * array indexes as integers (mongod 6.1+).
 */
import type { Document } from 'mongodb';
import { sameValue } from './compare.js';
import { isPlainObject } from './bson.js';

export interface UpdateDescription {
  updatedFields: Document;
  removedFields: string[];
  truncatedArrays: { field: string; newSize: number }[];
  /** Only when some path is ambiguous; reported to showExpandedEvents streams only. */
  disambiguatedPaths?: Record<string, (string | number)[]>;
}

export function diffDocuments(before: Document, after: Document): UpdateDescription {
  const out: UpdateDescription = { updatedFields: {}, removedFields: [], truncatedArrays: [] };
  diffObject(before, after, '', out, []);
  return out;
}

/** Records the components of `path` when its dotted form does not tell field names from indexes. */
function note(out: UpdateDescription, path: string, parts: (string | number)[]): void {
  if (!parts.some((p) => typeof p === 'number' || /^\d+$/.test(p) || p.includes('.'))) return;
  (out.disambiguatedPaths ??= {})[path] = parts;
}

function same(a: unknown, b: unknown): boolean {
  return sameValue(a, b);
}

function diffObject(before: Document, after: Document, prefix: string, out: UpdateDescription, parts: (string | number)[]): void {
  for (const key of Object.keys(before)) {
    if (!(key in after)) {
      out.removedFields.push(prefix + key);
      note(out, prefix + key, [...parts, key]);
    }
  }
  for (const key of Object.keys(after)) {
    const path = prefix + key;
    const here = [...parts, key];
    const a = before[key];
    const b = after[key];
    if (!(key in before)) {
      out.updatedFields[path] = b;
      note(out, path, here);
    } else if (isPlainObject(a) && isPlainObject(b)) {
      if (sameKeyOrder(a, b)) diffObject(a, b, path + '.', out, here);
      else if (!same(a, b)) {
        out.updatedFields[path] = b;
        note(out, path, here);
      }
    } else if (Array.isArray(a) && Array.isArray(b)) {
      diffArray(a, b, path, out, here);
    } else if (!same(a, b)) {
      out.updatedFields[path] = b;
      note(out, path, here);
    }
  }
}

/** Embedded documents whose surviving fields kept their order can be described field by field. */
function sameKeyOrder(a: Document, b: Document): boolean {
  const kb = Object.keys(b).filter((k) => k in a);
  const ka = Object.keys(a).filter((k) => k in b);
  return ka.every((k, i) => k === kb[i]);
}

function diffArray(a: unknown[], b: unknown[], path: string, out: UpdateDescription, parts: (string | number)[]): void {
  if (b.length < a.length) {
    out.truncatedArrays.push({ field: path, newSize: b.length });
    note(out, path, parts);
  }
  const changed: number[] = [];
  for (let i = 0; i < b.length; i++) if (i >= a.length || !same(a[i], b[i])) changed.push(i);
  // An element that stays an object with the same field order is described field by field.
  const nested = (i: number) => {
    const x = a[i];
    const y = b[i];
    return i < a.length && isPlainObject(x) && isPlainObject(y) && sameKeyOrder(x, y);
  };
  const replaced = changed.filter((i) => !nested(i));
  // Rewriting most of the array is reported as the whole array, as mongod does.
  if (replaced.length > 0 && replaced.length === b.length && a.length > 0) {
    out.updatedFields[path] = b;
    out.truncatedArrays = out.truncatedArrays.filter((t) => t.field !== path);
    note(out, path, parts);
    return;
  }
  for (const i of changed) {
    if (nested(i)) {
      diffObject(a[i] as Document, b[i] as Document, `${path}.${i}.`, out, [...parts, i]);
      continue;
    }
    out.updatedFields[`${path}.${i}`] = b[i];
    note(out, `${path}.${i}`, [...parts, i]);
  }
}
