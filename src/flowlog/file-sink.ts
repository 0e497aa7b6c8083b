// Flow records to a file, one JSON line each, rotated by size: FILE is renamed FILE.1 (FILE.1 to
// FILE.2, ...) and a new FILE is started; the oldest beyond `keep` is removed. Writes are appended
// synchronously: records are small, and a crash must not lose what was logged before it.
import { closeSync, existsSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { FlowRecord } from './record.js';

export interface FileSinkOptions {
  readonly path: string;
  /** Rotate when the file would grow beyond this. Default 100 MiB. */
  readonly maxBytes?: number;
  /** Rotated files kept (FILE.1 ... FILE.keep). Default 3. */
  readonly keep?: number;
}

export class FileSink {
  private fd: number;
  private size: number;
  private readonly maxBytes: number;
  private readonly keep: number;

  constructor(readonly opts: FileSinkOptions) {
    this.maxBytes = opts.maxBytes ?? 100 * 1024 * 1024;
    this.keep = opts.keep ?? 3;
    this.fd = openSync(opts.path, 'a');
    this.size = fstatSync(this.fd).size;
  }

  write(r: FlowRecord): void {
    const line = Buffer.from(`${JSON.stringify(r)}\n`);
    if (this.size > 0 && this.size + line.length > this.maxBytes) this.rotate();
    writeSync(this.fd, line);
    this.size += line.length;
  }

  private rotate(): void {
    closeSync(this.fd);
    const p = this.opts.path;
    if (this.keep === 0) rmSync(p, { force: true });
    else {
      rmSync(`${p}.${this.keep}`, { force: true });
      for (let i = this.keep - 1; i >= 1; i--)
        if (existsSync(`${p}.${i}`)) renameSync(`${p}.${i}`, `${p}.${i + 1}`);
      renameSync(p, `${p}.1`);
    }
    this.fd = openSync(p, 'a');
    this.size = 0;
  }

  close(): void {
    closeSync(this.fd);
  }
}
