/**
 * The MongoDB backend and machine description every bench and fault figure is reported with.
 * The backend is chosen like the tests choose it (MONGODB_URI → real mongod → the emulator) but
 * hosted in a child process (backend-host.ts); with MONGODB_URI set nothing is started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem, type as osType, release } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MongoClient } from 'mongodb';

export interface BackendInfo {
  kind: 'uri' | 'mongod' | 'emulator';
  uri: string;
  version: string;
  describe: string;
}

export interface RunningBackend extends BackendInfo {
  /**
   * CPU time (ms, user + system) the backend process has used so far, when it is a local process
   * this bench started and can observe (the emulator on Linux); otherwise null. Used to tell
   * whether the backend, not the code under test, is the bottleneck of a figure.
   */
  cpuMs(): number | null;
  stop(): Promise<void>;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  os: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${osType()} ${release()}`,
  };
}

/** Backend + version line, e.g. `emulator 7.0.14 (project emulator, dev/mongo)`. */
export function describeBackend(b: Omit<BackendInfo, 'uri'>): string {
  return `${b.kind} ${b.version} (${b.describe})`;
}

export function describeMachine(m: MachineInfo): string {
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}`;
}

const HOST = fileURLToPath(new URL('./backend-host.ts', import.meta.url));

/** Start (or connect to) the backend. Diagnostic lines of the host go to `log`. */
export async function startBackend(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<RunningBackend> {
  const fromEnv = process.env.MONGODB_URI;
  if (fromEnv) {
    const client = new MongoClient(fromEnv, { serverSelectionTimeoutMS: 10_000 });
    try {
      const info = await client.db('admin').command({ buildInfo: 1 });
      return {
        kind: 'uri',
        uri: fromEnv,
        version: String(info.version),
        describe: info.emulator === true ? 'MONGODB_URI, development emulator' : 'MONGODB_URI',
        cpuMs: () => null,
        stop: async () => {},
      };
    } finally {
      await client.close();
    }
  }
  // BENCH_CPU_PROF=<dir>: the backend writes a V8 CPU profile there when it stops (where its time goes).
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', HOST], { stdio: ['pipe', 'pipe', 'pipe'] });
  const diagnostics: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    // The backend's own choice line is worth showing; per-connection chatter is kept for errors only.
    if (line.startsWith('[mongo]')) log(line);
    else if (diagnostics.push(line) > 200) diagnostics.shift();
  });
  const info = await new Promise<BackendInfo>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`backend host exited (${code}) before it was ready:\n${diagnostics.join('\n')}`));
    child.once('exit', onExit);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      child.off('exit', onExit);
      try {
        resolve(JSON.parse(line) as BackendInfo);
      } catch (error) {
        reject(error);
      }
    });
  });
  // A real mongod runs as a grandchild (mongodb-memory-server): its CPU is not observed here.
  const cpuMs = () => (info.kind === 'emulator' && child.pid ? processCpuMs(child.pid) : null);
  return { ...info, cpuMs, stop: () => stopChild(child) };
}

/** utime + stime of a process from /proc (Linux), in ms; null where /proc is not available. */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS_PER_SECOND : null;
  } catch {
    return null;
  }
}

/** USER_HZ: 100 on every mainstream Linux build. */
const CLOCK_TICKS_PER_SECOND = 100;

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.stdin?.end();
    child.kill('SIGTERM');
  });
}
