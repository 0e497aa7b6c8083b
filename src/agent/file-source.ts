// A snapshot source that reads manifests from files and directories and reloads them when they
// change: fs.watch for prompt notice, plus polling of (path, mtime, size) as the safety net, since
// recursive watches miss events on some file systems and editors replace files by rename.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { loadPaths, type LoadResult } from '../model/load.js';
import type { Snapshot } from '../model/types.js';
import type { SnapshotSource, SourceSink } from './reconcile.js';

export interface FileSourceOptions {
  /** Polling period; 0 turns polling off. Default 1000 ms. */
  readonly pollMs?: number;
  /** Reload delay after a watch event, to let an editor finish writing. Default 50 ms. */
  readonly settleMs?: number;
  /** The loader (tests may substitute one). Default: loadPaths. */
  readonly load?: (paths: readonly string[]) => Promise<LoadResult>;
  /** Loader notes (skipped kinds and the like). */
  readonly onNote?: (note: string) => void;
}

const MANIFEST = /\.(ya?ml|json)$/i;

/** "path mtime size" of every manifest under the paths, sorted: changes when any file does. */
export async function fingerprint(paths: readonly string[]): Promise<string> {
  const out: string[] = [];
  const visit = async (p: string, top: boolean): Promise<void> => {
    let st;
    try {
      st = await stat(p);
    } catch {
      out.push(`${p} missing`);
      return;
    }
    if (st.isDirectory()) {
      let names: string[];
      try {
        names = await readdir(p);
      } catch {
        return;
      }
      for (const n of names.sort()) {
        if (!n.startsWith('.')) await visit(join(p, n), false);
      }
    } else if (top || MANIFEST.test(p)) {
      out.push(`${p} ${st.mtimeMs} ${st.size}`);
    }
  };
  for (const p of paths) await visit(p, true);
  return out.join('\n');
}

export class FileSource implements SnapshotSource {
  private sink: SourceSink | undefined;
  private watchers: FSWatcher[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private lastPrint = '';
  private lastContent = '';
  private loading: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    readonly paths: readonly string[],
    private readonly opts: FileSourceOptions = {},
  ) {}

  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    await this.reload();
    for (const p of this.paths) {
      if (p === '-') continue;
      try {
        const w = watch(p, { recursive: true }, () => this.poke());
        w.on('error', () => undefined);
        this.watchers.push(w);
      } catch {
        // Not watchable (e.g. missing): polling still notices when it appears.
      }
    }
    const every = this.opts.pollMs ?? 1000;
    if (every > 0) {
      this.pollTimer = setInterval(() => void this.reload(), every);
      this.pollTimer.unref();
    }
  }

  private poke(): void {
    if (this.stopped) return;
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => void this.reload(true), this.opts.settleMs ?? 50);
  }

  /** Reloads when the files changed (or always, when forced); one load at a time. */
  reload(force = false): Promise<void> {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.load(force).finally(() => {
      this.loading = undefined;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.reload(true);
      }
    });
    return this.loading;
  }

  private async load(force: boolean): Promise<void> {
    if (this.stopped || !this.sink) return;
    try {
      const print = await fingerprint(this.paths);
      if (!force && print === this.lastPrint) return;
      this.lastPrint = print;
      const res = await (this.opts.load ?? loadPaths)(this.paths);
      for (const n of res.notes) this.opts.onNote?.(n);
      if (res.problems.length > 0) {
        // Keep enforcing the last good snapshot: a typo must not open the cluster.
        this.sink.error(new InputError(res.problems));
        return;
      }
      const content = contentKey(res.snapshot);
      if (content === this.lastContent) return;
      this.lastContent = content;
      if (!this.stopped) this.sink.snapshot(res.snapshot);
    } catch (e) {
      this.sink.error(e);
    }
  }

  stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.settleTimer) clearTimeout(this.settleTimer);
    return this.loading ?? Promise.resolve();
  }
}

/** The snapshot without origins: moving a manifest within a file is not a change to enforce. */
function contentKey(s: Snapshot): string {
  return JSON.stringify(s, (k, v: unknown) => (k === 'origin' ? undefined : v));
}
