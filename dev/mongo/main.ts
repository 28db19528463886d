/**
 * CLI: `npm run mongo:emulator -- [--port 27017] [--host 127.0.0.1] [--oplog-max-entries N] [--quiet]`.
 * The first stdout line is the connection string; SIGINT/SIGTERM stop the server.
 */
import { startEmulator } from './server.js';

function parseArgs(argv: string[]): { port: number; host: string; oplogMaxEntries?: number; quiet: boolean } {
  const out: { port: number; host: string; oplogMaxEntries?: number; quiet: boolean } = { port: 27017, host: '127.0.0.1', quiet: false };
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
      case '--quiet':
        out.quiet = true;
        break;
      case '--help':
        process.stdout.write('usage: mongo:emulator [--port N] [--host H] [--oplog-max-entries N] [--quiet]\n');
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
  return out;
}

const args = parseArgs(process.argv.slice(2));
const emulator = await startEmulator({
  host: args.host,
  port: args.port,
  ...(args.oplogMaxEntries !== undefined ? { oplogMaxEntries: args.oplogMaxEntries } : {}),
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
