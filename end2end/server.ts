// Starts the real `marain` binary on a throw-away copy of examples/site with a
// fresh SQLite file, and stops it after the suite. Tests find it through
// MARAIN_E2E_URL and MARAIN_E2E_SITE; MARAIN_E2E_TOKEN is an approver's API token
// for the test's own API calls, and the accounts are `admin` (approver) and
// `viewer`, both with the password MARAIN_E2E_PASSWORD.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const repo = path.resolve(__dirname, '..');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitForServer(url: string, token: string, child: { exitCode: number | null }, log: () => string) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`marain exited with ${child.exitCode}:\n${log()}`);
    try {
      const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`marain did not answer ${url} within 30 s:\n${log()}`);
}

export default async function globalSetup() {
  const binary = process.env.MARAIN_BIN ?? path.join(repo, 'target', 'debug', 'marain');
  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run the build first (make build)`);
  const assets = path.join(repo, 'target', 'site');
  if (!fs.existsSync(path.join(assets, 'pkg', 'marain.wasm'))) throw new Error(`${assets}/pkg is missing: run cargo leptos build`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'marain-e2e-'));
  const site = path.join(tmp, 'site');
  fs.cpSync(path.join(repo, 'examples', 'site'), site, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const database = `sqlite://${path.join(tmp, 'marain.db')}`;
  const password = 'e2e password, long enough';
  // The real command makes an API token for the tests' own calls.
  const token = execFileSync(binary, ['token', 'create', '--name', 'e2e', '--role', 'approver', '--database', database])
    .toString()
    .trim();
  let output = '';
  const child = spawn(
    binary,
    ['serve', '--site', site, '--database', database, '--addr', `127.0.0.1:${port}`, '--assets', assets],
    {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: 'info,sqlx=warn', MARAIN_ADMIN_PASSWORD: password },
    },
  );
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  await waitForServer(`${url}/api/v1/hot-reload/status`, token, child, () => output);
  // After the first start made `admin`: a viewer account, with the real command.
  execFileSync(binary, ['admin', 'add', '--username', 'viewer', '--role', 'viewer', '--database', database], {
    env: { ...process.env, MARAIN_PASSWORD: password },
  });

  process.env.MARAIN_E2E_URL = url;
  process.env.MARAIN_E2E_SITE = site;
  process.env.MARAIN_E2E_TOKEN = token;
  process.env.MARAIN_E2E_PASSWORD = password;
  return async () => {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    if (process.env.MARAIN_E2E_KEEP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
  };
}
