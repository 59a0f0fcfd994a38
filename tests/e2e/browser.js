// Launches Debian's Chromium headless through playwright-core, with WebGPU on (SwiftShader
// gives a real adapter without a GPU) and everything that would reach the network off.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

/** `webgpu: false` starts it without the flag that gives WebGPU an adapter, as in a browser
 * without WebGPU. */
export async function launchChromium({ webgpu = true } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'siamese-web-chromium-'));
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 900 },
    args: [
      ...(webgpu ? ['--enable-unsafe-webgpu'] : []), '--no-sandbox', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
      // A test pattern as the camera, allowed without asking.
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    ],
  });
}

/** Debian's Firefox ESR headless, driven over WebDriver BiDi (Playwright drives only its own
 * patched Firefox builds). It has no WebGPU here: it tries the CPU path. */
export function launchFirefox() {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    userDataDir: mkdtempSync(join(tmpdir(), 'siamese-web-firefox-')),
  });
}

/** Opens `url` in a new tab; `problems` collects the page's uncaught errors and any
 * Content-Security-Policy violation it logs. */
export async function openPage(browser, url) {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => {
    if (/Content.Security.Policy/i.test(message.text())) problems.push(message.text());
  });
  await page.goto(url);
  return { page, problems };
}

/** Waits until <body data-state> is done or error, and returns the state and result. */
export async function waitForRun(page, timeoutMs) {
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: timeoutMs, polling: 500 });
  return page.evaluate(() => ({
    state: document.body.dataset.state,
    error: document.body.dataset.error,
    result: document.getElementById('result-json').textContent,
    messages: document.getElementById('messages').innerText,
  }));
}
