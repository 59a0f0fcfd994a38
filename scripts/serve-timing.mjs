// Times the edit loop of scripts/serve.sh as a contributor meets it; one JSON line on stdout:
//   start_s           from starting scripts/serve.sh to the page answering
//   ready_s           from starting it to the page's worker ready in headless Chromium
//   edit_to_reload_s  from an edit of a Rust file (written again as it is: trunk sees the write,
//                     Cargo recompiles the crate as for a real edit) to the reloaded page ready
//
//   node scripts/serve-timing.mjs [--file src/loss.rs] [--port 8090] [-- serve.sh options, e.g. --release]
//
// On a fresh clone start_s is the first page from nothing (serve.sh installs the tools, the
// browser driver among the npm packages); run it again for the warm start. The server's output
// goes to stderr.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const split = args.includes('--') ? args.indexOf('--') : args.length;
const [ownOptions, serveOptions] = [args.slice(0, split), args.slice(split + 1)];
const option = (name, fallback) => {
  const at = ownOptions.indexOf(`--${name}`);
  return at >= 0 ? ownOptions[at + 1] : fallback;
};
const file = option('file', 'src/loss.rs');
const port = option('port', '8090');
const url = `http://127.0.0.1:${port}/index.html`;
const root = new URL('..', import.meta.url).pathname;
const seconds = (since) => Math.round((performance.now() - since) / 100) / 10;

const started = performance.now();
// Its own process group, so that trunk and the cargo it runs stop with it.
const server = spawn('scripts/serve.sh', [...serveOptions, '--port', port], {
  cwd: root, detached: true, stdio: ['ignore', process.stderr, process.stderr],
});
const stopServer = () => { try { process.kill(-server.pid, 'SIGTERM'); } catch { /* gone already */ } };
let browser;
try {
  // A fresh machine's first page takes ~25 minutes (README); a server that never answers fails.
  while (!(await fetch(url).then((response) => response.ok, () => false))) {
    if (server.exitCode !== null) throw new Error(`scripts/serve.sh exited with ${server.exitCode}`);
    if (seconds(started) > 45 * 60) throw new Error('scripts/serve.sh did not answer within 45 minutes');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const start = seconds(started);

  const { launchChromium } = await import('../tests/e2e/browser.js');
  browser = await launchChromium({ webgpu: false });
  const page = await browser.newPage();
  const ready = () => page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 300_000 });
  await page.goto(url);
  await ready();
  const readyAt = seconds(started);

  const edited = performance.now();
  const reloaded = page.waitForEvent('load', { timeout: 300_000 });
  const path = new URL(`../${file}`, import.meta.url);
  writeFileSync(path, readFileSync(path));
  await reloaded;
  await ready();
  console.log(JSON.stringify({ start_s: start, ready_s: readyAt, edit_to_reload_s: seconds(edited), file }));
} finally {
  await browser?.close();
  stopServer();
}
