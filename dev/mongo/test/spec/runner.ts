/**
 * A runner for the unified test format of the MongoDB driver specifications
 * (mongodb/specifications, source/unified-test-format/unified-test-format.md), with the project's
 * driver against the backend the test run chose. It covers what the change-streams and CRUD test
 * files use: client/database/collection/session entities, initialData, runOnRequirements,
 * the collection/database/client/change-stream operations below, the `failPoint` test operation,
 * expectResult/expectError, command monitoring expectations and outcome.
 *
 * Fail points are armed through the project's fail-point lock (test/support/mongo.ts) and scoped to
 * the appName every client entity of the runner carries, so test files running in parallel on the
 * same server are not hit; on mongod the fail point behaves the same way for the test's own commands.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ChangeStream,
  ClientSession,
  Collection,
  BSON,
  Db,
  MongoClient,
  MongoServerError,
  type CommandFailedEvent,
  type CommandStartedEvent,
  type CommandSucceededEvent,
  type Document,
} from 'mongodb';
import { configureFailPoint, disableFailPoint } from '../../../../test/support/mongo.js';
import { isDocument, match, matchExactly, MatchError, type MatchContext } from './match.js';

const { EJSON } = BSON;

/** One test file as parsed from Extended JSON. */
export interface SpecFile {
  name: string;
  json: Document;
}

/** What runOnRequirements are checked against. */
export interface ServerFacts {
  version: string;
  topology: 'single' | 'replicaset' | 'sharded' | 'load-balanced';
  auth: boolean;
  serverless: boolean;
}

/** Schema versions this runner understands (major 1, up to this minor). */
const MAX_SCHEMA_MINOR = 21;

/** Reads every `*.json` test file of `dir` (sorted by name); [] when the directory is absent. */
export function loadSpecFiles(dir: string): SpecFile[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return names.map((name) => ({ name, json: EJSON.parse(readFileSync(join(dir, name), 'utf8'), { relaxed: true }) as Document }));
}

/** Version, topology and auth of the server at `uri`. */
export async function serverFacts(uri: string): Promise<ServerFacts> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 });
  try {
    const admin = client.db('admin');
    const info = await admin.command({ buildInfo: 1 });
    const hello = await admin.command({ hello: 1 });
    const topology = hello.msg === 'isdbgrid' ? 'sharded' : hello.setName ? 'replicaset' : hello.serviceId ? 'load-balanced' : 'single';
    return { version: String(info.version), topology, auth: /^mongodb(\+srv)?:\/\/[^/@]+@/.test(uri), serverless: false };
  } finally {
    await client.close();
  }
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i += 1) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Why one runOnRequirement is not met, or undefined when it is. */
function unmet(req: Document, facts: ServerFacts): string | undefined {
  if (req.minServerVersion && compareVersions(facts.version, req.minServerVersion as string) < 0) return `needs server >= ${req.minServerVersion}`;
  if (req.maxServerVersion && compareVersions(facts.version, req.maxServerVersion as string) > 0) return `needs server <= ${req.maxServerVersion}`;
  if (Array.isArray(req.topologies)) {
    const tops = req.topologies as string[];
    const ok = tops.includes(facts.topology) || (facts.topology === 'sharded' && tops.includes('sharded-replicaset'));
    if (!ok) return `needs topology ${tops.join('|')}`;
  }
  if (req.serverless === 'require' && !facts.serverless) return 'needs serverless';
  if (req.serverless === 'forbid' && facts.serverless) return 'not on serverless';
  if (req.auth === true && !facts.auth) return 'needs auth';
  if (req.auth === false && facts.auth) return 'needs no auth';
  if (req.csfle === true) return 'needs client-side field level encryption';
  if (req.serverParameters !== undefined) return 'checks server parameters';
  if (req.authMechanism !== undefined) return 'needs a specific auth mechanism';
  return undefined;
}

/** Why a file's test does not apply to `facts` (file-level then test-level requirements), or undefined. */
export function notApplicable(file: Document, test: Document, facts: ServerFacts): string | undefined {
  const schema = String(file.schemaVersion ?? '');
  const [major, minor] = schema.split('.').map(Number);
  if (major !== 1 || (minor ?? 0) > MAX_SCHEMA_MINOR) return `schema version ${schema} is not supported by this runner`;
  if (typeof test.skipReason === 'string') return `skipReason: ${test.skipReason}`;
  for (const reqs of [file.runOnRequirements, test.runOnRequirements]) {
    if (!Array.isArray(reqs) || reqs.length === 0) continue;
    const why = (reqs as Document[]).map((r) => unmet(r, facts));
    if (why.every((w) => w !== undefined)) return why.join('; or ');
  }
  return undefined;
}

type Observed =
  | { type: 'commandStartedEvent'; event: CommandStartedEvent }
  | { type: 'commandSucceededEvent'; event: CommandSucceededEvent }
  | { type: 'commandFailedEvent'; event: CommandFailedEvent };

interface ClientEntity {
  client: MongoClient;
  events: Observed[];
  observing: boolean;
}

/** Commands whose monitoring events carry credentials and are never observed (command monitoring spec). */
const SENSITIVE = new Set(['authenticate', 'saslstart', 'saslcontinue', 'getnonce', 'createuser', 'updateuser', 'copydbgetnonce', 'copydbsaslstart', 'copydb']);

/** Options accepted for every operation and passed to the driver unchanged. */
type Args = Document;

/** Runs one test of a unified test file; throws on the first failed assertion. */
export class UnifiedTest {
  private readonly entities = new Map<string, unknown>();
  private readonly clients = new Map<string, ClientEntity>();
  private readonly armed: { client: MongoClient; name: string }[] = [];
  private readonly matchCtx: MatchContext;

  constructor(
    private readonly uri: string,
    private readonly appName: string,
    private readonly internal: MongoClient,
  ) {
    this.matchCtx = {
      entity: (name) => {
        if (!this.entities.has(name)) throw new MatchError(`no entity '${name}'`);
        return this.entities.get(name);
      },
      sessionLsid: (name) => this.entity(name, ClientSession).id as Document,
    };
  }

  async run(file: Document, test: Document): Promise<void> {
    try {
      await this.setUpData(file.initialData as Document[] | undefined);
      for (const e of (file.createEntities as Document[] | undefined) ?? []) await this.createEntity(e);
      for (const op of test.operations as Document[]) await this.operation(op);
      for (const c of this.clients.values()) c.observing = false;
      await this.disarm();
      for (const expected of (test.expectEvents as Document[] | undefined) ?? []) this.checkEvents(expected);
      for (const data of (test.outcome as Document[] | undefined) ?? []) await this.checkOutcome(data);
    } finally {
      await this.disarm().catch(() => undefined);
      await this.tearDown();
    }
  }

  // ---- set-up and tear-down ---------------------------------------------------------------------

  private async setUpData(initial: Document[] | undefined): Promise<void> {
    for (const data of initial ?? []) {
      const db = this.internal.db(data.databaseName as string);
      const name = data.collectionName as string;
      await db.collection(name).drop({ writeConcern: { w: 'majority' } }).catch(() => undefined);
      const docs = (data.documents as Document[] | undefined) ?? [];
      if (data.createOptions || docs.length === 0) {
        await db.createCollection(name, { ...(data.createOptions as Document | undefined), writeConcern: { w: 'majority' } });
      }
      if (docs.length > 0) await db.collection(name).insertMany(docs, { writeConcern: { w: 'majority' } });
    }
  }

  private async tearDown(): Promise<void> {
    for (const value of this.entities.values()) {
      if (value instanceof ChangeStream) await value.close().catch(() => undefined);
      else if (value instanceof ClientSession) await value.endSession().catch(() => undefined);
    }
    for (const c of this.clients.values()) await c.client.close().catch(() => undefined);
  }

  private async disarm(): Promise<void> {
    while (this.armed.length > 0) {
      const { client, name } = this.armed.pop()!;
      await disableFailPoint(client, name);
    }
  }

  // ---- entities ---------------------------------------------------------------------------------

  private entity<T>(name: string, type: abstract new (...args: never[]) => T): T {
    const value = this.entities.get(name);
    if (!(value instanceof type)) throw new Error(`entity '${name}' is not a ${type.name}`);
    return value;
  }

  private async createEntity(spec: Document): Promise<void> {
    const [kind, def] = Object.entries(spec)[0] as [string, Document];
    const id = def.id as string;
    if (this.entities.has(id)) throw new Error(`entity '${id}' defined twice`);
    switch (kind) {
      case 'client': {
        const url = new URL(this.uri);
        for (const [k, v] of Object.entries((def.uriOptions as Document | undefined) ?? {})) url.searchParams.set(k, String(v));
        if (!url.searchParams.has('appName') && !url.searchParams.has('appname')) url.searchParams.set('appName', this.appName);
        const client = new MongoClient(url.toString(), { monitorCommands: true, serverSelectionTimeoutMS: 10_000 });
        const entry: ClientEntity = { client, events: [], observing: true };
        const observe = new Set((def.observeEvents as string[] | undefined) ?? []);
        const ignore = new Set((def.ignoreCommandMonitoringEvents as string[] | undefined) ?? []);
        const keep = (name: string, command?: Document) => {
          if (!entry.observing || ignore.has(name) || name === 'configureFailPoint') return false;
          if (SENSITIVE.has(name.toLowerCase())) return false;
          // hello/legacy hello carrying speculativeAuthenticate are redacted to {}: sensitive then.
          if ((name === 'hello' || name.toLowerCase() === 'ismaster') && command && Object.keys(command).length === 0) return false;
          return true;
        };
        if (observe.has('commandStartedEvent')) {
          client.on('commandStarted', (event) => keep(event.commandName, event.command) && entry.events.push({ type: 'commandStartedEvent', event }));
        }
        if (observe.has('commandSucceededEvent')) {
          client.on('commandSucceeded', (event) => keep(event.commandName) && entry.events.push({ type: 'commandSucceededEvent', event }));
        }
        if (observe.has('commandFailedEvent')) {
          client.on('commandFailed', (event) => keep(event.commandName) && entry.events.push({ type: 'commandFailedEvent', event }));
        }
        await client.connect();
        this.clients.set(id, entry);
        this.entities.set(id, client);
        return;
      }
      case 'database': {
        const client = this.entity(def.client as string, MongoClient);
        this.entities.set(id, client.db(def.databaseName as string, optionsOf(def.databaseOptions as Document | undefined)));
        return;
      }
      case 'collection': {
        const db = this.entity(def.database as string, Db);
        this.entities.set(id, db.collection(def.collectionName as string, optionsOf(def.collectionOptions as Document | undefined)));
        return;
      }
      case 'session': {
        const client = this.entity(def.client as string, MongoClient);
        this.entities.set(id, client.startSession(optionsOf(def.sessionOptions as Document | undefined)));
        return;
      }
      default:
        throw new Error(`unsupported entity type '${kind}'`);
    }
  }

  // ---- operations -------------------------------------------------------------------------------

  private async operation(op: Document): Promise<void> {
    const name = op.name as string;
    const args = resolveSession({ ...((op.arguments as Document | undefined) ?? {}) }, (n) => this.entity(n, ClientSession));
    if (op.object === 'testRunner') {
      await this.special(name, args);
      return;
    }
    const target = this.entities.get(op.object as string);
    if (target === undefined) throw new Error(`no entity '${String(op.object)}'`);
    let result: unknown;
    let error: unknown;
    try {
      result = await this.execute(name, target, args);
    } catch (e) {
      if (e instanceof UnsupportedOperation) throw e;
      error = e;
    }
    if (op.ignoreResultAndError === true) return;
    if (op.expectError !== undefined) {
      if (error === undefined) throw new MatchError(`${name}: expected an error, got ${show(result)}`);
      this.checkError(op.expectError as Document, error, name);
      return;
    }
    if (error !== undefined) throw error;
    if (op.expectResult !== undefined) {
      const iterable = ['find', 'aggregate', 'listCollections', 'listDatabases', 'listIndexes', 'runCursorCommand'].includes(name);
      if (iterable && Array.isArray(op.expectResult)) {
        const actual = result as unknown[];
        if (!Array.isArray(actual) || actual.length !== op.expectResult.length) {
          throw new MatchError(`${name}: expected ${op.expectResult.length} documents, got ${show(actual)}`);
        }
        op.expectResult.forEach((e: unknown, i: number) => match(e, actual[i], this.matchCtx, `${name}[${i}]`, true));
      } else {
        match(op.expectResult, result, this.matchCtx, name, true);
      }
    }
    if (typeof op.saveResultAsEntity === 'string') this.entities.set(op.saveResultAsEntity, result);
  }

  private async special(name: string, args: Args): Promise<void> {
    switch (name) {
      case 'failPoint': {
        const client = this.entity(args.client as string, MongoClient);
        const command = args.failPoint as Document;
        await configureFailPoint(client, command);
        this.armed.push({ client, name: command.configureFailPoint as string });
        return;
      }
      case 'assertCollectionExists':
      case 'assertCollectionNotExists': {
        const names = await this.internal.db(args.databaseName as string).listCollections({ name: args.collectionName }, { nameOnly: true }).toArray();
        if ((names.length > 0) !== (name === 'assertCollectionExists')) throw new MatchError(`${name}: ${args.databaseName}.${args.collectionName}`);
        return;
      }
      case 'assertIndexExists':
      case 'assertIndexNotExists': {
        const indexes = await this.internal.db(args.databaseName as string).collection(args.collectionName as string).listIndexes().toArray().catch(() => []);
        if (indexes.some((i) => i.name === args.indexName) !== (name === 'assertIndexExists')) throw new MatchError(`${name}: ${args.indexName}`);
        return;
      }
      default:
        throw new UnsupportedOperation(`testRunner.${name}`);
    }
  }

  private async execute(name: string, target: unknown, args: Args): Promise<unknown> {
    if (target instanceof ChangeStream) {
      switch (name) {
        case 'iterateUntilDocumentOrError':
          return await within(ITERATE_LIMIT_MS, target.next(), 'iterateUntilDocumentOrError: no document or error');
        case 'iterateOnce':
          return (await target.tryNext()) ?? undefined;
        case 'close':
          await target.close().catch(() => undefined);
          return undefined;
      }
    }
    if (name === 'createChangeStream' && (target instanceof MongoClient || target instanceof Db || target instanceof Collection)) {
      const { pipeline, ...options } = args;
      const stream = target.watch((pipeline as Document[] | undefined) ?? [], options);
      // The driver opens the stream lazily; the format expects the aggregate to run now.
      await (stream as unknown as { cursor: { cursorInit(): Promise<void> } }).cursor.cursorInit();
      return stream;
    }
    if (target instanceof Db) {
      switch (name) {
        case 'runCommand': {
          const { command, commandName: _name, ...options } = args;
          return await target.command(command as Document, options);
        }
        case 'createCollection': {
          const { collection, ...options } = args;
          await target.createCollection(collection as string, options);
          return undefined;
        }
        case 'dropCollection': {
          const { collection, ...options } = args;
          await target.dropCollection(collection as string, options);
          return undefined;
        }
        case 'modifyCollection': {
          const { collection, session, ...fields } = args;
          return await target.command({ collMod: collection, ...fields }, session ? { session: session as ClientSession } : {});
        }
        case 'listCollections': {
          const { filter, ...options } = args;
          return await target.listCollections((filter as Document | undefined) ?? {}, options).toArray();
        }
        case 'aggregate': {
          const { pipeline, ...options } = args;
          return await target.aggregate(pipeline as Document[], options).toArray();
        }
      }
    }
    if (target instanceof Collection) return await collectionOperation(target, name, args);
    throw new UnsupportedOperation(`${name} on ${describe(target)}`);
  }

  // ---- assertions -------------------------------------------------------------------------------

  private checkError(expected: Document, error: unknown, op: string): void {
    const e = error as MongoServerError & { errorResponse?: Document; result?: unknown };
    const server = error instanceof MongoServerError;
    const where = (what: string) => `${op}: ${what} (error ${e?.name}: ${e?.message}, code ${String(e?.code)}, labels ${JSON.stringify(e?.errorLabels ?? [])})`;
    if (expected.isClientError === true && server) throw new MatchError(where('expected a client error'));
    if (expected.isClientError === false && !server) throw new MatchError(where('expected a server error'));
    if (typeof expected.errorContains === 'string' && !String(e?.message ?? '').toLowerCase().includes(expected.errorContains.toLowerCase())) {
      throw new MatchError(where(`message does not contain '${expected.errorContains}'`));
    }
    if (expected.errorCode !== undefined) {
      if (!server || Number(e.code) !== expected.errorCode) throw new MatchError(where(`expected code ${expected.errorCode}`));
    }
    if (expected.errorCodeName !== undefined) {
      const codeName = (e?.codeName ?? e?.errorResponse?.codeName) as string | undefined;
      if (!server || String(codeName).toLowerCase() !== String(expected.errorCodeName).toLowerCase()) {
        throw new MatchError(where(`expected codeName ${expected.errorCodeName}, got ${codeName}`));
      }
    }
    for (const label of (expected.errorLabelsContain as string[] | undefined) ?? []) {
      if (!hasLabel(error, label)) throw new MatchError(where(`missing label ${label}`));
    }
    for (const label of (expected.errorLabelsOmit as string[] | undefined) ?? []) {
      if (hasLabel(error, label)) throw new MatchError(where(`unexpected label ${label}`));
    }
    if (expected.errorResponse !== undefined) {
      if (!server) throw new MatchError(where('expected a server response'));
      match(expected.errorResponse, e.errorResponse, this.matchCtx, `${op}.errorResponse`, true);
    }
    if (expected.expectResult !== undefined) match(expected.expectResult, e?.result, this.matchCtx, `${op}.error.result`, true, e?.result !== undefined);
  }

  private checkEvents(expected: Document): void {
    const eventType = (expected.eventType as string | undefined) ?? 'command';
    if (eventType !== 'command') throw new UnsupportedOperation(`expectEvents of type ${eventType}`);
    const entry = this.clients.get(expected.client as string);
    if (!entry) throw new Error(`no client entity '${String(expected.client)}'`);
    const want = expected.events as Document[];
    const got = entry.events;
    const list = () => got.map((o) => `${o.type}:${o.event.commandName}`).join(', ');
    if (got.length < want.length || (expected.ignoreExtraEvents !== true && got.length !== want.length)) {
      throw new MatchError(`events of ${String(expected.client)}: expected ${want.length}, observed ${got.length} [${list()}]`);
    }
    want.forEach((w, i) => {
      const [type, assertions] = Object.entries(w)[0] as [string, Document];
      const actual = got[i]!;
      const path = `event[${i}] ${type}`;
      if (actual.type !== type) throw new MatchError(`${path}: observed ${actual.type} (${actual.event.commandName}) [${list()}]`);
      const ev = actual.event;
      if (assertions.commandName !== undefined && ev.commandName !== assertions.commandName) {
        throw new MatchError(`${path}: commandName ${ev.commandName}, expected ${assertions.commandName}`);
      }
      if (assertions.databaseName !== undefined && ev.databaseName !== assertions.databaseName) {
        throw new MatchError(`${path}: databaseName ${ev.databaseName}, expected ${assertions.databaseName}`);
      }
      if (assertions.command !== undefined) match(assertions.command, (ev as CommandStartedEvent).command, this.matchCtx, `${path}.command`, true);
      if (assertions.reply !== undefined) match(assertions.reply, (ev as CommandSucceededEvent).reply, this.matchCtx, `${path}.reply`, true);
      if (assertions.hasServiceId !== undefined && (ev.serviceId !== undefined) !== assertions.hasServiceId) {
        throw new MatchError(`${path}: hasServiceId`);
      }
      if (assertions.hasServerConnectionId !== undefined && (ev.serverConnectionId != null) !== assertions.hasServerConnectionId) {
        throw new MatchError(`${path}: hasServerConnectionId`);
      }
    });
  }

  private async checkOutcome(data: Document): Promise<void> {
    const docs = await this.internal
      .db(data.databaseName as string)
      .collection(data.collectionName as string)
      .find({}, { sort: { _id: 1 }, readConcern: { level: 'local' }, readPreference: 'primary' })
      .toArray();
    matchExactly(data.documents, docs, `outcome ${data.databaseName}.${data.collectionName}`);
  }
}

/** An operation or argument this runner does not implement (a runner gap, never a server verdict). */
export class UnsupportedOperation extends Error {}

/** How long iterateUntilDocumentOrError may wait: a stream that never delivers fails the test instead of hanging. */
const ITERATE_LIMIT_MS = 10_000;

async function within<T>(ms: number, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MatchError(`${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}

function hasLabel(error: unknown, label: string): boolean {
  const e = error as { hasErrorLabel?: (l: string) => boolean; errorLabels?: string[] };
  return typeof e?.hasErrorLabel === 'function' ? e.hasErrorLabel(label) : (e?.errorLabels ?? []).includes(label);
}

function show(v: unknown): string {
  try {
    return EJSON.stringify(v as Document, { relaxed: true });
  } catch {
    return String(v);
  }
}

function describe(v: unknown): string {
  return (v as object)?.constructor?.name ?? typeof v;
}

function resolveSession(args: Args, lookup: (name: string) => ClientSession): Args {
  if (typeof args.session === 'string') args.session = lookup(args.session);
  return args;
}

/** Entity options from the format (read/write concern, read preference) as driver options. */
function optionsOf(spec: Document | undefined): Document {
  if (!spec) return {};
  const out: Document = { ...spec };
  if (isDocument(spec.readPreference)) out.readPreference = (spec.readPreference as Document).mode;
  return out;
}

/** `returnDocument: 'Before' | 'After'` in the format, lower case in the Node driver. */
function findAndModifyOptions(options: Args): Args {
  if (typeof options.returnDocument === 'string') options.returnDocument = options.returnDocument.toLowerCase();
  return options;
}

async function collectionOperation(coll: Collection, name: string, args: Args): Promise<unknown> {
  const { filter, update, replacement, document, documents, requests, pipeline, keys, to, ...options } = args;
  const f = (filter as Document | undefined) ?? {};
  switch (name) {
    case 'insertOne':
      return await coll.insertOne(document as Document, options);
    case 'insertMany':
      return await coll.insertMany(documents as Document[], options);
    case 'updateOne':
      return await coll.updateOne(f, update as Document, options);
    case 'updateMany':
      return await coll.updateMany(f, update as Document, options);
    case 'replaceOne':
      return await coll.replaceOne(f, replacement as Document, options);
    case 'deleteOne':
      return await coll.deleteOne(f, options);
    case 'deleteMany':
      return await coll.deleteMany(f, options);
    case 'findOneAndUpdate':
      return await coll.findOneAndUpdate(f, update as Document, findAndModifyOptions(options));
    case 'findOneAndReplace':
      return await coll.findOneAndReplace(f, replacement as Document, findAndModifyOptions(options));
    case 'findOneAndDelete':
      return await coll.findOneAndDelete(f, options);
    case 'bulkWrite':
      return await coll.bulkWrite(requests as never[], options);
    case 'find':
      return await coll.find(f, options).toArray();
    case 'aggregate':
      return await coll.aggregate(pipeline as Document[], options).toArray();
    case 'countDocuments':
      return await coll.countDocuments(f, options);
    case 'distinct': {
      const { fieldName, ...rest } = options;
      return await coll.distinct(fieldName as string, f, rest);
    }
    case 'createIndex':
      return await coll.createIndex(keys as Document, options);
    case 'dropIndex': {
      const { name: indexName, ...rest } = options;
      await coll.dropIndex(indexName as string, rest);
      return undefined;
    }
    case 'rename':
      await coll.rename(to as string, options);
      return undefined;
    case 'drop':
      await coll.drop(options);
      return undefined;
    default:
      throw new UnsupportedOperation(`collection.${name}`);
  }
}
