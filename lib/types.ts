import type { ObjectId, Timestamp } from 'mongodb';

/** Which path created or saw a job. */
export type TriggerPath = 'change_stream' | 'explicit' | 'reconcile' | 'manual';
export type TriggerEvent = 'insert' | 'update' | 'replace';
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
    on?: TriggerEvent[];
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
  event: TriggerEvent;
  createdBy: TriggerPath;
  /** Every path that produced this job's key, the creator included. */
  seenBy: TriggerPath[];
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
  createdAt: Date;
  updatedAt: Date;
  startedAt?: Date | null;
  finishedAt?: Date | null;
}
