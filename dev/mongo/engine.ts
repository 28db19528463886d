/**
 * Query, projection, update and aggregation semantics, delegated to mingo. This module only adapts
 * mingo's errors to mongod's codes (so an unsupported operator fails loudly with the code mongod
 * would use) and handles the few update operators mingo does not know ($setOnInsert).
 */
import { Aggregator } from 'mingo/aggregator';
import { Context } from 'mingo/core';
import * as accumulatorOperators from 'mingo/operators/accumulator';
import * as expressionOperators from 'mingo/operators/expression';
import * as pipelineOperators from 'mingo/operators/pipeline';
import * as projectionOperators from 'mingo/operators/projection';
import * as queryOperators from 'mingo/operators/query';
import * as windowOperators from 'mingo/operators/window';
import { Query } from 'mingo/query';
import { update as mingoUpdate } from 'mingo/updater';
import type { Document } from 'mongodb';
import { CommandError } from './errors.js';
import { cloneDoc, isPlainObject } from './bson.js';
import { keyString } from './compare.js';
import { fastFilter, inclusionProjection, insertWithSimpleUpdate, isNoopOnExisting, simpleFieldUpdate } from './fastpaths.js';
import { EMULATOR_EXPRESSION_OPERATORS } from './expressions.js';

const OPTIONS = { useStrictMode: true, scriptEnabled: false };

/**
 * mingo copies the operator context on every Query/Aggregator it builds, so the cost of compiling a
 * filter grows with the context. Plain filters get a context of query operators only; filters with
 * `$expr` (or similar) and pipelines get every operator.
 */
const FULL_CONTEXT = Context.init({
  accumulator: accumulatorOperators,
  // mongod's $toHashedIndexKey, and $abs/$mod that take Int64 values (expressions.ts).
  expression: { ...expressionOperators, ...EMULATOR_EXPRESSION_OPERATORS },
  pipeline: pipelineOperators,
  projection: projectionOperators,
  query: queryOperators,
  window: windowOperators,
} as never);
const QUERY_CONTEXT = Context.init({ query: queryOperators } as never);

/** Whether a filter uses operators that evaluate aggregation expressions. */
function needsExpressions(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(needsExpressions);
  if (!isPlainObject(value)) return false;
  for (const key of Object.keys(value)) {
    if (key === '$expr' || key === '$jsonSchema' || key === '$where' || key === '$function') return true;
    if (needsExpressions(value[key])) return true;
  }
  return false;
}

function queryOptions(filter: Document, variables?: Document) {
  return { ...OPTIONS, context: needsExpressions(filter) ? FULL_CONTEXT : QUERY_CONTEXT, ...(variables ? { variables } : {}) };
}

/**
 * The values of a command's `let` document (mongod evaluates each as an aggregation expression
 * once per command; `$$name` then refers to it in `$expr` filters and pipeline updates).
 */
export function letVariables(spec: unknown): Document | undefined {
  if (spec === undefined || spec === null) return undefined;
  if (!isPlainObject(spec)) throw new CommandError(14, "BSON field 'let' is the wrong type, expected type 'object'");
  for (const name of Object.keys(spec)) {
    if (!/^[a-z][A-Za-z0-9_]*$/.test(name) && !/^[^\x00-\x7F]/.test(name)) {
      throw new CommandError(16870, `'${name}' starts with an invalid character for a user variable name`);
    }
  }
  return runPipeline([{}], [{ $replaceWith: spec }])[0] ?? {};
}

/** Maps a mingo error to the CommandError mongod would report for the same input. */
export function translateMingoError(error: unknown): CommandError {
  if (error instanceof CommandError) return error;
  const msg = error instanceof Error ? error.message : String(error);
  let m: RegExpExecArray | null;
  if ((m = /updating the path '([^']+)' would create a conflict at '([^']+)'/i.exec(msg))) {
    return new CommandError(40, `Updating the path '${m[1]}' would create a conflict at '${m[2]}'`);
  }
  if (/immutable field '_id'/.test(msg)) {
    return new CommandError(66, "Performing an update on the path '_id' would modify the immutable field '_id'");
  }
  if ((m = /unregistered pipeline operator (\$\w+)/.exec(msg))) {
    return new CommandError(40324, `Unrecognized pipeline stage name: '${m[1]}' (unknown, or not supported by the development emulator)`);
  }
  if ((m = /unknown query operator (\$\w+)/.exec(msg))) {
    return new CommandError(2, `unknown operator: ${m[1]} (unknown, or not supported by the development emulator)`);
  }
  if ((m = /Unknown update operator: '(\$\w+)'/.exec(msg))) {
    return new CommandError(
      9,
      `Unknown modifier: ${m[1]}. Expected a valid update modifier or pipeline-style update specified as an array`,
    );
  }
  if ((m = /(?:accumulator|expression|operator) '?(\$\w+)'? is not registered/.exec(msg))) {
    return new CommandError(168, `Unrecognized expression '${m[1]}'`);
  }
  return new CommandError(2, msg);
}

export interface Matcher {
  test(doc: Document): boolean;
}

const MATCH_ALL: Matcher = { test: () => true };

/** Compiles a filter once; throws BadValue (2) for unknown operators. `variables`: the command's `let`. */
export function compileFilter(filter: Document | undefined | null, variables?: Document): Matcher {
  if (filter === undefined || filter === null) return MATCH_ALL;
  if (!isPlainObject(filter)) throw new CommandError(14, "'filter' must be an object");
  if (Object.keys(filter).length === 0) return MATCH_ALL;
  // The queue's filter shapes (key lookups, fences, claims) need no compiled Query; a document
  // the shortcut cannot decide exactly goes to the general matcher, compiled on first need.
  const fast = fastFilter(filter);
  if (fast) {
    let general: Matcher | undefined;
    return { test: (doc) => fast(doc) ?? (general ??= compileGeneral(filter, variables)).test(doc) };
  }
  return compileGeneral(filter, variables);
}

function compileGeneral(filter: Document, variables?: Document): Matcher {
  try {
    const q = new Query(filter, queryOptions(filter, variables));
    return {
      test: (doc) => {
        // Some operators ($expr arguments) are only checked when evaluated.
        try {
          return q.test(doc);
        } catch (error) {
          throw translateMingoError(error);
        }
      },
    };
  } catch (error) {
    throw translateMingoError(error);
  }
}

/** Runs an aggregation pipeline over documents; `variables` are the command's `let`. */
export function runPipeline(docs: Document[], pipeline: Document[], collectionResolver?: (name: string) => Document[], variables?: Document): Document[] {
  try {
    const agg = new Aggregator(pipeline, {
      ...OPTIONS,
      context: FULL_CONTEXT,
      ...(collectionResolver ? { collectionResolver } : {}),
      ...(variables ? { variables } : {}),
    });
    return agg.run(docs) as Document[];
  } catch (error) {
    throw translateMingoError(error);
  }
}

/**
 * Applies a find projection (with its positional `$`, `$elemMatch` and `$slice` forms) to documents
 * that matched `filter`, keeping each document's own field order as mongod does.
 */
export function projectAll(docs: Document[], filter: Document, projection: Document): Document[] {
  try {
    // Plain inclusions (what the queue's reads ask for) are picked directly; anything else, or a
    // document where a projected path crosses an array, goes through mingo.
    const fast = inclusionProjection(projection);
    let q: Query | undefined;
    const query = () => (q ??= new Query(filter, { ...OPTIONS, context: FULL_CONTEXT }));
    const general = (d: Document) => reorder(d, (query().find([d], projection).all()[0] as Document | undefined) ?? {});
    if (fast) return docs.map((d) => fast(d) ?? general(d));
    // One mingo cursor over every document (they all matched `filter` already, so all come back,
    // in order); a cursor per document costs three times as much. Per document only if that fails.
    const projected = query().find(docs, projection).all() as Document[];
    if (projected.length === docs.length) return docs.map((d, i) => reorder(d, projected[i] ?? {}));
    return docs.map(general);
  } catch (error) {
    throw translateMingoError(error);
  }
}

function reorder(source: Document, projected: Document): Document {
  const out: Document = {};
  for (const k of Object.keys(source)) if (k in projected) out[k] = projected[k];
  for (const k of Object.keys(projected)) if (!(k in out)) out[k] = projected[k];
  return out;
}

const isNumeric = (v: unknown) =>
  typeof v === 'number' || ['Long', 'Int32', 'Double', 'Decimal128'].includes((v as { _bsontype?: string } | null)?._bsontype ?? '');

/** mingo skips $inc/$mul on non-numbers silently; mongod fails with TypeMismatch (14). */
function checkNumeric(op: '$inc' | '$mul', doc: Document, spec: Document): void {
  for (const [path, amount] of Object.entries(spec)) {
    if (!isNumeric(amount)) {
      throw new CommandError(14, `Cannot ${op === '$inc' ? 'increment' : 'multiply'} with non-numeric argument: {${path}: ${JSON.stringify(amount)}}`);
    }
    if (path.includes('$')) continue;
    let cur: unknown = doc;
    for (const part of path.split('.')) cur = isPlainObject(cur) || Array.isArray(cur) ? (cur as Document)[part] : undefined;
    if (cur !== undefined && !isNumeric(cur)) {
      throw new CommandError(14, `Cannot apply ${op} to a value of non-numeric type. {_id: ${JSON.stringify(String(doc._id))}} has the field '${path}' of non-numeric type ${cur === null ? 'null' : Array.isArray(cur) ? 'array' : typeof cur}`);
    }
  }
}

/**
 * mingo adds every `$each` value missing from the array as it was before the update, so repeats
 * inside `$each` were added twice; mongod adds each distinct value once.
 */
function uniqueEach(spec: Document): Document {
  let out: Document | undefined;
  for (const [path, value] of Object.entries(spec)) {
    if (!isPlainObject(value) || !Array.isArray(value.$each)) continue;
    const seen = new Set<string>();
    const each = value.$each.filter((v) => !seen.has(keyString(v)) && !!seen.add(keyString(v)));
    if (each.length !== value.$each.length) (out ??= { ...spec })[path] = { ...value, $each: each };
  }
  return out ?? spec;
}

export function isOperatorUpdate(update: Document): boolean {
  const keys = Object.keys(update);
  return keys.length > 0 && keys[0]!.startsWith('$');
}

/**
 * Applies an update document or pipeline to a copy of `doc` and returns the new document, or
 * `doc` itself when the update provably changes nothing.
 * `inserting` makes $setOnInsert act as $set (the upsert insert path).
 */
export function applyUpdate(
  doc: Document,
  update: Document | Document[],
  opts: { arrayFilters?: Document[]; query?: Document; inserting?: boolean; variables?: Document } = {},
): Document {
  if (Array.isArray(update)) {
    return runPipeline([cloneDoc(doc)], update, undefined, opts.variables)[0] ?? {};
  }
  // The job queue's upsert shape, without compiling a mingo updater per statement.
  if (!opts.arrayFilters) {
    const fast = opts.inserting ? insertWithSimpleUpdate(doc, update) : isNoopOnExisting(doc, update) ? doc : simpleFieldUpdate(doc, update);
    if (fast) return fast;
  }
  const copy = cloneDoc(doc);
  const mods: Document = {};
  for (const [op, spec] of Object.entries(update)) {
    if (!op.startsWith('$')) {
      throw new CommandError(9, `Unknown modifier: ${op}. Expected a valid update modifier or pipeline-style update specified as an array`);
    }
    if (!isPlainObject(spec)) {
      throw new CommandError(9, `Modifiers operate on fields but we found type ${typeof spec} instead. For example: {$mod: {<field>: ...}} not {$set: ${String(spec)}}`);
    }
    if (op === '$setOnInsert') {
      if (opts.inserting) mods.$set = { ...(mods.$set ?? {}), ...spec };
      continue;
    }
    if (op === '$set' && mods.$set) mods.$set = { ...mods.$set, ...spec };
    else if (op === '$addToSet') mods[op] = uniqueEach(spec);
    else mods[op] = spec;
  }
  if (Object.keys(mods).length === 0) return copy;
  for (const op of ['$inc', '$mul'] as const) if (mods[op]) checkNumeric(op, copy, mods[op] as Document);
  // The query is only needed to resolve the positional `$` operator; building it costs a compile.
  const positional = opts.query && Object.values(mods).some((spec) => Object.keys(spec as Document).some((path) => /(^|\.)\$(\.|$)/.test(path)));
  try {
    mingoUpdate(copy, mods, opts.arrayFilters, positional ? opts.query : undefined, { cloneMode: 'deep', queryOptions: OPTIONS });
  } catch (error) {
    throw translateMingoError(error);
  }
  return copy;
}
