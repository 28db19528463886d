/**
 * Every document shape of the data contract (README "Data contract") in one place: workflows,
 * submissions, jobs (as created, and as the processor reads and writes them), checkpoints, dead
 * letters, runs, data sources, alert states and fan-out ticks.
 */
import type { ObjectId, Timestamp } from 'mongodb';

/** Which path created or saw a job. */
export type JobOrigin = 'change_stream' | 'explicit' | 'reconcile' | 'manual';
export type SubmissionEvent = 'insert' | 'update' | 'replace';
/**
 * A job's status. The processor writes `queued` → `running` → `succeeded` | `dead` (and `queued` again
 * after a retryable failure or a replay). `failed` is never written: it stays in the data contract's
 * vocabulary and the status route counts it (always 0 for jobs this software created).
 */
export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'dead';

/** A step of a workflow. `webhook` is built in; deployments register more in code (lib/jobs). */
export interface WorkflowStep {
  type: string;
  [key: string]: unknown;
}

/** `workflows` — written by the platform. */
export interface WorkflowDoc {
  _id: ObjectId | string;
  organizationId: string;
  formId: string;
  name: string;
  status: 'active' | 'paused' | 'draft';
  trigger?: {
    /** Default `['insert']`. */
    on?: SubmissionEvent[];
    /** A MongoDB query evaluated against the submission document. */
    filter?: Record<string, unknown>;
  };
  steps: WorkflowStep[];
  updatedAt: Date;
}

/** A submission document — written by the platform. */
export interface SubmissionDoc {
  _id: ObjectId | string;
  organizationId: string;
  formId: string;
  data: Record<string, unknown>;
  submittedAt: Date;
  [key: string]: unknown;
}

/**
 * What a job's trigger was judged on (lib/drain/images.ts): `event` — the document the event
 * carries (inserts, replaces); `post_image` — the document as the update left it; `lookup` — the
 * document as found later (`updateLookup` or a drain's lookup), which may be a later state.
 */
export type JudgedOn = 'event' | 'post_image' | 'lookup';

/** `workflow_jobs` — one per (workflow, submission, triggering event); unique `key`. */
export interface JobDoc {
  _id?: ObjectId;
  key: string;
  organizationId: string;
  workflowId: string;
  workflowName: string;
  formId: string;
  submissionId: string;
  /** Stream id the event came from (`org:acme`, `shared:global_submissions`, `source:acme`). */
  source: string;
  event: SubmissionEvent;
  createdBy: JobOrigin;
  /** Every path that produced this job's key, the creator included. */
  seenBy: JobOrigin[];
  status: JobStatus;
  attempts: number;
  runAt: Date;
  lease: { owner: string; expiresAt: Date } | null;
  lastError: { message: string; code: string; retryable: boolean; at: Date } | null;
  /** Snapshot of the workflow steps at dispatch time. */
  steps: WorkflowStep[];
  /** Snapshot of the submission the event carried. */
  submission: Record<string, unknown>;
  eventClusterTime: Timestamp | null;
  eventWallTime: Date | null;
  /** Change-stream jobs: which state of the submission the workflow's filter saw. */
  judgedOn?: JudgedOn;
  createdAt: Date;
  updatedAt: Date;
  startedAt?: Date | null;
  finishedAt?: Date | null;
}

/** A resume token as the server hands it out; opaque to us. */
export type ResumeToken = { _data: string } | Record<string, unknown>;

export type StreamState = 'idle' | 'draining' | 'recovering' | 'failing' | 'paused';

export type GapReason = 'history_lost' | 'invalid_token' | 'restart' | 'manual' | 'backfill';

/** A recovery window: documents in it were found by a scan rather than by the stream. */
export interface GapRecord {
  /** Identifies the recovery or reconcile that found the gap; a gap is recorded once per id. */
  id: string;
  from: Date;
  to: Date;
  /** Documents found by the scan (each dispatched idempotently). */
  count: number;
  jobsCreated: number;
  /**
   * Documents found only by their `_id` creation time, whose `submittedAt` could not place them in
   * the window (missing, not a date, or outside it); they were dispatched too. Absent on gaps
   * recorded before this was counted.
   */
  unplaced?: number;
  /** Up to 5 of them, with the reason. */
  unplacedExamples?: { id: unknown; reason: 'no_submitted_at' | 'submitted_at_not_a_date' | 'outside_window' }[];
  reason: GapReason;
  recordedAt: Date;
  runId: string;
}

/**
 * A recovery in progress. The new stream's token is kept aside until the scan of the gap has
 * dispatched everything up to `to`; only then does it become the checkpoint token.
 */
export interface RecoveryState {
  kind: 'history_lost' | 'invalid_token' | 'restart';
  from: Date;
  to: Date;
  freshToken: ResumeToken | null;
  /**
   * When no new stream could be opened (the server refused every resume point, or an operator
   * restart): the cluster time the stream opens at (`startAtOperationTime`) once the scan is done.
   */
  freshAt?: Timestamp | null;
  /** Scan position (lib/drain/reconcile.ts ScanCursor): phase `submittedAt`, then phase `id`. */
  cursor: { phase?: 'submittedAt' | 'id'; submittedAt: Date | null; id: unknown } | null;
  scanned: number;
  jobsCreated: number;
  unplaced?: number;
  unplacedExamples?: GapRecord['unplacedExamples'];
  startedAt: Date;
  /** Partition streams: the submission collections whose scan is complete, and the one `cursor` belongs to. */
  collectionsDone?: string[];
  collection?: string | null;
  /**
   * Partition streams: the window's own id (lib/drain/recovery-run.ts), so the recovery that takes
   * it from the queue of pending windows takes exactly that one.
   */
  id?: string;
}

/** `change_stream_checkpoints` — one per stream. */
export interface CheckpointDoc {
  _id: string;
  orgId: string | null;
  token: ResumeToken | null;
  /**
   * With no `token`: the cluster time the stream opens at (`startAtOperationTime`), set by a
   * recovery that could not open a new stream and by an operator restart; cleared by the next token.
   */
  startAt?: Timestamp | null;
  /** True when `token` is an invalidate token: reopen with `startAfter`, not `resumeAfter`. */
  tokenIsInvalidate: boolean;
  /** Cluster time the saved token stands for (when known). */
  tokenTime: Date | null;
  tokenSavedAt: Date | null;
  /** Incremented by every lease; a save must present the fence it was given. */
  fence: number;
  lease: { owner: string; expiresAt: Date } | null;
  /** Run state, written by the lease holder (`paused` only on checkpoints from before the `paused` field). */
  state: StreamState;
  /** Set by an operator (lib/streams/pause.ts); no drain writes it. Absent means not paused. */
  paused?: boolean;
  consecutiveFailures: number;
  lastRun: DrainSummary | null;
  lastEventWallTime: Date | null;
  gaps: GapRecord[];
  gapCount: number;
  /** `gapCount` per reason (absent on checkpoints written before it existed). */
  gapsByReason?: Partial<Record<GapReason, number>>;
  /** An unfinished recovery scan, carried over to the next run (null when none is pending). */
  recovery: RecoveryState | null;
  /**
   * Recovery documents of partition streams (`recovery:partition:{p}/{P}`, lib/drain/recovery-run.ts):
   * gap windows the live stream handed over, oldest first, each scanned after `recovery` is done.
   */
  pending?: RecoveryState[];
  /** The continuous relay's chain state (lib/fanout/relay.ts); absent until a relay drain ran. */
  relay?: RelayState;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * A stream's relay chain (README "Continuous relay"): each window is one drain invocation carrying
 * a generation; taking the lease with generation g stores g, so any message with a generation <= the
 * stored one is refused as superseded (the fence that stops a forked chain).
 */
export interface RelayState {
  /** Highest generation that took the lease. */
  generation: number;
  /** True while the chain is meant to go on (a successor was published and not yet refused). */
  live: boolean;
  /** When the current window planned to publish its successor (deadline minus RELAY_HANDOVER_LEAD_MS). */
  handoverAt: Date | null;
  /** When a successor (or a watchdog restart) was last published. */
  lastPublishedAt: Date | null;
  /** When the last relay window released the lease (the start of the next handover gap). */
  releasedAt: Date | null;
  /** Last handover gap in ms: predecessor's release → successor's first read. */
  lastGapMs: number | null;
  /** Recent handover gaps in ms, oldest first (the last 50). */
  gaps: number[];
  /** Chains restarted by the watchdog (the cron in the continuous relay). */
  restarts: number;
  lastRestartAt: Date | null;
}

export type StopReason =
  | 'deadline'
  | 'idle'
  | 'max_events'
  | 'error'
  | 'lease_lost'
  | 'leased'
  | 'paused'
  /** A relay message whose generation is at or below the stored one: a forked or repeated chain stops. */
  | 'superseded';

/** What started a drain run: Vercel Cron, a QStash delivery, an operator, a continuation, the in-process fan-out. */
export type StartedBy = 'cron' | 'qstash' | 'manual' | 'continuation' | 'fanout' | 'relay';

/** What one drain invocation did; stored in `drain_runs` and returned by the routes. */
export interface DrainSummary {
  runId: string;
  streamId: string;
  status: 'completed' | 'skipped' | 'failed';
  stoppedBy: StopReason;
  /** What started the run; stored as `trigger` (data contract). */
  trigger: StartedBy;
  events: number;
  jobsCreated: number;
  /**
   * Jobs planned from update events whose document was looked up rather than the event's
   * post-image (a later state may have been judged; lib/drain/images.ts). Absent on older runs.
   */
  judgedOnLookup?: number;
  duplicates: number;
  deadLettered: number;
  flushes: number;
  /** MongoDB commands sent by this run (getMore, bulk write, token save …). */
  roundTrips: number;
  reconnects: number;
  /** Recoveries run (history lost / invalid token / invalidate). */
  recoveries: { kind: 'history_lost' | 'invalid_token' | 'restart' | 'invalidate' | 'oversized_event'; count: number }[];
  /** Partition streams: recovery runs this drain asked for (lib/drain/recovery-run.ts kickRecovery). */
  recoveryKicks?: number;
  tokenBefore: ResumeToken | null;
  tokenAfter: ResumeToken | null;
  /** True when the stream still had events when the run stopped: a continuation is due. */
  busy: boolean;
  /** Mean insert→dispatch latency of the events in this run (ms), from the events' wall time. */
  latencyMsAvg: number | null;
  latencyMsMax: number | null;
  startedAt: Date;
  endedAt: Date;
  durationMs: number;
  error: { code: string; message: string } | null;
  /** Relay windows only: the generation this run carried. */
  generation?: number;
  /** Job-processor kicks of this run (lib/jobs/kick.ts); absent when no flush created jobs. */
  jobsKick?: { requested: number; sent: number; deduplicated: number; failed: number };
}

/** `trigger_dead_letters` — events that could not be dispatched, with the reason; replayable. */
export interface DeadLetterDoc {
  _id?: unknown;
  /** `{streamId}:{event token}`: a poison event is dead-lettered once, however often it is read. */
  key: string;
  streamId: string;
  organizationId: string | null;
  reason: string;
  code: string;
  documentKey: unknown;
  operationType: string;
  clusterTime: Timestamp | null;
  /** The event, or a truncated description of it when it was too large to keep. */
  event: unknown;
  createdAt: Date;
  replayedAt: Date | null;
}

/** The error a finished or retried attempt leaves on the job. */
export interface JobError {
  message: string;
  code: string;
  retryable: boolean;
  at: Date;
}

/**
 * `workflow_jobs` as the processor reads and writes it: the shared JobDoc plus optional fields that
 * only the processor uses. Jobs created before these fields existed simply lack them.
 */
export interface ProcessedJobDoc extends Omit<JobDoc, 'lease' | 'lastError'> {
  _id: ObjectId;
  /**
   * `token` is unique per claim. Together with `attempts` it fences every later write, even after
   * a replay reset `attempts` to 0 and the same processor claims the job again.
   */
  lease: { owner: string; expiresAt: Date; token?: string } | null;
  lastError: JobError | null;
  /** Steps that already succeeded; a retry resumes at this index instead of repeating them. Default 0. */
  completedSteps?: number;
  /** Errors of earlier lives of the job, kept when a dead job is replayed (newest last, at most 20). */
  previousErrors?: JobError[];
  /** Why the job is `dead` (set with it). */
  deadReason?: 'non_retryable' | 'attempts_exhausted' | 'lease_expired';
  /** How many times the job was replayed from `dead`. */
  replays?: number;
  replayedAt?: Date | null;
  /**
   * Id of the last fenced write recorded for this attempt when writes are batched
   * (lib/jobs/result-batch.ts): a bulk write reports only totals, this tells which writes matched.
   */
  lastWriteId?: string;
  /** How many times a succeeded job was delivered again on purpose (`redeliver`). */
  redeliveries?: number;
  /** Manual requeues of the job, newest last (at most 20): replays from `dead` and deliberate redeliveries. */
  history?: JobHistoryEvent[];
}

/** One manual requeue recorded on a job. */
export interface JobHistoryEvent {
  kind: 'replay' | 'manual_redelivery';
  at: Date;
  /** The status the job had when it was requeued. */
  previousStatus: string;
  /** Set on a redelivery: when the earlier delivery had finished. */
  previousFinishedAt?: Date | null;
  /** True when the replay replaced the job's steps with its workflow's current ones. */
  stepsReplaced?: boolean;
}

/**
 * `data_sources`: organizations whose submissions live in their own MongoDB cluster. The connection
 * string is stored encrypted (AES-256-GCM under DATA_SOURCE_KEY), decrypted only to connect, and
 * never logged or returned.
 */
export interface DataSourceDoc {
  _id?: unknown;
  organizationId: string;
  /** `v1:` + base64(iv ‖ tag ‖ ciphertext). */
  uri: string;
  db: string;
  collection: string;
  createdAt: Date;
}

/**
 * `trigger_alerts`: one document per alert condition (`_id` the condition's key, e.g. `failing:<streamId>`)
 * holding the value last claimed for a notification (put back when the delivery fails), so a condition
 * is sent once when it fires or grows, however many ticks evaluate it (lib/status/alerts.ts).
 */
export interface AlertStateDoc {
  _id: string;
  /** For state conditions 1 (on) or 0 (off); for counters the count. */
  value: number;
  updatedAt: Date;
  /** When the alert webhook last accepted a notification for this condition. */
  lastSentAt?: Date;
}

/**
 * `fanout_ticks`: one document per fan-out tick (`_id` the cron minute, `YYYYMMDDHHmm` UTC, `tickOf`),
 * upserted by every delivery of that tick (lib/fanout/tick.ts): a schedule may be delivered more than once.
 */
export interface FanoutTickDoc {
  _id: string;
  /** When the first delivery of this tick started. */
  firstAt: Date;
  /** When the latest delivery of this tick finished its drains or publishes. */
  lastAt: Date;
  /** `qstash`: drains were published; `in_process`: they ran in the tick's invocation. */
  mode: 'qstash' | 'in_process';
  /** Streams known at the tick. */
  streams: number;
  /** Streams chosen for a drain this tick. */
  selected: number;
  /** Streams due but left for a later tick. */
  deferred: number;
  /** Deliveries of this tick (more than 1 when QStash delivered the schedule again). */
  deliveries: number;
}
