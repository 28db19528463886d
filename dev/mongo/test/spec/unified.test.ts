/**
 * The unified-format tests of the MongoDB driver specifications (change streams, CRUD), run with the
 * project's driver against the backend of this test run. The JSON files are read at run time from
 * `../shared/reference/spec-tests/` (data of the public mongodb/specifications repository); when they
 * are absent, no spec tests are generated.
 *
 * Tests whose runOnRequirements exclude this server (version, topology) are skipped with the reason.
 * EXPECTED_UNSUPPORTED lists what the development emulator does not implement: those tests must
 * fail on the emulator (a listed test that starts passing fails the run, so the list stays honest)
 * and must pass on a real mongod.
 */
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, inject, it } from 'vitest';
import { loadSpecFiles, notApplicable, serverFacts, UnifiedTest } from './runner.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const SPEC_DIR = join(ROOT, '../shared/reference/spec-tests');
const SUITES = ['change-streams', 'crud'];

/** `file | description` → why the development emulator fails it. */
const EXPECTED_UNSUPPORTED: Record<string, string> = {
  'bulkWrite-collation.json | BulkWrite with delete operations and collation': 'non-simple collation',
  'bulkWrite-collation.json | BulkWrite with update operations and collation': 'non-simple collation',
  'findOneAndUpdate-collation.json | FindOneAndUpdate when many documents match with collation returning the document before modification':
    'non-simple collation',
  'updateOne-collation.json | UpdateOne when one document matches with collation': 'non-simple collation',
};

const uri = inject('mongoUri');
const onEmulator = inject('mongoBackend') === 'emulator' || (await isEmulator(uri));
const facts = await serverFacts(uri);
const suites = SUITES.map((s) => ({ suite: s, files: loadSpecFiles(join(SPEC_DIR, s)) })).filter((s) => s.files.length > 0);
if (suites.length === 0) console.log(`[spec] no unified test files under ${SPEC_DIR}: no spec tests generated`);

async function isEmulator(u: string): Promise<boolean> {
  const c = new MongoClient(u, { serverSelectionTimeoutMS: 10_000 });
  try {
    return (await c.db('admin').command({ buildInfo: 1 })).emulator === true;
  } catch {
    return false;
  } finally {
    await c.close();
  }
}

for (const { suite, files } of suites) {
  describe(`spec ${suite}`, () => {
    // Every client entity carries this appName, so the tests' fail points hit this file only.
    const appName = `spec_${suite}_${randomBytes(4).toString('hex')}`;
    let internal: MongoClient;
    beforeAll(async () => {
      internal = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000, appName: `${appName}_internal` });
      await internal.connect();
    });
    afterAll(async () => {
      await internal?.close();
    });
    for (const { name, json } of files) {
      describe(`${name}: ${json.description as string}`, () => {
        for (const test of json.tests as { description: string }[]) {
          const title = test.description;
          const why = notApplicable(json, test, facts);
          if (why !== undefined) {
            it.skip(`${title} — not applicable on ${facts.topology} ${facts.version}: ${why}`, () => {});
            continue;
          }
          const unsupported = onEmulator ? EXPECTED_UNSUPPORTED[`${name} | ${title}`] : undefined;
          const body = async () => new UnifiedTest(uri, appName, internal).run(json, test);
          if (unsupported) it.fails(`${title} — expected to fail on the emulator: ${unsupported}`, body);
          else it(title, body);
        }
      });
    }
  });
}

if (suites.length > 0) it('finds the expected-unsupported tests among the spec files', () => {
  const known = new Set(suites.flatMap(({ files }) => files.flatMap(({ name, json }) => (json.tests as { description: string }[]).map((t) => `${name} | ${t.description}`))));
  const stale = Object.keys(EXPECTED_UNSUPPORTED).filter((k) => !known.has(k));
  if (stale.length > 0) throw new Error(`EXPECTED_UNSUPPORTED names tests that do not exist: ${stale.join('; ')}`);
});
