import type { Db, MongoClient } from 'mongodb';

/** Where a scenario runs. Fail points are armed for `client`'s appName only. */
export interface FaultEnv {
  uri: string;
  /** Client with a unique `appName`; the product code under test runs on it. */
  client: MongoClient;
  db: Db;
  /** Seeded random source: the same seed picks the same crash points and fault kinds. */
  random: () => number;
  log: (line: string) => void;
}

export interface ScenarioOptions {
  trials: number;
  /** Submissions per trial. */
  events: number;
}

/** One row of the fault matrix. */
export interface ScenarioResult {
  scenario: string;
  /** DESIGN.md section 8 promises the scenario tries to break. */
  promises: string;
  trials: number;
  events: number;
  jobsExpected: number;
  jobsFound: number;
  lost: number;
  duplicated: number;
  /** Requests, writes or invocations that must be refused, and how many were. */
  rejectionsExpected: number;
  rejectedAsExpected: number;
  /** Other checks of the scenario that failed (each names what it saw); empty when all held. */
  failures: string[];
  notes: string[];
  ms: number;
}

export interface Scenario {
  name: string;
  promises: string;
  /** What the scenario does, one sentence (printed in the README's fault matrix). */
  description: string;
  /** Sizes for `npm run faults`. */
  full: ScenarioOptions;
  /** Sizes for the bounded subset inside `npm test`. */
  quick: ScenarioOptions;
  run(env: FaultEnv, opts: ScenarioOptions): Promise<ScenarioResult>;
}

/** A scenario result holds when nothing was lost or duplicated and every expected rejection happened. */
export function passed(r: ScenarioResult): boolean {
  return r.lost === 0 && r.duplicated === 0 && r.jobsFound === r.jobsExpected && r.rejectedAsExpected === r.rejectionsExpected && r.failures.length === 0;
}
