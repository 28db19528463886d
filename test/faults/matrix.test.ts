/**
 * The fault matrix, bounded: every scenario of `npm run faults` with one or two trials and small
 * event counts. Each row must lose nothing (promise 1), duplicate nothing (promise 2), and refuse
 * everything it must refuse (promise 6 for the routes, fencing and leases for the rest); each
 * scenario's own checks (token order, recorded gaps, dead letters, nothing written) must hold.
 * The full matrix with many random crash points is `npm run faults`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCENARIOS, seededRandom, type FaultEnv } from '../../scripts/faults/index.js';
import { clearFailPoints, failCommand, useTestDb } from '../support/mongo.js';
import { useFailPointPort } from '../../scripts/faults/failpoint.js';

const mongo = useTestDb('faults_matrix');
// Other test files use the server's one failCommand fail point at the same time: take it through their lock.
beforeAll(() => useFailPointPort({ arm: failCommand, clear: clearFailPoints }));
afterAll(() => useFailPointPort(null));
/** A fixed seed: the crash points and fault positions of this subset are the same on every run. */
const SEED = 20_250_601;

function env(): FaultEnv {
  return { uri: mongo.uri, client: mongo.client(), db: mongo.db(), random: seededRandom(SEED), log: () => {} };
}

describe('fault matrix, bounded', () => {
  for (const scenario of SCENARIOS) {
    it(`${scenario.name} (promises ${scenario.promises}): nothing lost, nothing duplicated, every rejection as expected`, async () => {
      const r = await scenario.run(env(), scenario.quick);
      expect(r.failures).toEqual([]);
      expect({ trials: r.trials, lost: r.lost, duplicated: r.duplicated, jobsFound: r.jobsFound, rejected: r.rejectedAsExpected }).toEqual({
        trials: scenario.quick.trials,
        lost: 0,
        duplicated: 0,
        jobsFound: r.jobsExpected,
        rejected: r.rejectionsExpected,
      });
      // A row that counted nothing would prove nothing.
      expect(r.jobsExpected + r.rejectionsExpected).toBeGreaterThan(0);
    });
  }
});
