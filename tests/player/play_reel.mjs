// Plays one reel with hls.js in Debian's headless Chromium (driven by playwright-core) and
// prints what happened as one JSON line on stdout. Used by tests/integration/test_player.py.
//
//   node play_reel.mjs <master.m3u8 URL> [--throttle-after-s S --throttle-kbps K] [--timeout-s T]
//
// The page is a muted autoplaying <video> with hls.js; the buffer ahead is kept short so the
// player keeps fetching while it plays. With --throttle-after-s, Chromium's own network
// emulation (CDP Network.emulateNetworkConditions) caps the download rate S seconds after
// playback starts, which is what should make hls.js switch to a lower rung.
// Chromium's virtual time does not advance media, so everything runs in real time.
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const HLS_JS = require.resolve('hls.js/dist/hls.min.js');
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'throttle-after-s': { type: 'string' },
    'throttle-kbps': { type: 'string', default: '300' },
    'timeout-s': { type: 'string', default: '90' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const masterUrl = positionals[0];
if (!masterUrl) {
  console.error('usage: node play_reel.mjs <master.m3u8 URL> [options]');
  process.exit(2);
}
const timeoutMs = Number(values['timeout-s']) * 1000;

const PAGE = `<!doctype html><html><body>
<video id="video" muted autoplay playsinline></video>
</body></html>`;

// Runs in the page: wires hls.js and the media element to a log the harness reads.
function startPlayer(url) {
  const started = performance.now();
  const log = { events: [], levels: [], switches: [], fragments: [], fatal: null, ended: false };
  window.playerLog = log;
  const at = () => Math.round(performance.now() - started);
  window.markThrottled = () => log.events.push({ t: at(), type: 'throttled' });
  const video = document.getElementById('video');
  const hls = new Hls({ maxBufferLength: 4, maxMaxBufferLength: 6, backBufferLength: 0 });
  hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
    log.levels = data.levels.map((l) => ({ height: l.height, bitrate: l.bitrate }));
    log.events.push({ t: at(), type: 'MANIFEST_PARSED' });
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
    log.switches.push({ t: at(), level: data.level });
  });
  hls.on(Hls.Events.FRAG_LOADED, (_, data) => {
    log.fragments.push({ t: at(), level: data.frag.level, sn: data.frag.sn });
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    log.events.push({ t: at(), type: 'ERROR', fatal: data.fatal, details: data.details });
    if (data.fatal) log.fatal = data.details;
  });
  for (const type of ['playing', 'waiting', 'ended']) {
    video.addEventListener(type, () => {
      log.events.push({ t: at(), type });
      if (type === 'ended') log.ended = true;
    });
  }
  hls.loadSource(url);
  hls.attachMedia(video);
}

const browser = await chromium.launch({
  executablePath: values.chromium,
  args: CHROMIUM_FLAGS,
  headless: true,
});
let result;
try {
  const page = await browser.newPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await page.setContent(PAGE);
  await page.addScriptTag({ path: HLS_JS });
  await page.evaluate(startPlayer, masterUrl);

  const deadline = Date.now() + timeoutMs;
  const throttleAfterMs = values['throttle-after-s'] === undefined
    ? null : Number(values['throttle-after-s']) * 1000;
  let playingSince = null;
  let throttledAt = null;
  for (;;) {
    const log = await page.evaluate(() => window.playerLog);
    if (log.ended || log.fatal || Date.now() > deadline) break;
    const playing = log.events.find((e) => e.type === 'playing');
    if (playing && playingSince === null) playingSince = Date.now();
    if (throttleAfterMs !== null && throttledAt === null && playingSince !== null
        && Date.now() - playingSince >= throttleAfterMs) {
      const bytesPerS = (Number(values['throttle-kbps']) * 1000) / 8;
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: 20, downloadThroughput: bytesPerS, uploadThroughput: -1,
      });
      throttledAt = await page.evaluate(() => window.markThrottled());
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const log = await page.evaluate(() => window.playerLog);
  const quality = await page.evaluate(() => {
    const video = document.getElementById('video');
    const q = video.getVideoPlaybackQuality();
    return {
      totalVideoFrames: q.totalVideoFrames, droppedVideoFrames: q.droppedVideoFrames,
      currentTime: video.currentTime, duration: video.duration,
    };
  });
  const throttled = log.events.find((e) => e.type === 'throttled');
  result = { ...log, quality, throttledAtMs: throttled ? throttled.t : null,
             timedOut: !log.ended && !log.fatal };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
