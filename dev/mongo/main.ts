/**
 * CLI: `npm run mongo:emulator -- [--port 27017] [--host 127.0.0.1] [--oplog-max-entries N] [--max-change-streams N] [--quiet]`.
 * `--max-change-streams` defaults to the EMULATOR_MAX_CHANGE_STREAMS environment variable (no limit when unset).
 * The first stdout line is the connection string; SIGINT/SIGTERM stop the server.
 */
import { startEmulator } from './server.js';

interface Args {
  port: number;
  host: string;
  oplogMaxEntries?: number;
  maxChangeStreams?: number;
  quiet: boolean;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { port: 27017, host: '127.0.0.1', quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? arg.split('=', 2) : [arg, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--port':
        out.port = Number(value());
        break;
      case '--host':
        out.host = String(value());
        break;
      case '--oplog-max-entries':
        out.oplogMaxEntries = Number(value());
        break;
      case '--max-change-streams':
        out.maxChangeStreams = Number(value());
        break;
      case '--quiet':
        out.quiet = true;
        break;
      case '--help':
        process.stdout.write('usage: mongo:emulator [--port N] [--host H] [--oplog-max-entries N] [--max-change-streams N] [--quiet]\n');
        process.exit(0);
        break;
      default:
        process.stderr.write(`unknown argument: ${arg}\n`);
        process.exit(2);
    }
  }
  if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) {
    process.stderr.write(`invalid --port\n`);
    process.exit(2);
  }
  if (out.oplogMaxEntries !== undefined && (!Number.isInteger(out.oplogMaxEntries) || out.oplogMaxEntries < 1)) {
    process.stderr.write(`invalid --oplog-max-entries (a positive integer)\n`);
    process.exit(2);
  }
  if (out.maxChangeStreams !== undefined && (!Number.isInteger(out.maxChangeStreams) || out.maxChangeStreams < 1)) {
    process.stderr.write(`invalid --max-change-streams (a positive integer)\n`);
    process.exit(2);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const emulator = await startEmulator({
  host: args.host,
  port: args.port,
  ...(args.oplogMaxEntries !== undefined ? { oplogMaxEntries: args.oplogMaxEntries } : {}),
  ...(args.maxChangeStreams !== undefined ? { maxChangeStreams: args.maxChangeStreams } : {}),
  log: args.quiet ? () => {} : (line) => process.stderr.write(line + '\n'),
});
process.stdout.write(emulator.uri + '\n');

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`[mongo-emulator] ${signal}: stopping\n`);
  void emulator.close().then(() => process.exit(0));
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
