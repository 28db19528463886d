import type { ChangeStreamDocument, ChangeStreamOptions, Collection, Db, Document } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import { LEGACY_SHARED_COLLECTIONS, submissionsCollection } from '../data/mongo.js';
import type { JudgedOn } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';

/**
 * Which state of a submission an update trigger is judged on.
 *
 * An update event read with `fullDocument: 'updateLookup'` carries the document as it is when the
 * server looks it up, not as the update left it: two updates before a drain both show the later
 * state (MongoDB docs, "Lookup Full Document for Update Operations"). A collection with
 * `changeStreamPreAndPostImages: {enabled: true}` (MongoDB 6.0+) keeps each write's post-image, and
 * a stream opened with `fullDocument: 'whenAvailable'` returns it: the document as of the event
 * (docs, "Change Streams with Document Pre- and Post-Images").
 *
 * So the drain opens with `whenAvailable` when a watched collection keeps post-images (checked with
 * `listCollections` once per pass), else with `updateLookup`. An update event that arrives without
 * a post-image (a collection without them on a database-level stream, or a post-image already
 * expired) is looked up by the drain (`find` by `_id`, one query per collection and flush). Every
 * job records what it was judged on: `event` (inserts and replaces carry their document),
 * `post_image`, or `lookup` (a later state may have been judged).
 */

type Event = ChangeStreamDocument<Document>;
const JUDGED = Symbol('judgedOn');
type Marked = Event & { [JUDGED]?: JudgedOn };

/** The collections a stream watches whose options decide the `fullDocument` mode. */
async function watchedCollections(ctx: AppContext, stream: StreamRef, target: Collection | Db): Promise<{ db: Db; names: string[] | RegExp }> {
  if ('collectionName' in target) return { db: ctx.db.client.db(target.dbName), names: [target.collectionName] };
  return { db: target, names: /^submissions_|^(global_submissions|form_submissions)$/ };
}

/** Whether any collection a stream watches keeps post-images (`changeStreamPreAndPostImages.enabled`). */
export async function keepsPostImages(ctx: AppContext, stream: StreamRef, target: Collection | Db): Promise<boolean> {
  const { db, names } = await watchedCollections(ctx, stream, target);
  const filter = Array.isArray(names) ? { name: { $in: names } } : { name: { $regex: names.source } };
  const infos = await db.listCollections(filter, { nameOnly: false }).toArray();
  return infos.some((c) => (c as { options?: { changeStreamPreAndPostImages?: { enabled?: boolean } } }).options?.changeStreamPreAndPostImages?.enabled === true);
}

/** Post-images in one drain pass: the `fullDocument` mode, and the judging of each event read. */
export class PostImages {
  private available = false;

  /** Decide once per pass (one `listCollections`); only when some workflow triggers on update/replace. */
  async init(ctx: AppContext, stream: StreamRef, target: Collection | Db, needsUpdates: boolean): Promise<void> {
    this.available = needsUpdates && (await keepsPostImages(ctx, stream, target).catch(() => false));
  }

  /** The mode to open with, given the one the stream asks for (`updateLookup` when updates are dispatched). */
  fullDocument(wanted: ChangeStreamOptions['fullDocument'] | undefined): ChangeStreamOptions['fullDocument'] | undefined {
    return wanted === 'updateLookup' && this.available ? 'whenAvailable' : wanted;
  }

  /**
   * Mark what each event's document is, and look up the update events that came without one
   * under `whenAvailable` (one `find` per namespace). A document deleted since stays missing (the
   * event is dead-lettered as `document_unavailable`, as with `updateLookup`).
   */
  async judge(ctx: AppContext, events: Event[]): Promise<void> {
    const missing = new Map<string, Marked[]>();
    for (const e of events as Marked[]) {
      const full = (e as { fullDocument?: unknown }).fullDocument;
      if (e.operationType !== 'update') {
        e[JUDGED] = 'event';
      } else if (!this.available) {
        e[JUDGED] = 'lookup';
      } else if (full) {
        e[JUDGED] = 'post_image';
      } else {
        e[JUDGED] = 'lookup';
        const ns = (e as { ns?: { db?: string; coll?: string } }).ns;
        if (!ns?.db || !ns.coll) continue;
        const key = `${ns.db}.${ns.coll}`;
        missing.set(key, [...(missing.get(key) ?? []), e]);
      }
    }
    for (const list of missing.values()) {
      const ns = (list[0] as { ns: { db: string; coll: string } }).ns;
      const ids = list.map((e) => (e as { documentKey?: { _id?: unknown } }).documentKey?._id);
      const docs = await ctx.db.client.db(ns.db).collection(ns.coll).find({ _id: { $in: ids } } as Document).toArray();
      const byId = new Map(docs.map((d) => [keyOf(d._id), d]));
      for (const e of list) {
        const doc = byId.get(keyOf((e as { documentKey?: { _id?: unknown } }).documentKey?._id));
        if (doc) (e as { fullDocument?: Document }).fullDocument = doc;
      }
    }
  }
}

function keyOf(id: unknown): string {
  return JSON.stringify(id, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + String((id as { constructor?: { name?: string } } | null)?.constructor?.name);
}

/** What an event read by a drain was judged on (`judge` marked it); undefined for other paths. */
export function judgedOn(event: Event): JudgedOn | undefined {
  return (event as Marked)[JUDGED];
}

/**
 * `npm run ops -- enable-post-images`: turn on `changeStreamPreAndPostImages` for the submission
 * collections of one organization, or of all (every `submissions_*` and the legacy shared ones),
 * with `collMod`. Post-images are kept in `config.system.preimages` until
 * `changeStreamOptions.preAndPostImages.expireAfterSeconds` (a cluster parameter; by default until
 * the oplog no longer covers them): extra storage about the size of each updated document per update.
 * Returns the collections changed. Requires MongoDB 6.0+ and the `collMod` privilege.
 */
export async function enablePostImages(ctx: AppContext, scope: { orgId: string } | { all: true }): Promise<string[]> {
  const names =
    'orgId' in scope
      ? [submissionsCollection(scope.orgId)]
      : (await ctx.db.listCollections({ name: { $regex: '^submissions_' } }, { nameOnly: true }).toArray()).map((c) => c.name);
  if (!('orgId' in scope)) {
    const existing = new Set((await ctx.db.listCollections({ name: { $in: [...LEGACY_SHARED_COLLECTIONS] } }, { nameOnly: true }).toArray()).map((c) => c.name));
    names.push(...LEGACY_SHARED_COLLECTIONS.filter((n) => existing.has(n)));
  }
  const changed: string[] = [];
  for (const name of names.sort()) {
    const exists = (await ctx.db.listCollections({ name }, { nameOnly: true }).toArray()).length > 0;
    if (exists) await ctx.db.command({ collMod: name, changeStreamPreAndPostImages: { enabled: true } });
    else await ctx.db.createCollection(name, { changeStreamPreAndPostImages: { enabled: true } });
    changed.push(name);
  }
  return changed;
}
