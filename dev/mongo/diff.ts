/**
 * `updateDescription` of an update event, computed by comparing the pre- and post-image, in the
 * shape mongod produces: changed paths in `updatedFields` (dotted, with array indexes for changed or
 * appended elements), removed paths in `removedFields`, shrunk arrays in `truncatedArrays`.
 */
import type { Document } from 'mongodb';
import { sameValue } from './compare.js';
import { isPlainObject } from './bson.js';

export interface UpdateDescription {
  updatedFields: Document;
  removedFields: string[];
  truncatedArrays: { field: string; newSize: number }[];
}

export function diffDocuments(before: Document, after: Document): UpdateDescription {
  const out: UpdateDescription = { updatedFields: {}, removedFields: [], truncatedArrays: [] };
  diffObject(before, after, '', out);
  return out;
}

function same(a: unknown, b: unknown): boolean {
  return sameValue(a, b);
}

function diffObject(before: Document, after: Document, prefix: string, out: UpdateDescription): void {
  for (const key of Object.keys(before)) {
    if (!(key in after)) out.removedFields.push(prefix + key);
  }
  for (const key of Object.keys(after)) {
    const path = prefix + key;
    const a = before[key];
    const b = after[key];
    if (!(key in before)) {
      out.updatedFields[path] = b;
    } else if (isPlainObject(a) && isPlainObject(b)) {
      if (sameKeyOrder(a, b)) diffObject(a, b, path + '.', out);
      else if (!same(a, b)) out.updatedFields[path] = b;
    } else if (Array.isArray(a) && Array.isArray(b)) {
      diffArray(a, b, path, out);
    } else if (!same(a, b)) {
      out.updatedFields[path] = b;
    }
  }
}

/** Embedded documents whose surviving fields kept their order can be described field by field. */
function sameKeyOrder(a: Document, b: Document): boolean {
  const kb = Object.keys(b).filter((k) => k in a);
  const ka = Object.keys(a).filter((k) => k in b);
  return ka.every((k, i) => k === kb[i]);
}

function diffArray(a: unknown[], b: unknown[], path: string, out: UpdateDescription): void {
  if (b.length < a.length) out.truncatedArrays.push({ field: path, newSize: b.length });
  const changed: number[] = [];
  for (let i = 0; i < b.length; i++) if (i >= a.length || !same(a[i], b[i])) changed.push(i);
  // Rewriting most of the array is reported as the whole array, as mongod does.
  if (changed.length > 0 && changed.length === b.length && a.length > 0) {
    out.updatedFields[path] = b;
    out.truncatedArrays = out.truncatedArrays.filter((t) => t.field !== path);
    return;
  }
  for (const i of changed) out.updatedFields[`${path}.${i}`] = b[i];
}
