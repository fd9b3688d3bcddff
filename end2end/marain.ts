// A fresh `marain serve` for each test: the real binary on its own copy of
// examples/site with its own database (a SQLite file, or a new database on the
// PostgreSQL server `MARAIN_E2E_POSTGRES` names, per the project), bound to port 0 (the server reports
// the port it got, so no port is probed and released), with an approver's API
// token for the test's own calls and the accounts `admin` (approver) and
// `viewer`, both with the password `password`. No test depends on another.
import { test as base, expect } from '@playwright/test';
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const repo = path.resolve(__dirname, '..');

export interface Marain {
  url: string;
  site: string;
  /// The server's database URL (`sqlite://…` or `postgres://…`).
  database: string;
  token: string;
  password: string;
  /// `{ Authorization: Bearer … }` for the test's own API calls.
  auth: Record<string, string>;
  /// Absolute path of a site file.
  file(rel: string): string;
}

export type Backend = 'sqlite' | 'postgres';

/// A database of its own for one test: a SQLite file in `tmp`, or a database
/// named after `tmp` on the PostgreSQL server (created by marain on first use).
function databaseUrl(backend: Backend, tmp: string): string {
  if (backend === 'sqlite') return `sqlite://${path.join(tmp, 'marain.db')}`;
  const server = process.env.MARAIN_E2E_POSTGRES;
  if (!server) throw new Error('MARAIN_E2E_POSTGRES is not set: run `make test-e2e`, which starts a throw-away PostgreSQL');
  const url = new URL(server);
  url.pathname = '/' + path.basename(tmp).replace(/[^a-zA-Z0-9]/g, '_').toLowerCase();
  return url.toString();
}

async function start(backend: Backend): Promise<{ marain: Marain; stop: () => Promise<void> }> {
  const binary = process.env.MARAIN_BIN ?? path.join(repo, 'target', 'debug', 'marain');
  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run the build first (make build)`);
  const assets = path.join(repo, 'target', 'site');
  if (!fs.existsSync(path.join(assets, 'hash.txt'))) throw new Error(`${assets}/hash.txt is missing: run cargo xtask build`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'marain-e2e-'));
  const site = path.join(tmp, 'site');
  fs.cpSync(path.join(repo, 'examples', 'site'), site, { recursive: true });
  const database = databaseUrl(backend, tmp);
  const password = 'e2e password, long enough';
  // The real commands make the API token and, after the first start, the viewer.
  const token = execFileSync(binary, ['token', 'create', '--name', 'e2e', '--role', 'approver', '--database', database])
    .toString()
    .trim();
  const child: ChildProcess = spawn(
    binary,
    [
      'serve',
      ...['--site', site, '--database', database, '--addr', '127.0.0.1:0', '--assets', assets],
      ...['--secure-log', path.join(tmp, 'secure.log')],
    ],
    {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: 'info,sqlx=warn', MARAIN_ADMIN_PASSWORD: password },
    },
  );
  let output = '';
  child.stderr!.on('data', (d) => (output += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`marain did not start within 30 s:\n${output}`)), 30_000);
    child.stdout!.on('data', (d) => {
      output += d;
      const found = /dashboard on (http:\/\/127\.0\.0\.1:\d+)\//.exec(output);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`marain exited with ${code}:\n${output}`)));
  });
  execFileSync(binary, ['admin', 'add', '--username', 'viewer', '--role', 'viewer', '--database', database], {
    env: { ...process.env, MARAIN_PASSWORD: password },
  });
  const marain: Marain = {
    url,
    site,
    database,
    token,
    password,
    auth: { Authorization: `Bearer ${token}` },
    file: (rel) => path.join(site, rel),
  };
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    if (process.env.MARAIN_E2E_KEEP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
  };
  return { marain, stop };
}

/// Runs SQL on the test server's database as another program would (the
/// legacy Marain process a migration test plays): Python's sqlite3 on a SQLite
/// file, psql on PostgreSQL.
export function sql(marain: Marain, statements: string[]) {
  const script = statements.map((s) => `${s};`).join('\n');
  if (marain.database.startsWith('sqlite://')) {
    const file = marain.database.slice('sqlite://'.length);
    const program = 'import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=10)\nc.executescript(sys.stdin.read())\nc.commit()';
    execFileSync('python3', ['-c', program, file], { input: script });
  } else {
    execFileSync('psql', ['-v', 'ON_ERROR_STOP=1', '-q', '-d', marain.database], { input: script });
  }
}

export const test = base.extend<{ marain: Marain; backend: Backend }>({
  backend: ['sqlite', { option: true }],
  marain: async ({ backend }, use) => {
    const { marain, stop } = await start(backend);
    try {
      await use(marain);
    } finally {
      await stop();
    }
  },
});

export { expect };
