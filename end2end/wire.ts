// What a visit costs over the network, read from Chromium's own accounting
// (the DevTools protocol's `Network` domain): every response with the bytes it
// took on the wire (`encodedDataLength`: headers and the compressed body), or
// none when the browser's cache answered.
import type { CDPSession, Page } from '@playwright/test';

export interface Fetched {
  url: string;
  type: string;
  status: number;
  encoding: string;
  /// Bytes on the wire; 0 when the cache answered.
  wire: number;
  fromCache: boolean;
}

/// Records the page's responses until `stop()` is called.
export async function recordWire(page: Page): Promise<{ cdp: CDPSession; stop: () => Fetched[] }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  // The cache stays on: a second visit must be answered by it.
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: false });
  const seen = new Map<string, Fetched>();
  cdp.on('Network.responseReceived', (e: any) => {
    seen.set(e.requestId, {
      url: e.response.url,
      type: e.type,
      status: e.response.status,
      encoding: (e.response.headers['content-encoding'] ?? e.response.headers['Content-Encoding'] ?? '') as string,
      wire: 0,
      fromCache: Boolean(e.response.fromDiskCache || e.response.fromMemoryCache || e.response.fromPrefetchCache),
    });
  });
  cdp.on('Network.requestServedFromCache', (e: any) => {
    const f = seen.get(e.requestId);
    if (f) f.fromCache = true;
  });
  cdp.on('Network.loadingFinished', (e: any) => {
    const f = seen.get(e.requestId);
    if (!f) return;
    // The memory cache answers without a `requestServedFromCache`: nothing
    // crossed the wire, not even headers.
    if (e.encodedDataLength === 0 && f.status === 200) f.fromCache = true;
    f.wire = f.fromCache ? 0 : e.encodedDataLength;
  });
  return { cdp, stop: () => [...seen.values()] };
}

/// A 10 Mbit/s link with 40 ms of latency each way's share, as DevTools sets it.
export async function throttle(cdp: CDPSession) {
  const bytesPerSecond = (10 * 1000 * 1000) / 8;
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 40,
    downloadThroughput: bytesPerSecond,
    uploadThroughput: bytesPerSecond,
  });
}

/// The files a page is built from (not its data: server functions, the event stream).
export function isAsset(f: Fetched): boolean {
  return /\/pkg\//.test(new URL(f.url).pathname);
}

export function total(fetched: Fetched[]): number {
  return fetched.reduce((n, f) => n + f.wire, 0);
}
