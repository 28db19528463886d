import { z } from 'zod';
import { credentialConflict } from '../jobs/webhook.js';
import { Query } from 'mingo';
import type { Db, Filter } from 'mongodb';
import { COLLECTIONS } from '../data/mongo.js';
import type { Logger } from '../platform/log.js';
import type { SubmissionEvent, WorkflowDoc, WorkflowStep } from '../data/documents.js';

/** A workflow as dispatch uses it: validated and with its filter compiled, once per invocation. */
export interface CompiledWorkflow {
  id: string;
  name: string;
  organizationId: string;
  formId: string;
  on: ReadonlySet<SubmissionEvent>;
  matches(document: Record<string, unknown>): boolean;
  steps: WorkflowStep[];
  /**
   * Whether the workflow was in force for a submission saved at `t` (lib/dispatch/timeline.ts).
   * Absent in a registry that already stands at the event's time (a drain applying `workflows`
   * events in stream order, the explicit path at now): then it is in force.
   */
  inForceAt?: (t: Date) => boolean;
}

export interface InvalidWorkflow {
  id: string;
  reason: string;
}

const WorkflowSchema = z.object({
  _id: z.unknown(),
  organizationId: z.string().min(1),
  formId: z.string().min(1),
  name: z.string().default(''),
  status: z.literal('active'),
  trigger: z
    .object({
      on: z.array(z.enum(['insert', 'update', 'replace'])).min(1).optional(),
      filter: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
  steps: z.array(z.object({ type: z.string().min(1) }).passthrough()).min(1),
});

/**
 * The active workflows of one organization (or of all, for the legacy shared collections), loaded and
 * validated once per invocation. Invalid workflows are reported, never silently ignored.
 */
export class Workflows {
  private readonly byForm = new Map<string, CompiledWorkflow[]>();
  private readonly valid = new Map<string, CompiledWorkflow>();
  private readonly rejected = new Map<string, InvalidWorkflow>();
  /** How many valid workflows listen to each submission event; `events` holds those with a count above 0. */
  private readonly listeners = new Map<SubmissionEvent, number>();
  /** The submission events at least one valid workflow listens to. */
  readonly events = new Set<SubmissionEvent>();

  constructor(workflows: readonly CompiledWorkflow[], invalid: readonly InvalidWorkflow[]) {
    for (const wf of workflows) this.apply(wf.id, wf);
    for (const bad of invalid) this.apply(bad.id, bad);
  }

  /** The valid workflows, in the order they were added. */
  get workflows(): CompiledWorkflow[] {
    return [...this.valid.values()];
  }

  /** The workflows skipped because their definition is invalid, each with the reason. */
  get invalid(): InvalidWorkflow[] {
    return [...this.rejected.values()];
  }

  /**
   * Apply one workflow's new state, as a `workflows` change event in the stream carries it: the
   * compiled workflow when it is now active and valid, an InvalidWorkflow when its definition is
   * invalid, null when it is paused, a draft or deleted. Events after it are judged by the new state.
   * Costs O(workflows of the same form), so a drain replaying thousands of `workflows` changes
   * does not rebuild the whole registry for each.
   */
  apply(id: string, next: CompiledWorkflow | InvalidWorkflow | null): void {
    this.remove(id);
    if (next && 'reason' in next) {
      this.rejected.set(id, next);
    } else if (next) {
      this.valid.set(id, next);
      const k = formKey(next.organizationId, next.formId);
      const list = this.byForm.get(k);
      if (list) list.push(next);
      else this.byForm.set(k, [next]);
      for (const e of next.on) {
        this.listeners.set(e, (this.listeners.get(e) ?? 0) + 1);
        this.events.add(e);
      }
    }
  }

  private remove(id: string): void {
    this.rejected.delete(id);
    const old = this.valid.get(id);
    if (!old) return;
    this.valid.delete(id);
    const k = formKey(old.organizationId, old.formId);
    const rest = (this.byForm.get(k) ?? []).filter((w) => w.id !== id);
    if (rest.length) this.byForm.set(k, rest);
    else this.byForm.delete(k);
    for (const e of old.on) {
      const n = (this.listeners.get(e) ?? 1) - 1;
      this.listeners.set(e, n);
      if (n <= 0) this.events.delete(e);
    }
  }

  /**
   * Forget every workflow, as when the `workflows` collection is dropped or renamed, or the whole
   * database with it (`dropDatabase`): no delete event follows for the workflows it held.
   */
  clear(): void {
    this.valid.clear();
    this.rejected.clear();
    this.byForm.clear();
    this.listeners.clear();
    this.events.clear();
  }

  forForm(organizationId: string, formId: string): readonly CompiledWorkflow[] {
    return this.byForm.get(formKey(organizationId, formId)) ?? [];
  }

  /** Whether any workflow needs the document of update/replace events (fullDocument lookup). */
  needsUpdates(): boolean {
    return this.events.has('update') || this.events.has('replace');
  }
}

function formKey(org: string, form: string): string {
  return `${org}\u0000${form}`;
}

export function compileWorkflow(raw: unknown): CompiledWorkflow | InvalidWorkflow {
  const id = String((raw as { _id?: unknown })?._id ?? '?');
  const parsed = WorkflowSchema.safeParse(raw);
  if (!parsed.success) return { id, reason: z.prettifyError(parsed.error).replace(/\n/g, '; ') };
  const wf = parsed.data;
  for (const [i, step] of wf.steps.entries()) {
    const conflict = step.type === 'webhook' ? credentialConflict(step as { url?: unknown; headers?: unknown }) : null;
    if (conflict) return { id, reason: `steps.${i}.url: ${conflict}` };
  }
  let query: Query | null = null;
  if (wf.trigger?.filter && Object.keys(wf.trigger.filter).length > 0) {
    try {
      query = new Query(wf.trigger.filter);
      query.test({}); // unknown operators surface here, at load time, not per event
    } catch (error) {
      return { id, reason: `trigger.filter: ${(error as Error).message}` };
    }
  }
  return {
    id,
    name: wf.name,
    organizationId: wf.organizationId,
    formId: wf.formId,
    on: new Set(wf.trigger?.on ?? ['insert']),
    matches: query ? (doc) => query.test(doc) : () => true,
    steps: wf.steps as WorkflowStep[],
  };
}

/** Load the registry for one organization, or for every organization when `orgId` is null. */
export async function loadWorkflows(db: Db, orgId: string | null, log?: Logger): Promise<Workflows> {
  const filter: Filter<WorkflowDoc> = { status: 'active' };
  if (orgId !== null) filter.organizationId = orgId;
  const docs = await db.collection<WorkflowDoc>(COLLECTIONS.workflows).find(filter).toArray();
  const valid: CompiledWorkflow[] = [];
  const invalid: InvalidWorkflow[] = [];
  for (const doc of docs) {
    const compiled = compileWorkflow(doc);
    if ('reason' in compiled) {
      invalid.push(compiled);
      log?.warn('workflow skipped: invalid definition', { workflowId: compiled.id, reason: compiled.reason });
    } else {
      valid.push(compiled);
    }
  }
  return new Workflows(valid, invalid);
}
