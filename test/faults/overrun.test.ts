/**
 * Promise 4 (every invocation ends before its deadline) under a getMore outage: the stream opens,
 * then every getMore loses its connection while the resuming aggregate keeps succeeding.
 *
 * The driver's `ChangeStream.tryNext()` resumes indefinitely as long as each resume succeeds
 * ("Change streams must resume indefinitely while each resume event succeeds",
 * mongodb/src/change_stream.ts), so a single read can hang; the drain bounds each read by its
 * deadline (lib/drain/session.ts `read`). The same happens on a real mongod: it is driver
 * behaviour, injected with the real failCommand fail point.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GETMORE_OUTAGE, networkScenarioWith } from '../../scripts/faults/scenarios/network.js';
import { seededRandom, type ScenarioResult } from '../../scripts/faults/index.js';
import { clearFailPoints, failCommand, useTestDb } from '../support/mongo.js';
import { useFailPointPort } from '../../scripts/faults/failpoint.js';

const mongo = useTestDb('faults_overrun');
// Other test files use the server's one failCommand fail point at the same time: take it through their lock.
beforeAll(() => useFailPointPort({ arm: failCommand, clear: clearFailPoints }));
afterAll(() => useFailPointPort(null));

describe('a getMore outage during a drain', () => {
  let result: ScenarioResult | undefined;

  it('promises 1+2: nothing is lost or duplicated, and the run does nothing else wrong', async () => {
    const scenario = networkScenarioWith([GETMORE_OUTAGE]);
    result = await scenario.run({ uri: mongo.uri, client: mongo.client(), db: mongo.db(), random: seededRandom(7), log: () => {} }, { trials: 1, events: 40 });
    expect({ lost: result.lost, duplicated: result.duplicated, jobsFound: result.jobsFound }).toEqual({ lost: 0, duplicated: 0, jobsFound: 40 });
    expect(result.failures.filter((f) => !f.includes('did not end within window'))).toEqual([]);
  });

  it('promise 4: the run ends within its window + margin although tryNext resumes indefinitely', () => {
    expect(result, 'the first test did not produce a result').toBeDefined();
    expect(result!.failures).toEqual([]);
  });
});
