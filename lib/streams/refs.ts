import type { Collection, Db } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import { rolloutModeFor } from './rollout.js';
import { COLLECTIONS, LEGACY_SHARED_COLLECTIONS, submissionsCollection } from '../data/mongo.js';
import { BadRequestError, ConflictError, NotFoundError } from '../platform/errors.js';
import { dataSources, openDataSource } from './sources.js';
import { partitionOf } from './partition.js';

/**
 * One change stream the product drains. `id` is stable and is also the checkpoint `_id`:
 * `partition:{p}/{P}` (the `database` layout: partition p of P of the platform database, README
 * "Stream layouts"), `org:{orgId}` (the organization's `submissions_{orgId}`), `shared:{collection}`
 * (a legacy shared collection; its documents carry the organization), `source:{orgId}` (an external
 * source, `data_sources`). Ids are built by `streamId`/`partitionStream` and read back by
 * `parseStreamId`/`parsePartition`, nowhere else.
 */
export type StreamRef =
  | { kind: 'partition'; id: string; orgId: null; /** The product's own database, watched whole. */ db: null; collection: null; partition: number; partitions: number }
  | { kind: 'org'; id: string; orgId: string; /** The product's own database. */ db: null; collection: string }
  | { kind: 'shared'; id: string; orgId: null; db: null; collection: string }
  | { kind: 'source'; id: string; orgId: string; /** Database on the external cluster. */ db: string; collection: string };

export type StreamKind = StreamRef['kind'];

const STREAM_KINDS: readonly StreamKind[] = ['partition', 'org', 'shared', 'source'];

/** The id of a stream: `{kind}:{orgId or collection}`. The one place ids are built. */
export function streamId(kind: StreamKind, rest: string): string {
  return `${kind}:${rest}`;
}

/** Read a stream id back into its kind and the rest (organization id or collection); null when it is not one. */
export function parseStreamId(id: string): { kind: StreamKind; rest: string } | null {
  const colon = id.indexOf(':');
  if (colon < 0) return null;
  const kind = id.slice(0, colon) as StreamKind;
  return STREAM_KINDS.includes(kind) ? { kind, rest: id.slice(colon + 1) } : null;
}

const ORG_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Partition p (0-based) of P: id `partition:{p}/{P}`. */
export function partitionStream(partition: number, partitions: number): StreamRef {
  return { id: streamId('partition', `${partition}/${partitions}`), kind: 'partition', orgId: null, db: null, collection: null, partition, partitions };
}

/** Read `{p}/{P}` back; null when it is not a partition of 1–256 streams. */
export function parsePartition(rest: string): { partition: number; partitions: number } | null {
  const m = /^(\d{1,3})\/(\d{1,3})$/.exec(rest);
  if (!m) return null;
  const partition = Number(m[1]);
  const partitions = Number(m[2]);
  return partitions >= 1 && partitions <= 256 && partition < partitions ? { partition, partitions } : null;
}

export function orgStream(orgId: string): StreamRef {
  return { id: streamId('org', orgId), kind: 'org', orgId, db: null, collection: submissionsCollection(orgId) };
}
export function sharedStream(collection: string): StreamRef {
  return { id: streamId('shared', collection), kind: 'shared', orgId: null, db: null, collection };
}
export function sourceStream(orgId: string, db: string, collection: string): StreamRef {
  return { id: streamId('source', orgId), kind: 'source', orgId, db, collection };
}

export function assertOrgId(orgId: string): void {
  if (!ORG_ID.test(orgId)) throw new BadRequestError(`orgId "${orgId.slice(0, 80)}" is not a valid organization id (1-64 of A-Z a-z 0-9 _ -)`);
}

/** Organizations that have at least one workflow (any status) or an external source. */
export async function knownOrganizations(ctx: AppContext): Promise<string[]> {
  const [fromWorkflows, fromSources] = await Promise.all([
    ctx.db.collection(COLLECTIONS.workflows).distinct('organizationId'),
    dataSources(ctx.db).distinct('organizationId'),
  ]);
  return [...new Set([...fromWorkflows, ...fromSources].filter((o): o is string => typeof o === 'string'))].sort();
}

/** The stream of one organization: its external source if it has one, else `submissions_{orgId}`. The one source lookup. */
export async function streamOfOrg(ctx: AppContext, orgId: string): Promise<StreamRef> {
  const source = await dataSources(ctx.db).findOne({ organizationId: orgId }, { projection: { db: 1, collection: 1 } });
  return source ? sourceStream(orgId, source.db, source.collection) : orgStream(orgId);
}

/** The P partition streams of the `database` layout. */
export function partitionStreams(partitions: number): StreamRef[] {
  return Array.from({ length: partitions }, (_, p) => partitionStream(p, partitions));
}

/**
 * The stream that serves an organization's platform submissions in the configured layout (no
 * database call): its partition in the `database` layout, `org:{orgId}` in the `collection` layout.
 * Organizations with an external source are served by `source:{orgId}` instead (`streamOfOrg`).
 */
export function platformStreamOf(cfg: AppContext['config'], orgId: string): StreamRef {
  if (cfg.STREAM_LAYOUT === 'database') return partitionStream(partitionOf(submissionsCollection(orgId), cfg.STREAM_PARTITIONS), cfg.STREAM_PARTITIONS);
  return orgStream(orgId);
}

/**
 * The streams the fan-out drains now. `database` layout: the P partitions, plus `source:{orgId}`
 * for organizations with an external source and an active workflow. `collection` layout:
 * organizations with active workflows that the rollout flags put on change streams, plus the legacy
 * shared collections while any organization is on them. One `data_sources` query either way.
 */
export async function listStreams(ctx: AppContext): Promise<StreamRef[]> {
  if (!ctx.config.USE_CHANGE_STREAMS) return [];
  const allowed = (orgId: unknown): orgId is string => typeof orgId === 'string' && rolloutModeFor(ctx.config, orgId) !== 'explicit';
  if (ctx.config.STREAM_LAYOUT === 'database') {
    const sources = (await dataSources(ctx.db).find({}, { projection: { organizationId: 1, db: 1, collection: 1 } }).toArray()).filter((s) => allowed(s.organizationId));
    const active = sources.length
      ? new Set(await ctx.db.collection(COLLECTIONS.workflows).distinct('organizationId', { status: 'active', organizationId: { $in: sources.map((s) => s.organizationId) } }))
      : new Set();
    const sourceStreams = sources
      .filter((s) => active.has(s.organizationId))
      .map((s) => sourceStream(s.organizationId, s.db, s.collection))
      .sort((a, b) => a.id.localeCompare(b.id));
    return [...partitionStreams(ctx.config.STREAM_PARTITIONS), ...sourceStreams];
  }
  const active = (await ctx.db.collection(COLLECTIONS.workflows).distinct('organizationId', { status: 'active' })).filter(allowed).sort();
  if (active.length === 0) return [];
  // One query for every organization's external source (not one per organization: thousands of them).
  const sources = new Map(
    (await dataSources(ctx.db).find({ organizationId: { $in: active } }, { projection: { organizationId: 1, db: 1, collection: 1 } }).toArray()).map((s) => [s.organizationId, s]),
  );
  const orgStreams = active.map((orgId) => {
    const source = sources.get(orgId);
    return source ? sourceStream(orgId, source.db, source.collection) : orgStream(orgId);
  });
  return [...orgStreams, ...LEGACY_SHARED_COLLECTIONS.map(sharedStream)];
}

/** Resolve a drain request to a stream; unknown organizations and ids are refused with 4xx. */
export async function resolveStream(ctx: AppContext, q: { orgId: string } | { streamId: string }): Promise<StreamRef> {
  if ('streamId' in q) {
    const parsed = parseStreamId(q.streamId);
    if (!parsed) throw new BadRequestError(`streamId "${q.streamId.slice(0, 80)}" must look like partition:<p>/<P>, org:<id>, source:<id> or shared:<collection>`);
    if (parsed.kind === 'partition') {
      const part = parsePartition(parsed.rest);
      if (!part) throw new BadRequestError(`streamId "${q.streamId.slice(0, 80)}" must look like partition:<p>/<P> with 0 <= p < P <= 256`);
      const cfg = ctx.config;
      if (cfg.STREAM_LAYOUT !== 'database' || part.partitions !== cfg.STREAM_PARTITIONS) {
        throw new ConflictError(`stream "${q.streamId}" is not one of this deployment's streams (STREAM_LAYOUT=${cfg.STREAM_LAYOUT}, STREAM_PARTITIONS=${cfg.STREAM_PARTITIONS})`);
      }
      return partitionStream(part.partition, part.partitions);
    }
    if (parsed.kind === 'shared') {
      if (!(LEGACY_SHARED_COLLECTIONS as readonly string[]).includes(parsed.rest)) throw new NotFoundError(`unknown stream "${q.streamId}"`);
      return sharedStream(parsed.rest);
    }
    const stream = await resolveStream(ctx, { orgId: parsed.rest });
    // `source:x` and `org:x` name different collections: never drain one when the other was asked for.
    if (stream.id !== q.streamId) {
      const why = parsed.kind === 'source' ? `organization "${parsed.rest}" has no data source (data_sources)` : `organization "${parsed.rest}" reads from its own data source`;
      throw new NotFoundError(`unknown stream "${q.streamId}": ${why}; its stream is "${stream.id}"`);
    }
    return stream;
  }
  assertOrgId(q.orgId);
  const known = await knownOrganizations(ctx);
  if (!known.includes(q.orgId)) throw new NotFoundError(`unknown organization "${q.orgId}"`);
  if (rolloutModeFor(ctx.config, q.orgId) === 'explicit') {
    throw new ConflictError(`organization "${q.orgId}" is in explicit mode: change streams are off for it (USE_CHANGE_STREAMS / CHANGE_STREAMS_ORG_IDS)`);
  }
  const stream = await streamOfOrg(ctx, q.orgId);
  // In the database layout an organization's platform submissions are drained by its partition.
  return stream.kind === 'org' && ctx.config.STREAM_LAYOUT === 'database' ? platformStreamOf(ctx.config, q.orgId) : stream;
}

/** The collection a stream watches (external sources through their own cached client). Partitions watch a database: see `streamWatchTarget`. */
export async function streamCollection(ctx: AppContext, stream: StreamRef): Promise<Collection> {
  if (stream.kind === 'source') return openDataSource(ctx.db, ctx.config.DATA_SOURCE_KEY, stream.orgId);
  if (stream.kind === 'partition') throw new BadRequestError(`stream ${stream.id} watches the whole database, not one collection`);
  return ctx.db.collection(stream.collection);
}

/** What a stream's `watch()` is called on: the platform database for a partition, else the stream's collection. */
export async function streamWatchTarget(ctx: AppContext, stream: StreamRef): Promise<Collection | Db> {
  return stream.kind === 'partition' ? ctx.db : streamCollection(ctx, stream);
}
