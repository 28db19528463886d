/** The fault matrix: every scenario, in the order the table shows them. */
import { concurrentScenario } from './scenarios/concurrent.js';
import { crashScenario } from './scenarios/crash.js';
import { duplicatesScenario } from './scenarios/duplicates.js';
import { historyScenario } from './scenarios/history.js';
import { invalidateScenario } from './scenarios/invalidate.js';
import { malformedScenario } from './scenarios/malformed.js';
import { networkScenario } from './scenarios/network.js';
import { PARTITION_SCENARIOS } from './scenarios/partitions.js';
import { poisonScenario } from './scenarios/poison.js';
import { processorScenario } from './scenarios/processor.js';
import { largeEventsScenario, refusedResumeScenario, writerSkewScenario } from './scenarios/resume-points.js';
import { relayScenario } from './scenarios/relay.js';
import { signaturesScenario } from './scenarios/signatures.js';
import type { Scenario } from './types.js';

export const SCENARIOS: readonly Scenario[] = [
  crashScenario,
  concurrentScenario,
  relayScenario,
  duplicatesScenario,
  networkScenario,
  historyScenario,
  invalidateScenario,
  refusedResumeScenario,
  writerSkewScenario,
  largeEventsScenario,
  poisonScenario,
  signaturesScenario,
  malformedScenario,
  processorScenario,
  ...PARTITION_SCENARIOS,
];

export { passed, type FaultEnv, type Scenario, type ScenarioOptions, type ScenarioResult } from './types.js';
export { seededRandom } from './support.js';
