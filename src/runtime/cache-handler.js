'use strict';
// tower-next cache handler for a pool of workers: Next's own file-system cache (the build
// folder, `.next/server`, which every worker of the pool reads and writes), with three
// changes so that the workers behave as one server:
// - no in-memory copy (the bridge also sets cacheMaxMemorySize: 0): a worker answers from
//   the entry the last regeneration wrote, whichever worker made it;
// - revalidations (revalidateTag, and revalidatePath, which Next turns into tags) are
//   appended to a log file, as the tag entries Next recorded for them, and every worker
//   reads the log before it answers from the cache, so one worker's revalidation is seen
//   by every worker's next response;
// - entries are written to a temporary file and renamed into place, so a worker never
//   reads a page another worker is halfway through writing;
// - an entry's cache lifetime (revalidate/expire), which Next keeps in memory only, is
//   written next to it, so a worker that reads a page another worker rendered on demand
//   gives it the same lifetime (and Cache-Control) instead of treating it as stale.
// It is the seam where a shared store (Redis, …) can later take over (the README's "The worker pool" says what it shares and its known gaps).

const fs = require('fs');
const path = require('path');

const options = JSON.parse(process.env.TOWER_NEXT_OPTIONS || '{}');
const nextDir = path.dirname(require.resolve('next/package.json', { paths: [options.dir] }));
const cacheDir = path.join(nextDir, 'dist/server/lib/incremental-cache');
const FileSystemCache = require(path.join(cacheDir, 'file-system-cache')).default;
// The map Next's file-system cache checks entries' tags against, and the one where Next
// keeps entries' lifetimes (same module instances as Next's).
const { tagsManifest } = require(path.join(cacheDir, 'tags-manifest.external'));
const { SharedCacheControls } = require(path.join(cacheDir, 'shared-cache-controls.external'));
// Response entries (pages, route handlers) live under this key prefix (Next 15.5 and 16).
const RESPONSE_KEY = '/route-cache/';
const log = options.sharedCache.tagsLog;

// How far this worker has read the log, and an unfinished last line.
let offset = 0;
let partial = '';

// Applies the revalidations other workers logged since the last call. A stat per cache
// read; the file is read only when it grew.
function catchUp() {
  let size;
  try {
    size = fs.statSync(log).size;
  } catch {
    return;
  }
  if (size <= offset) return;
  const fd = fs.openSync(log, 'r');
  try {
    const buffer = Buffer.alloc(size - offset);
    const read = fs.readSync(fd, buffer, 0, buffer.length, offset);
    offset += read;
    const lines = (partial + buffer.toString('utf8', 0, read)).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      if (!line) continue;
      const { entries } = JSON.parse(line);
      for (const [tag, entry] of entries) applyTag(tag, entry);
    }
  } finally {
    fs.closeSync(fd);
  }
}

// A tag's entry as another worker's Next recorded it: a time in Next 15, an object of
// times (`stale`, `expired`) in Next 16. Times only move forward, whatever order two
// workers' lines reach the log in.
function applyTag(tag, entry) {
  const known = tagsManifest.get(tag);
  if (typeof entry === 'number') {
    tagsManifest.set(tag, Math.max(typeof known === 'number' ? known : 0, entry));
  } else if (entry && typeof entry === 'object') {
    const merged = { ...(known && typeof known === 'object' ? known : {}) };
    for (const [field, time] of Object.entries(entry)) {
      merged[field] = Math.max(merged[field] ?? 0, time);
    }
    tagsManifest.set(tag, merged);
  }
}

let temporaries = 0;
async function writeFileAtomically(file, data) {
  const temporary = `${file}.${process.pid}-${temporaries++}.tmp`;
  try {
    await fs.promises.writeFile(temporary, data);
    await fs.promises.rename(temporary, file);
  } catch (err) {
    await fs.promises.unlink(temporary).catch(() => {});
    throw err;
  }
}

class TowerNextPoolCache extends FileSystemCache {
  constructor(ctx) {
    const fsMethods = ctx.fs && { ...ctx.fs, writeFile: writeFileAtomically };
    super({ ...ctx, fs: fsMethods, maxMemoryCacheSize: 0 });
  }

  async get(...args) {
    catchUp();
    const data = await super.get(...args);
    const key = args[0];
    if (data && key.startsWith(RESPONSE_KEY) && !SharedCacheControls.cacheControls.has(key)) {
      try {
        const cacheControl = JSON.parse(await fs.promises.readFile(this.lifetimeFile(key), 'utf8'));
        SharedCacheControls.cacheControls.set(key, cacheControl);
      } catch {}
    }
    return data;
  }

  async set(...args) {
    const [key, data, ctx] = args;
    if (data && ctx && ctx.cacheControl && key.startsWith(RESPONSE_KEY)) {
      // Before the entry itself: whoever reads the new entry finds its lifetime.
      const file = this.lifetimeFile(key);
      try {
        await fs.promises.mkdir(path.dirname(file), { recursive: true });
        await writeFileAtomically(file, JSON.stringify(ctx.cacheControl));
      } catch {}
    }
    return super.set(...args);
  }

  lifetimeFile(key) {
    const file = path.join(this.serverDistDir, `${key}.tower-next-lifetime.json`);
    if (!file.startsWith(this.serverDistDir + path.sep)) throw new Error(`invalid cache key ${key}`);
    return file;
  }

  async revalidateTag(...args) {
    const tags = typeof args[0] === 'string' ? [args[0]] : args[0] || [];
    catchUp();
    const at = Date.now();
    const result = await super.revalidateTag(...args);
    if (tags.length > 0) {
      // What Next recorded for each tag, in this Next version's shape, logged synchronously
      // before this request's response goes out. Next 15's file-system cache keeps a tag's
      // first time (its 'use cache' handler, which runs too, moves it on), so a time is
      // logged as this revalidation's.
      const entries = tags.map((tag) => {
        const entry = tagsManifest.get(tag);
        return [tag, typeof entry === 'object' && entry !== null ? entry : at];
      });
      fs.appendFileSync(log, JSON.stringify({ entries }) + '\n');
      catchUp();
    }
    return result;
  }
}

module.exports = TowerNextPoolCache;
