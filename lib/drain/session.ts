import type { ChangeStream, ChangeStreamDocument, ChangeStreamOptions, Collection, Db, Document, Timestamp } from 'mongodb';
import { redact } from '../platform/redact.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { AppContext } from '../platform/context.js';
import type { Deadline } from '../platform/clock.js';
import { rolloutModeFor } from '../streams/rollout.js';
import { classifyError } from './classify.js';
import { fullJitterMs } from '../platform/backoff.js';
import { withTimeout } from '../platform/deadline.js';
import type { CheckpointStore, Lease } from '../streams/checkpoint.js';
import { changeEventInput, lastWallTime } from '../dispatch/events.js';
import { planJobs } from '../dispatch/plan.js';
import { writeDeadLetters, writeJobs } from '../dispatch/write.js';
import { recordTransitions, type TimelineDoc } from '../dispatch/timeline.js';
import type { Workflows } from '../dispatch/workflows.js';
import type { PoisonEvent } from '../dispatch/plan.js';
import type { JobDoc } from '../data/documents.js';
import { newRecovery, scanRecoveryGap } from './recovery.js';
import { LargeEvents, stepOverOversized } from './large.js';
import { judgedOn, PostImages } from './images.js';
import { refusedResume, serverTime, timestampDate } from './resume.js';
import { ReadTimeoutError, squashError } from '../platform/errors.js';
import { tokenId, tokenPosition, tokenTime } from '../streams/token.js';
import { registryAt } from '../dispatch/timeline.js';
import type { DrainSummary, RecoveryState, ResumeToken, StopReason, SubmissionEvent } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';
import { followWorkflowEvent, initialRegistry, routeEvent, watchSpec } from './partition-events.js';
import { recoveryId, scanPartitionGap, withWindowId } from './partition-recovery.js';

type Event = ChangeStreamDocument<Document>;

/** Buffered events already judged (before a `workflows` change moved the registry), waiting for the next write. */
interface Planned {
  events: Event[];
  jobs: JobDoc[];
  poison: PoisonEvent[];
}

/**
 * What a caller may add to one pass (the relay, lib/fanout/relay.ts; the job-processor kick,
 * lib/jobs/kick.ts). Every hook is optional and none may throw into the drain loop.
 */
export interface SessionHooks {
  /** Keep reading through idle periods until the deadline (a relay window of a continuous stream). */
  continuous?: boolean;
  /** Epoch ms at which `onHandover` is called once (the relay publishes its successor then). */
  handoverAt?: number;
  onHandover?: () => void;
  /** Called once, when the first read of the pass starts (the relay measures its handover gap). */
  onFirstRead?: (atMs: number) => void;
  /** Called after each flush that created jobs (asks for a job-processor run). */
  onJobsCreated?: (count: number) => void;
  /** Stop at the next loop turn, as at a deadline (the in-process relay runner's shutdown). */
  signal?: AbortSignal;
  /** Partition streams: a gap window was handed to the partition's recovery (asks for a recovery run). */
  onRecoveryQueued?: () => void;
}
const DISPATCHABLE = new Set(['insert', 'update', 'replace']);
/**
 * Batch writes a drain keeps in flight at once while it reads on: a batch's job write may start
 * while the previous batch's write or token save is still under way, instead of waiting for it.
 * (On the loaded 2-core bench machine the drain's rate did not move measurably either way; see
 * docs/benchmarks.md, "Throughput pass".)
 */
export const WRITES_IN_FLIGHT = 2;
/** How long a drain that keeps reading may leave its token unsaved (see `startFlush`), ms. */
export const TOKEN_SAVE_INTERVAL_MS = 1_000;
const MAX_RECONNECTS = 6;

/**
 * One invocation's pass over one stream, under a lease, until a stop condition. Reads with
 * `tryNext()` only (never an unbounded iteration), flushes the buffer in one bulk write, and saves
 * the token after the write. On errors it follows `classifyError`.
 */
export class DrainSession {
  /** Events read and not yet judged. */
  private buffer: Event[] = [];
  /** Events judged with the registry in force before a later `workflows` change, not yet written. */
  private planned: Planned[] = [];
  /** Timeline entries of `workflows` changes followed since the last write (written with the next batch). */
  private transitions: TimelineDoc[] = [];
  /** A `workflows` change was applied to the registry since the token was last saved. */
  private registryMoved = false;
  /** Timeline entries of the changes applied since the token was last saved, written or not. */
  private followedSinceSave: TimelineDoc[] = [];
  private firstBufferedAt = 0;
  private lastEventAt: number;
  private savedToken: ResumeToken | null;
  private savedIsInvalidate: boolean;
  private reconnects = 0;
  private latencySum = 0;
  private latencyCount = 0;
  /**
   * Batch writes in flight while the next batch is read (at most WRITES_IN_FLIGHT), oldest first.
   * Each settles once its jobs are durable and its token is saved (or passed on to a later batch).
   */
  private inflight: Promise<void>[] = [];
  /** Wall time of the last event dispatched in a batch whose token is not saved yet. */
  private unsavedWallTime: Date | null = null;
  private handedOver = false;
  private readStarted = false;
  /** Split events, and events over 16 MiB stepped over (lib/drain/large.ts). */
  private readonly large = new LargeEvents();
  /** `whenAvailable` post-images or `updateLookup`, and what each event is judged on (lib/drain/images.ts). */
  private readonly images = new PostImages();
  /**
   * A recovery scan ran in this pass (or, on a partition, a window was handed over): a further
   * refused resume point waits for the next run.
   */
  private scanned = false;
  readonly maxAwaitMs: number;
  /** When the token was last saved (epoch ms), and whether an event was read since. */
  private savedAt: number;
  private readSinceSave = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly stream: StreamRef,
    private readonly lease: Lease,
    private readonly store: CheckpointStore,
    /** Replaced after a reopen from the saved token (`rewind`) and after a partition's gap is handed over (the registry in force at the fresh point). */
    private registry: Workflows,
    /** A collection, or the platform database for a partition stream. */
    private readonly source: Collection | Db,
    private readonly deadline: Deadline,
    private readonly summary: DrainSummary,
    private readonly hooks: SessionHooks = {},
  ) {
    this.lastEventAt = ctx.clock.now();
    this.savedToken = lease.checkpoint.token;
    this.savedIsInvalidate = lease.checkpoint.tokenIsInvalidate;
    this.savedAt = lease.checkpoint.tokenSavedAt ? new Date(lease.checkpoint.tokenSavedAt).getTime() : 0;
    // Every getMore must come back before the deadline: its wait is a fraction of the window.
    this.maxAwaitMs = Math.max(10, Math.min(ctx.config.DRAIN_MAX_AWAIT_MS, Math.floor(deadline.remaining() / 5)));
  }

  /** The registry as the pass left it (it follows `workflows` changes and may be rebuilt on a reopen). */
  get currentRegistry(): Workflows {
    return this.registry;
  }

  async run(): Promise<void> {
    let cs: ChangeStream | null = null;
    try {
      await this.large.init(this.ctx.db, this.ctx.config.DRAIN_SPLIT_LARGE_EVENTS);
      await this.images.init(this.ctx, this.stream, this.source, this.registry.needsUpdates());
      const carried = this.lease.checkpoint.recovery;
      if (carried && this.stream.kind === 'partition') {
        // A recovery left on the partition itself (an operator restart, or a checkpoint written
        // before partitions recovered apart): hand it over with its progress and go on live.
        this.bumpRecovery(carried.kind);
        await this.handOver(carried);
        cs = this.open();
      } else cs = carried ? await this.continueRecovery(carried) : this.open();
      for (;;) {
        if (!cs) return;
        const stop = this.stopReason();
        if (stop) {
          await this.flush(cs);
          this.summary.stoppedBy = stop;
          this.summary.busy = stop !== 'idle' && this.summary.events > 0 && this.ctx.clock.now() - this.lastEventAt < this.ctx.config.DRAIN_IDLE_MS;
          return;
        }
        try {
          cs = await this.step(cs);
        } catch (error) {
          // A batch write may still be in flight (the error came from the read beside it): let it
          // finish, so the saved token is exactly what was durably written before going on.
          await this.settle().catch(squashError);
          if (error instanceof ReadTimeoutError) {
            this.fail('deadline', error);
            return;
          }
          const kind = classifyError(error);
          await cs.close().catch(squashError);
          if (kind === 'transient') {
            cs = await this.reconnect(error);
          } else if (kind === 'history_lost' || kind === 'invalid_token') {
            cs = await this.recover(kind);
          } else if (kind === 'oversized_event') {
            cs = await this.stepOver(error);
          } else {
            cs = null;
            throw error;
          }
        }
      }
    } finally {
      // Nothing may be written after the run returns (the lease is released next).
      await this.settle().catch((error: unknown) => {
        if (this.summary.status !== 'failed') this.fail('error', error);
      });
      await cs?.close().catch(squashError);
      this.summary.reconnects = this.reconnects;
      this.summary.latencyMsAvg = this.latencyCount ? Math.round(this.latencySum / this.latencyCount) : null;
    }
  }

  private stopReason(): StopReason | null {
    const now = this.ctx.clock.now();
    const hooks = this.hooks;
    if (!this.handedOver && hooks.onHandover && hooks.handoverAt !== undefined && now >= hooks.handoverAt) {
      this.handedOver = true;
      hooks.onHandover();
    }
    if (hooks.signal?.aborted) return 'deadline';
    if (this.deadline.remaining() <= this.maxAwaitMs + 100) return 'deadline';
    if (this.summary.events >= this.ctx.config.DRAIN_MAX_EVENTS) return 'max_events';
    if (!hooks.continuous && now - this.lastEventAt >= this.ctx.config.DRAIN_IDLE_MS) return 'idle';
    return null;
  }

  /**
   * Open the stream from a resume point: a token, else a cluster time (`startAtOperationTime`, after
   * a recovery that could not open a stream, or an operator restart), else now. `describe` replaces
   * the tail of the pipeline and reads without document lookups (lib/drain/large.ts).
   */
  private open(
    resume: { token: ResumeToken | null; startAfter: boolean; startAt?: Timestamp | null } = { token: this.savedToken, startAfter: this.savedIsInvalidate, startAt: this.lease.checkpoint.startAt },
    describe?: Document[],
  ): ChangeStream {
    this.large.assembler.reset();
    const spec = watchSpec(this.stream, this.registry);
    const options: ChangeStreamOptions = { batchSize: this.ctx.config.DRAIN_BATCH_SIZE, maxAwaitTimeMS: this.maxAwaitMs };
    const fullDocument = this.images.fullDocument(spec.fullDocument);
    if (fullDocument && !describe) options.fullDocument = fullDocument;
    if (resume.token) options[resume.startAfter ? 'startAfter' : 'resumeAfter'] = resume.token;
    else if (resume.startAt) options.startAtOperationTime = resume.startAt;
    const pipeline: Document[] = spec.pipeline;
    pipeline.push(...(describe ?? this.large.stages()));
    return this.source.watch(pipeline, options);
  }

  /** The token that may be saved now: the stream's, or the last whole event's while a split one is half read. */
  private tokenOf(cs: ChangeStream): ResumeToken | null {
    return this.large.assembler.safeToken((cs.resumeToken ?? null) as ResumeToken | null);
  }

  /** One read; returns the stream to go on with (a new one after an invalidate). */
  private async step(cs: ChangeStream): Promise<ChangeStream> {
    const cfg = this.ctx.config;
    if (cs.bufferedCount() === 0) {
      // The driver has nothing buffered: the next read waits for the server, so start dispatching
      // now and let the write run while that read is under way.
      if (this.pending() > 0) await this.startFlush(cs);
      this.summary.roundTrips++;
    } else if (this.pending() >= cfg.DRAIN_BATCH_SIZE || (this.pending() > 0 && this.ctx.clock.now() - this.firstBufferedAt >= cfg.DRAIN_FLUSH_INTERVAL_MS)) {
      await this.flush(cs);
    }
    const before = this.tokenOf(cs);
    const read = await this.read(cs);
    if (!read) {
      // Nothing new: write what is pending (if anything) and save the token that moved.
      await this.flush(cs);
      return cs;
    }
    // A fragment of a split event: the event is dispatched once its last fragment is read. A
    // fragment is progress: the idle timer must not end the run between fragments.
    this.lastEventAt = this.ctx.clock.now();
    const event = this.large.assembler.push(read, before);
    if (!event) return cs;
    this.summary.events++;
    this.readSinceSave = true;
    this.lastEventAt = this.ctx.clock.now();
    if (event.operationType === 'invalidate') {
      // Dropped or renamed: dispatch what came before, then keep the invalidate token (saved as
      // such, so the next open uses startAfter) and reopen after it.
      await this.settle();
      if (this.pending() > 0) await this.dispatchBuffer();
      // A database stream is invalidated by dropDatabase: the workflows went with the database.
      if (this.stream.kind === 'partition') this.registry.clear();
      await this.save(event._id as ResumeToken, true);
      this.bumpRecovery('invalidate');
      await cs.close().catch(squashError);
      return this.open({ token: event._id as ResumeToken, startAfter: true });
    }
    const route = routeEvent(this.stream, event);
    if (route.kind === 'workflow') return this.followWorkflow(cs, event);
    if (route.kind === 'namespace') {
      this.ctx.log.info('collection dropped or renamed; stepped over (a database stream is not invalidated)', { streamId: this.stream.id, operationType: event.operationType, coll: route.coll });
      if (route.coll === COLLECTIONS.workflows) {
        // The workflows went with their collection (no delete events follow): what came before is
        // judged by them, what follows by none until workflows are created again.
        await this.settle();
        if (this.pending() > 0) await this.dispatchBuffer();
        this.registry.clear();
        this.registryMoved = true;
      }
    } else if (route.kind === 'submission' && this.registry.events.has(event.operationType as SubmissionEvent)) {
      // A database stream's filter stays the same whatever the workflows (a changed filter can make
      // a saved token unresumable), so it carries updates no workflow listens to, read without their
      // document: stepped over here, never judged (they would be dead-lettered as document_unavailable).
      if (this.pending() === 0) this.firstBufferedAt = this.ctx.clock.now();
      this.buffer.push(event);
    }
    return cs;
  }

  /** Events and timeline entries read but not yet written. */
  private pending(): number {
    let n = this.buffer.length + this.transitions.length;
    for (const p of this.planned) n += p.events.length;
    return n;
  }

  /**
   * Forget what was read since the last write, before reopening from the saved token: those events
   * are read again. A registry moved by a `workflows` change past the saved token goes back to the
   * one in force at the token (the change is read and applied again in order), so the events read
   * again are judged as they were saved.
   */
  private async rewind(): Promise<void> {
    // Transitions read but maybe not recorded (their write may be what failed) still tell when each
    // workflow changed: without them a workflow created in the saved token's second would count as
    // in force since its creation (the timeline's bootstrap rule, seconds precision).
    const observed = this.followedSinceSave;
    this.buffer = [];
    this.planned = [];
    this.transitions = [];
    if (!this.registryMoved) return;
    const startAt = this.lease.checkpoint.startAt;
    this.registry = await initialRegistry(this.ctx, this.stream, { ...this.lease.checkpoint, token: this.savedToken }, startAt ? timestampDate(startAt) : null, observed);
    this.registryMoved = false;
    this.followedSinceSave = []; // read and followed again after the reopen
    this.summary.roundTrips += 2;
  }

  /**
   * A `workflows` change (partition streams): judge the events before it with the registry they
   * were saved under, then apply the change. The judged jobs and the change's timeline entry are
   * written with the next batch, before the token that covers them is saved (timeline entries are
   * idempotent, and a run that resumes from an earlier token starts with the registry in force there
   * and applies the change again in order) — so a backlog of workflow changes costs one write per
   * batch, not one per change. When the registry now needs update/replace documents and the stream
   * reads without them, reopen from this event's token.
   */
  private async followWorkflow(cs: ChangeStream, event: Event): Promise<ChangeStream> {
    // The write in flight judged its events before this change; wait for it, judge the buffer
    // with the registry as it stands, then move the registry.
    await this.settle();
    if (this.buffer.length) await this.planBuffer();
    if (this.pending() === 0) this.firstBufferedAt = this.ctx.clock.now();
    const { entry, needsGrew, roundTrips } = await followWorkflowEvent(this.ctx, this.registry, event);
    this.transitions.push(entry);
    this.followedSinceSave.push(entry);
    this.registryMoved = true;
    this.summary.roundTrips += roundTrips;
    if (!needsGrew) return cs;
    await cs.close().catch(squashError);
    return this.open({ token: event._id as ResumeToken, startAfter: false });
  }

  /**
   * One `tryNext()`, bounded by the deadline. A read normally returns within the getMore wait, but
   * the driver resumes indefinitely while each resume succeeds (a getMore outage), so a read can
   * hang. Reads only go to the server with an empty buffer (flushed just before), so giving up on
   * one loses nothing: the stream is closed and the run stops on the last saved token.
   */
  private async read(cs: ChangeStream): Promise<Event | null> {
    if (!this.readStarted) {
      this.readStarted = true;
      this.hooks.onFirstRead?.(this.ctx.clock.now());
    }
    if (cs.bufferedCount() > 0) return cs.tryNext(); // served from the driver's buffer, no I/O
    try {
      // On timeout the pending read settles after close; withTimeout drops its result.
      return await withTimeout(cs.tryNext(), this.ctx.clock, this.deadline.remaining(), () => new ReadTimeoutError(this.stream.id));
    } catch (error) {
      if (error instanceof ReadTimeoutError) await cs.close().catch(squashError);
      throw error;
    }
  }

  /** Dispatch the buffer in one bulk write, then save the token that covers it; wait for both. */
  private async flush(cs: ChangeStream): Promise<void> {
    await this.startFlush(cs);
    await this.settle();
    // The batch may have left its token to a later save (TOKEN_SAVE_INTERVAL_MS): this is it.
    await this.saveIfAdvanced(this.tokenOf(cs));
  }

  /**
   * Take the buffer and the token that covers it, and start writing them: the jobs, then the token.
   * Up to WRITES_IN_FLIGHT batches are written at once (their job writes overlap each other and
   * the next read), but tokens are saved strictly in order: batch k's token is saved only after
   * the jobs of every batch up to k are durable and batch k−1's token is saved. A batch whose
   * jobs are durable less than TOKEN_SAVE_INTERVAL_MS after the last save leaves its token to a
   * later save: the next batch's, the empty read that finds the stream idle, or the run's last
   * flush (each saves a token that moved). While a backlog is read that is one token save per
   * interval instead of one per batch. The saved token never passes an undispatched event; after
   * a crash the next run re-reads at most about an interval of events, whose jobs are found by
   * their keys (counted as duplicates, never created twice). Outcomes are awaited (and the first
   * error surfaces) in `settle`.
   */
  private async startFlush(cs: ChangeStream): Promise<void> {
    const token = this.tokenOf(cs);
    if (this.pending() === 0) {
      await this.settle();
      await this.saveIfAdvanced(token);
      return;
    }
    while (this.inflight.length >= WRITES_IN_FLIGHT) await this.settleOldest();
    const previous = this.inflight.at(-1);
    const jobs = this.dispatchBuffer();
    const write = (async () => {
      const lastWall = await jobs;
      // In order: a failed earlier batch fails this one too, before its token could be saved.
      if (previous) await previous;
      if (lastWall) this.unsavedWallTime = lastWall;
      if (!token || this.ctx.clock.now() - this.savedAt < TOKEN_SAVE_INTERVAL_MS) return;
      await this.save(token, false);
    })();
    write.catch(squashError); // observed by settle()
    this.inflight.push(write);
  }

  /** Wait for the oldest batch write in flight; its error is thrown here. */
  private async settleOldest(): Promise<void> {
    const write = this.inflight[0];
    try {
      await write;
    } finally {
      if (this.inflight[0] === write) this.inflight.shift();
    }
  }

  /** Wait for every batch write in flight (all of them, even after one failed); the first error is thrown here. */
  private async settle(): Promise<void> {
    const writes = this.inflight;
    this.inflight = [];
    if (writes.length === 0) return;
    const failed = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /** Judge the buffered events with the registry as it stands now; written by the next `dispatchBuffer`. */
  private async planBuffer(): Promise<void> {
    const events = this.buffer;
    this.buffer = [];
    const plan = await this.plan(events);
    if (plan) this.planned.push(plan);
  }

  /** Judge events with the registry as it stands (null for none). */
  private async plan(events: Event[]): Promise<Planned | null> {
    if (events.length === 0) return null;
    await this.images.judge(this.ctx, events);
    const inputs = events.map((e) => {
      const route = routeEvent(this.stream, e);
      const input = { ...changeEventInput(e), judgedOn: judgedOn(e) };
      return route.kind === 'submission' && route.orgId !== undefined ? { ...input, orgId: route.orgId } : input;
    });
    const plan = planJobs(inputs, this.registry, {
      source: this.stream.id,
      path: 'change_stream',
      now: new Date(this.ctx.clock.now()),
      orgId: this.stream.kind === 'shared' ? null : this.stream.orgId,
      orgAllowed: (org) => rolloutModeFor(this.ctx.config, org) !== 'explicit',
    });
    return { events, jobs: plan.jobs, poison: plan.poison };
  }

  /**
   * Write the jobs and dead letters of the buffered and judged events, and the timeline entries of
   * the `workflows` changes followed since the last write (durably, before any token save): the
   * jobs and the entries go out side by side, one bulk write each. Everything pending is taken
   * before the first await, so batch writes in flight together never take each other's events
   * (a batch's token is saved only once its own write is durable).
   */
  private async dispatchBuffer(): Promise<Date | null> {
    const events0 = this.buffer;
    const taken = this.planned;
    const transitions = this.transitions;
    this.buffer = [];
    this.planned = [];
    this.transitions = [];
    const own = await this.plan(events0);
    const planned = own ? [...taken, own] : taken;
    const events = planned.flatMap((p) => p.events);
    const jobs = planned.flatMap((p) => p.jobs);
    const poison = planned.flatMap((p) => p.poison);
    const [written] = await Promise.all([writeJobs(this.ctx.db, jobs, 'change_stream'), recordTransitions(this.ctx.db, transitions)]);
    const now = new Date(this.ctx.clock.now());
    this.summary.judgedOnLookup = (this.summary.judgedOnLookup ?? 0) + jobs.filter((j) => j.judgedOn === 'lookup').length;
    const dead = await writeDeadLetters(this.ctx.db, this.stream.id, this.stream.orgId, poison, now);
    this.summary.roundTrips += written.roundTrips + (dead ? 1 : 0) + (transitions.length ? 1 : 0);
    this.summary.jobsCreated += written.created;
    this.summary.duplicates += written.duplicates;
    this.summary.deadLettered += dead;
    if (events.length) this.summary.flushes++;
    if (written.created > 0) this.hooks.onJobsCreated?.(written.created);
    for (const e of events) {
      const wall = (e as { wallTime?: Date }).wallTime;
      if (wall instanceof Date) {
        const latency = now.getTime() - wall.getTime();
        this.latencySum += latency;
        this.latencyCount++;
        this.summary.latencyMsMax = Math.max(this.summary.latencyMsMax ?? 0, latency);
      }
    }
    return lastWallTime(events);
  }

  /**
   * Save a token that moved. When no event was read since the last save, only time passed: the
   * save is skipped unless DRAIN_IDLE_SAVE_MS have gone by since the last one (or none was saved).
   */
  private async saveIfAdvanced(token: ResumeToken | null): Promise<void> {
    if (!token || tokenId(token) === tokenId(this.savedToken)) return;
    const idleFor = this.ctx.clock.now() - this.savedAt;
    if (!this.readSinceSave && this.savedToken && idleFor < this.ctx.config.DRAIN_IDLE_SAVE_MS) return;
    await this.save(token, false);
  }

  private async save(token: ResumeToken, isInvalidate: boolean, lastEventWallTime?: Date | null): Promise<void> {
    const wall = lastEventWallTime ?? this.unsavedWallTime;
    await this.store.saveToken(this.lease, token, new Date(this.ctx.clock.now()), { isInvalidate, lastEventWallTime: wall });
    if (this.unsavedWallTime === wall) this.unsavedWallTime = null;
    this.summary.roundTrips++;
    this.savedToken = token;
    this.registryMoved = false;
    this.followedSinceSave = [];
    this.savedAt = this.ctx.clock.now();
    this.readSinceSave = false;
    this.savedIsInvalidate = isInvalidate;
    this.summary.tokenAfter = token;
  }

  /** Transient failure: drop the unflushed buffer and reopen from the saved token after a backoff. */
  private async reconnect(error: unknown): Promise<ChangeStream | null> {
    this.reconnects++;
    const wait = fullJitterMs(this.reconnects, 100, 5_000);
    if (this.reconnects > MAX_RECONNECTS || this.deadline.remaining() <= wait + this.maxAwaitMs + 100) {
      this.fail('error', error);
      return null;
    }
    this.ctx.log.warn('change stream interrupted; reopening from the saved token', { streamId: this.stream.id, attempt: this.reconnects, error });
    await this.ctx.clock.sleep(wait);
    try {
      await this.rewind();
    } catch (rewindError) {
      // Without the registry of the saved token the events read again could be judged wrongly: stop here.
      this.fail('error', rewindError);
      return null;
    }
    // The dropped events are read again after reopening; the idle timer must not end the run first.
    this.lastEventAt = this.ctx.clock.now();
    return this.open();
  }

  /**
   * History lost or token invalid: open a new stream at now first, then scan the source for the gap
   * since the last checkpoint, then adopt the new stream's token. Progress is persisted, so a scan
   * longer than one window continues in the next run.
   */
  private async recover(kind: 'history_lost' | 'invalid_token'): Promise<ChangeStream | null> {
    this.bumpRecovery(kind);
    // The scan judges submissions by the timeline: record the workflow changes already read. The
    // events read since the last write are in the scanned window.
    await recordTransitions(this.ctx.db, this.transitions);
    this.buffer = [];
    this.planned = [];
    this.transitions = [];
    const lastKnown = this.resumeTime();
    const skew = this.ctx.config.RECOVERY_SKEW_MS;
    const at = await serverTime(this.ctx.db, this.ctx.clock);
    if (this.scanned) {
      // Refused again after a scan in this pass (a server that refuses every resume point): the
      // next run scans on from here, so each run still dispatches what was written.
      const now = new Date(this.ctx.clock.now());
      const state = newRecovery(kind, this.lease.checkpoint, lastKnown, { token: null, at }, now, skew);
      if (this.stream.kind === 'partition') await this.handOver(state);
      else await this.store.saveRecovery(this.lease, state, now);
      this.ctx.log.warn('change stream refused its resume point again; the next run scans on', { streamId: this.stream.id, kind });
      return null;
    }
    const fresh = this.open({ token: null, startAfter: false });
    let first: Event | null = null;
    let opened = true;
    let refusedFresh = false;
    try {
      first = await this.read(fresh);
    } catch (error) {
      if (!refusedResume(error)) {
        await fresh.close().catch(squashError);
        throw error;
      }
      // Not even a new stream opens: scan, then open at the time taken before trying.
      opened = false;
      refusedFresh = true;
    }
    this.summary.roundTrips++;
    if (first && (first as { splitEvent?: unknown }).splitEvent) {
      // The new stream's token stands inside a split event: open at the time taken before instead.
      opened = false;
    } else if (first) {
      // The new stream's token already stands past this event: dispatch it before keeping the token.
      this.summary.events++;
      if (DISPATCHABLE.has(first.operationType) && this.registry.events.has(first.operationType as SubmissionEvent)) {
        this.buffer.push(first);
        await this.dispatchBuffer();
      }
    }
    if (!opened) await fresh.close().catch(squashError);
    const now = new Date(this.ctx.clock.now());
    const freshToken = opened ? ((fresh.resumeToken ?? null) as ResumeToken | null) : null;
    if (this.stream.kind === 'partition') {
      // The live stream goes on from the fresh point at once; the window is scanned by the
      // partition's recovery under its own lease. Without a fresh token, the time taken before
      // opening the fresh stream is the fresh point (nothing after it is skipped).
      const state = newRecovery(kind, this.lease.checkpoint, lastKnown, { token: freshToken, at: freshToken ? null : at }, now, skew);
      await this.handOver(state);
      this.ctx.log.warn('change stream history unavailable; gap handed to the partition recovery, live stream goes on', { streamId: this.stream.id, kind, from: state.from, to: state.to });
      // A server that refuses even a new stream would refuse the start time too within this run:
      // the next run opens there (one window per run while it refuses, not two).
      if (refusedFresh) return null;
      const needsGrew = await this.registryAtFreshPoint(freshToken, at);
      if (opened && !needsGrew) return fresh;
      await fresh.close().catch(squashError);
      return this.open();
    }
    const state = newRecovery(kind, this.lease.checkpoint, lastKnown, { token: freshToken, at: opened ? null : at }, now, skew);
    await this.store.saveRecovery(this.lease, state, now);
    this.ctx.log.warn('change stream history unavailable; reconciling by scan', { streamId: this.stream.id, kind, from: state.from });
    if (await this.scanGap(state)) return opened ? fresh : this.open();
    await fresh.close().catch(squashError);
    return null;
  }

  /** The cluster time the pass resumes from: the saved token's, else the `startAt` time. */
  private resumeTime(): Date | null {
    const startAt = this.lease.checkpoint.startAt;
    return tokenTime(this.savedToken) ?? (startAt && !this.savedToken ? timestampDate(startAt) : null);
  }

  /**
   * An event the server cannot return (over 16 MiB): dead-letter it with its position and read on
   * from the saved token without it (lib/drain/large.ts). Events read since the last flush are read
   * again. An event that cannot be located, or one already stepped over in this pass, stops the run.
   */
  private async stepOver(error: unknown): Promise<ChangeStream | null> {
    await this.rewind();
    const now = new Date(this.ctx.clock.now());
    const stepped = await stepOverOversized(error, this.large, (stages) => this.open(undefined, stages));
    this.summary.deadLettered += await writeDeadLetters(this.ctx.db, this.stream.id, this.stream.orgId, [stepped.poison], now);
    this.summary.roundTrips += 2;
    this.bumpRecovery('oversized_event');
    this.ctx.log.warn('change event over 16 MiB stepped over and dead-lettered', { streamId: this.stream.id, reason: stepped.poison.reason });
    return this.open();
  }

  /**
   * Partition streams: hand a gap window over to the partition's recovery document
   * (`recovery:partition:{p}/{P}`, lib/drain/recovery-run.ts), then adopt the fresh resume point
   * (its token, or the cluster time to open at) and clear any recovery left on the partition. The
   * window is queued durably before the resume point moves: a crash in between leaves the old
   * resume point, refused again by the next run, which queues an overlapping window (the job keys
   * absorb the overlap). Then asks for a recovery run, without waiting for it.
   */
  private async handOver(state: RecoveryState): Promise<void> {
    this.scanned = true;
    const now = () => new Date(this.ctx.clock.now());
    await this.store.pushRecovery(recoveryId(this.stream), withWindowId(state), now());
    this.summary.roundTrips++;
    if (state.freshToken) await this.save(state.freshToken, false);
    else if (state.freshAt) {
      await this.store.saveStartAt(this.lease, state.freshAt, now());
      this.savedToken = null;
      this.savedIsInvalidate = false;
    }
    if (this.lease.checkpoint.recovery) await this.store.saveRecovery(this.lease, null, now());
    this.hooks.onRecoveryQueued?.();
  }

  /**
   * After a gap was handed over, the stream goes on from the fresh point: the `workflows` changes of
   * the gap were never read from it, so the registry becomes the one in force at the fresh point
   * (the timeline and the workflows as saved; `registryAt`), as a new run starting there would have.
   * Returns whether it now needs update/replace documents and did not before (reopen then).
   */
  private async registryAtFreshPoint(freshToken: ResumeToken | null, at: Timestamp): Promise<boolean> {
    const before = this.registry.needsUpdates();
    const pos = tokenPosition(freshToken) ?? at.high.toString(16).padStart(8, '0') + at.low.toString(16).padStart(8, '0');
    const wall = tokenTime(freshToken) ?? timestampDate(at);
    this.registry = await registryAt(this.ctx.db, null, { pos, wall }, this.ctx.log);
    this.registryMoved = false; // it stands at the saved fresh point
    this.followedSinceSave = [];
    this.summary.roundTrips += 2;
    return !before && this.registry.needsUpdates();
  }

  /** A recovery left unfinished by an earlier run: finish the scan, then open from the new token. */
  private async continueRecovery(state: RecoveryState): Promise<ChangeStream | null> {
    this.bumpRecovery(state.kind);
    return (await this.scanGap(state)) ? this.open() : null;
  }

  /** Scan the gap; once complete, adopt the new stream's token and clear the recovery. */
  private async scanGap(state: RecoveryState): Promise<boolean> {
    this.scanned = true;
    const target = { stream: this.stream, source: this.source, registry: this.registry, store: this.store, lease: this.lease, runId: this.summary.runId };
    const scan =
      this.stream.kind === 'partition'
        ? await scanPartitionGap(this.ctx, { ...target, stream: this.stream }, state, this.deadline)
        : await scanRecoveryGap(this.ctx, { ...target, source: target.source as Collection }, state, this.deadline);
    this.summary.jobsCreated += scan.jobsCreated;
    this.summary.duplicates += scan.duplicates;
    this.summary.deadLettered += scan.deadLettered;
    if (!scan.complete) {
      this.summary.stoppedBy = 'deadline';
      this.summary.busy = true;
      return false;
    }
    if (state.freshToken) await this.save(state.freshToken, false);
    else if (state.freshAt) {
      await this.store.saveStartAt(this.lease, state.freshAt, new Date(this.ctx.clock.now()));
      this.savedToken = null;
      this.savedIsInvalidate = false;
    }
    await this.store.saveRecovery(this.lease, null, new Date(this.ctx.clock.now()));
    return true;
  }

  private bumpRecovery(kind: DrainSummary['recoveries'][number]['kind']): void {
    const entry = this.summary.recoveries.find((r) => r.kind === kind);
    if (entry) entry.count++;
    else this.summary.recoveries.push({ kind, count: 1 });
  }

  private fail(stoppedBy: StopReason, error: unknown): void {
    this.summary.status = 'failed';
    this.summary.stoppedBy = stoppedBy;
    const e = error as { code?: unknown; message?: unknown };
    this.summary.error = { code: String(e?.code ?? 'error'), message: redact(String(e?.message ?? error)) };
  }
}
