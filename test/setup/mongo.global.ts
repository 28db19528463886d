/**
 * Vitest global setup: starts one MongoDB backend for the whole run (MONGODB_URI → real mongod via
 * mongodb-memory-server → the project's emulator; see dev/local/backend.ts), prints which one, provides its
 * URI to the test files, and stops it at the end.
 */
import type { TestProject } from 'vitest/node';
import { startMongoBackend, type MongoBackend } from '../../dev/local/backend.js';

declare module 'vitest' {
  interface ProvidedContext {
    /** Connection string of the backend chosen for this run. */
    mongoUri: string;
    /** `uri` | `mongod` | `emulator`. */
    mongoBackend: string;
  }
}

let backend: MongoBackend | undefined;

export async function setup(project: TestProject): Promise<void> {
  backend = await startMongoBackend({ log: (line) => console.log(line) });
  project.provide('mongoUri', backend.uri);
  project.provide('mongoBackend', backend.kind);
}

export async function teardown(): Promise<void> {
  await backend?.stop();
  backend = undefined;
}
