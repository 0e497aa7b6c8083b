import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { NflogEvents, NflogSource, NflogStats } from './nflog-reader.js';
import { FlowService } from './service.js';

class FakeReader extends EventEmitter<NflogEvents> implements NflogSource {
  readonly group = 1;
  closed = false;
  constructor(private readonly st: NflogStats) {
    super();
  }
  stats(): NflogStats {
    return this.st;
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

const stats = (n: number): NflogStats => ({
  received: n,
  decoded: n,
  undecodable: 0,
  lost: 1,
  lostRecords: 0,
  malformed: 0,
});

describe('FlowService', () => {
  it('opens a new reader when one fails, keeps the counters of the old, backs off while opening fails', async () => {
    const opened: FakeReader[] = [];
    let fail = 0;
    const errors: string[] = [];
    const svc = new FlowService({
      node: 'n',
      sinks: [],
      reopenMs: 5,
      onError: (e) => errors.push(e.message),
    });
    await svc.start(() => {
      if (opened.length > 0 && fail-- > 0) return Promise.reject(new Error('busy'));
      const r = new FakeReader(stats(10));
      opened.push(r);
      return Promise.resolve(r);
    });
    assert.deepEqual(svc.readerStats(), stats(10));
    fail = 2;
    opened[0]!.emit('error', new Error('overrun'));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(opened.length, 2, 'reopened after two failed attempts');
    assert.deepEqual(errors, ['overrun', 'busy', 'busy']);
    assert.equal(svc.readerStats()?.received, 20);
    assert.equal(svc.readerStats()?.lost, 2);
    await svc.close();
    assert.equal(opened[1]!.closed, true);
    // Closed: a reader that ends now is not replaced.
    opened[1]!.emit('close');
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(opened.length, 2);
  });
});
