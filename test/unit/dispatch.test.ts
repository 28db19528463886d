import { describe, expect, it } from 'vitest';
import { ObjectId } from 'mongodb';
import { compileWorkflow, Workflows, type CompiledWorkflow } from '../../lib/dispatch/workflows.js';
import { jobKey, MAX_SUBMISSION_BYTES, planJobs } from '../../lib/dispatch/plan.js';
import { type DispatchInput } from '../../lib/dispatch/events.js';

const NOW = new Date('2026-01-01T00:00:00Z');

function wf(overrides: Record<string, unknown> = {}) {
  return { _id: 'wf1', organizationId: 'acme', formId: 'f1', name: 'Notify', status: 'active', steps: [{ type: 'webhook', url: 'http://x' }], updatedAt: NOW, ...overrides };
}

function registryOf(...raw: unknown[]): Workflows {
  const compiled = raw.map(compileWorkflow);
  return new Workflows(compiled.filter((c): c is CompiledWorkflow => !('reason' in c)), compiled.filter((c) => 'reason' in c) as never);
}

function insert(doc: Record<string, unknown> | null, eventId = 'tok1'): DispatchInput {
  return { operationType: 'insert', document: doc, eventId, clusterTime: null, wallTime: null };
}

const opts = { source: 'org:acme', path: 'change_stream' as const, now: NOW, orgId: 'acme' };

describe('compileWorkflow', () => {
  it.each([
    ['no steps', wf({ steps: [] }), /steps/],
    ['missing formId', wf({ formId: undefined }), /formId/],
    ['not active', wf({ status: 'paused' }), /status/],
    ['unknown filter operator', wf({ trigger: { filter: { 'data.x': { $bogus: 1 } } } }), /trigger.filter/],
    ['unknown trigger event', wf({ trigger: { on: ['delete'] } }), /on/],
  ])('refuses a workflow with %s, naming the problem', (_n, raw, reason) => {
    const compiled = compileWorkflow(raw);
    expect('reason' in compiled && compiled.reason).toMatch(reason);
  });
});

describe('planJobs', () => {
  it('when an insert matches a workflow → one job with the explicit-path key', () => {
    const id = new ObjectId();
    const plan = planJobs([insert({ _id: id, organizationId: 'acme', formId: 'f1', data: {} })], registryOf(wf()), opts);
    expect(plan.jobs).toHaveLength(1);
    expect(plan.jobs[0]!.key).toBe(`wf1:${id.toHexString()}:insert`);
    expect(plan.jobs[0]!.key).toBe(jobKey('wf1', id.toHexString(), 'insert'));
    expect(plan.jobs[0]).toMatchObject({ status: 'queued', attempts: 0, createdBy: 'change_stream', seenBy: ['change_stream'], organizationId: 'acme' });
  });

  it('when the form has no workflow → no job, no poison', () => {
    const plan = planJobs([insert({ _id: 1, organizationId: 'acme', formId: 'other', data: {} })], registryOf(wf()), opts);
    expect(plan).toMatchObject({ jobs: [], poison: [] });
  });

  it('when the filter does / does not match', () => {
    const reg = registryOf(wf({ trigger: { filter: { 'data.amount': { $gte: 100 } } } }));
    expect(planJobs([insert({ _id: 1, organizationId: 'acme', formId: 'f1', data: { amount: 150 } })], reg, opts).jobs).toHaveLength(1);
    expect(planJobs([insert({ _id: 2, organizationId: 'acme', formId: 'f1', data: { amount: 5 } })], reg, opts).jobs).toHaveLength(0);
  });

  it('when a workflow triggers on update only → inserts are ignored, updates keyed by event', () => {
    const reg = registryOf(wf({ trigger: { on: ['update'] } }));
    const doc = { _id: 'sub1', organizationId: 'acme', formId: 'f1', data: {} };
    expect(planJobs([insert(doc)], reg, opts).jobs).toHaveLength(0);
    const a = planJobs([{ ...insert(doc, 'evA'), operationType: 'update' }], reg, opts).jobs;
    const b = planJobs([{ ...insert(doc, 'evB'), operationType: 'update' }], reg, opts).jobs;
    expect(a[0]!.key).toBe('wf1:sub1:update:evA');
    expect(a[0]!.key).not.toBe(b[0]!.key);
  });

  it('when two workflows share a form → one job each', () => {
    const plan = planJobs([insert({ _id: 1, organizationId: 'acme', formId: 'f1', data: {} })], registryOf(wf(), wf({ _id: 'wf2' })), opts);
    expect(plan.jobs.map((j) => j.workflowId).sort()).toEqual(['wf1', 'wf2']);
  });

  it.each([
    ['no document', null, 'document_unavailable'],
    ['no formId', { _id: 1, organizationId: 'acme', data: {} }, 'malformed_submission'],
    ['empty formId', { _id: 1, organizationId: 'acme', formId: '', data: {} }, 'malformed_submission'],
  ])('when the event has %s → poison with a reason, other events still dispatched', (_n, doc, code) => {
    const good = { _id: 9, organizationId: 'acme', formId: 'f1', data: {} };
    const plan = planJobs([insert(doc as never, 'bad'), insert(good, 'good')], registryOf(wf()), opts);
    expect(plan.jobs).toHaveLength(1);
    expect(plan.poison).toHaveLength(1);
    expect(plan.poison[0]!.code).toBe(code);
    expect(plan.poison[0]!.reason.length).toBeGreaterThan(5);
  });

  it('when a submission is too large to snapshot → poison "oversized"', () => {
    const big = { _id: 1, organizationId: 'acme', formId: 'f1', data: { blob: 'x'.repeat(MAX_SUBMISSION_BYTES + 10) } };
    const plan = planJobs([insert(big)], registryOf(wf()), opts);
    expect(plan.jobs).toHaveLength(0);
    expect(plan.poison[0]!.code).toBe('oversized');
  });

  it('shared collections take the organization from each document, and skip explicit-mode orgs', () => {
    const reg = registryOf(wf(), wf({ _id: 'wf9', organizationId: 'beta' }));
    const docs = [insert({ _id: 1, organizationId: 'acme', formId: 'f1', data: {} }, 't1'), insert({ _id: 2, organizationId: 'beta', formId: 'f1', data: {} }, 't2')];
    const plan = planJobs(docs, reg, { ...opts, orgId: null, source: 'shared:global_submissions', orgAllowed: (o) => o === 'acme' });
    expect(plan.jobs.map((j) => j.organizationId)).toEqual(['acme']);
    expect(plan.skipped).toBe(1);
  });

  it('a shared-collection document without organizationId is poison', () => {
    const plan = planJobs([insert({ _id: 1, formId: 'f1', data: {} })], registryOf(wf()), { ...opts, orgId: null });
    expect(plan.poison[0]!.reason).toContain('organizationId');
  });
});
