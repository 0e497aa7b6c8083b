import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NftSession, NftSessionError, readable, toLine } from './nft-session.js';
import { localRunner } from './runner.js';

describe('toLine', () => {
  const cases: { name: string; script: string; want: string | RegExp }[] = [
    {
      name: 'joins flat commands',
      script: 'flush chain inet t c\nadd rule inet t c accept\n',
      want: 'flush chain inet t c; add rule inet t c accept',
    },
    {
      name: 'skips blank lines',
      script: '\n  add element inet t s { 1.2.3.4 }\n\n',
      want: 'add element inet t s { 1.2.3.4 }',
    },
    {
      name: 'keeps one-line blocks and quoted braces',
      script: 'add chain inet t c { comment "a { b"; }\n',
      want: 'add chain inet t c { comment "a { b"; }',
    },
    { name: 'empty', script: '', want: '' },
    {
      name: 'refuses a comment line (it would hide the rest of the line)',
      script: '# x\nadd table inet t\n',
      want: /comment line/,
    },
    {
      name: 'refuses a multi-line block',
      script: 'table inet t {\n\tchain c {\n\t}\n}\n',
      want: /not a one-line command/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      if (typeof c.want === 'string') assert.equal(toLine(c.script), c.want);
      else assert.throws(() => toLine(c.script), c.want);
    });
  }
});

describe('readable', () => {
  it('keeps the message and the command the carets point into', () => {
    const echo = 'add element inet t s { 1.2.3.4 }; add rule inet t nochain counter; add table inet u';
    const at = echo.indexOf('nochain');
    const text = `Error: Could not process rule: No such file or directory\n${echo}\n${' '.repeat(at)}^^^^^^^\n`;
    assert.equal(
      readable(text),
      'Error: Could not process rule: No such file or directory: add rule inet t nochain counter\n',
    );
  });
  it('passes other lines through', () => {
    assert.equal(readable('Error: something\nmore\n'), 'Error: something\nmore\n');
  });
});

// A stand-in for `nft -i`: answers like nft (errors echo the line with carets under it; a
// success prints nothing). A line containing FAIL fails; EXIT exits; after HANG nothing is answered.
const FAKE = `
import { createInterface } from 'node:readline';
if (process.argv[2] === 'nocli') { console.log('Error: Interactive CLI not supported in this build'); process.exit(1); }
let hung = false;
createInterface({ input: process.stdin }).on('line', (l) => {
  if (l.includes('EXIT')) process.exit(3);
  if (l.includes('HANG')) hung = true;
  if (hung) return;
  if (/^moat_sync_\\d+$/.test(l)) {
    process.stdout.write('Error: syntax error, unexpected newline, expecting string\\n' + l + '\\n' + ' '.repeat(l.length) + '^\\n');
  } else if (l.includes('FAIL')) {
    const at = l.indexOf('FAIL');
    process.stderr.write('Error: Could not process rule: No such file or directory\\n' + l + '\\n' + ' '.repeat(at) + '^^^^\\n');
  }
});
`;

describe('NftSession (a stand-in nft)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-nft-session-'));
  const script = join(dir, 'fake-nft.mjs');
  writeFileSync(script, FAKE);
  after(() => rmSync(dir, { recursive: true, force: true }));
  const session = (o: { timeoutMs?: number; maxBytes?: number; arg?: string } = {}) =>
    new NftSession({
      nft: [process.execPath, script, ...(o.arg !== undefined ? [o.arg] : [])],
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}),
    });

  it('answers success and failure per transaction, in order, in one process', async () => {
    const s = session();
    try {
      const [a, b, c] = await Promise.all([
        s.apply('add table inet t\nadd chain inet t c\n'),
        s.apply('add rule inet t FAIL counter\n'),
        s.apply('add rule inet t c accept\n'),
      ]);
      assert.deepEqual(a, { stdout: '', stderr: '', code: 0 });
      assert.equal(b.code, 1);
      assert.equal(
        b.stderr,
        'Error: Could not process rule: No such file or directory: add rule inet t FAIL counter\n',
      );
      assert.equal(c.code, 0);
      assert.equal(s.starts, 1);
    } finally {
      await s.close();
    }
  });

  it('a process that died fails its transaction; the next one starts a new process', async () => {
    const s = session();
    try {
      assert.equal((await s.apply('add table inet t\n')).code, 0);
      await assert.rejects(
        s.apply('EXIT\n'),
        (e: Error) => e instanceof NftSessionError && /exited/.test(e.message),
      );
      assert.equal((await s.apply('add table inet t\n')).code, 0);
      assert.equal(s.starts, 2);
    } finally {
      await s.close();
    }
  });

  it('a transaction without an answer times out, and the process is replaced', async () => {
    const s = session({ timeoutMs: 300 });
    try {
      await assert.rejects(s.apply('HANG\n'), /no answer in 300 ms/);
      assert.equal((await s.apply('add table inet t\n')).code, 0);
      assert.equal(s.starts, 2);
    } finally {
      await s.close();
    }
  });

  it('replaces the process after maxBytes of input (nft -i keeps every line)', async () => {
    const s = session({ maxBytes: 100 });
    try {
      for (let i = 0; i < 4; i++)
        assert.equal((await s.apply(`add element inet t s { 10.0.0.${i} }\n`.repeat(2))).code, 0);
      assert.ok(s.starts >= 2, `starts ${s.starts}`);
    } finally {
      await s.close();
    }
  });

  it('an nft without its interactive CLI is not tried again', async () => {
    const s = session({ arg: 'nocli' });
    try {
      await assert.rejects(s.apply('add table inet t\n'), /Interactive CLI not supported/);
      await assert.rejects(s.apply('add table inet t\n'), /Interactive CLI not supported/);
      assert.equal(s.starts, 1);
    } finally {
      await s.close();
    }
  });

  it('warm() starts the process before the first transaction', async () => {
    const s = session();
    try {
      s.warm();
      assert.equal(s.starts, 0); // queued behind nothing, started on the next tick
      assert.equal((await s.apply('add table inet t\n')).code, 0);
      assert.equal(s.starts, 1);
    } finally {
      await s.close();
    }
  });

  it('refuses work after close()', async () => {
    const s = session();
    await s.close();
    await assert.rejects(s.apply('add table inet t\n'), /closed/);
  });
});

async function canUseNft(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  return (await localRunner().run(['nft', '--version'])).code === 0;
}

describe('NftSession (real nft -i in a throwaway netns)', async () => {
  const ok = await canUseNft();
  it(
    'commits each line as one transaction, reports errors, follows changes made by others',
    { skip: ok ? false : 'needs root and nft' },
    async () => {
      const netns = `moat-test-nfts-${randomBytes(4).toString('hex')}`;
      const local = localRunner();
      assert.equal((await local.run(['ip', 'netns', 'add', netns])).code, 0);
      const s = new NftSession({ netns });
      const nft = (script: string) => local.run(['ip', 'netns', 'exec', netns, 'nft', '-f', '-'], script);
      const list = async () =>
        (await local.run(['ip', 'netns', 'exec', netns, 'nft', 'list', 'table', 'inet', 'moat_s'])).stdout;
      try {
        const create =
          'add table inet moat_s\nadd set inet moat_s s { type ipv4_addr; comment "a; b"; }\nadd chain inet moat_s c\n';
        assert.deepEqual(await s.apply(create), { stdout: '', stderr: '', code: 0 });
        assert.equal(
          (
            await s.apply(
              'add element inet moat_s s { 10.0.0.1 }\nadd rule inet moat_s c ip saddr @s counter accept\n',
            )
          ).code,
          0,
        );
        assert.match(await list(), /elements = \{ 10\.0\.0\.1 \}/);
        assert.match(await list(), /ip saddr @s counter packets 0 bytes 0 accept/);
        // Atomic: the element of a rejected transaction is not added.
        const bad = await s.apply(
          'add element inet moat_s s { 10.0.0.2 }\nadd rule inet moat_s nochain counter\n',
        );
        assert.equal(bad.code, 1);
        assert.match(
          bad.stderr,
          /^Error: .*No such file or directory.*: add rule inet moat_s nochain counter\n$/,
        );
        assert.doesNotMatch(await list(), /10\.0\.0\.2/);
        // Someone else recreates the set with another type: the session's cache follows.
        const other = await nft(
          'delete table inet moat_s\ntable inet moat_s {\n\tset s {\n\t\ttype inet_service\n\t}\n\tchain c {\n\t}\n}\n',
        );
        assert.equal(other.code, 0, other.stderr);
        assert.equal(
          (await s.apply('add element inet moat_s s { 80 }\nadd rule inet moat_s c tcp dport @s accept\n'))
            .code,
          0,
        );
        assert.match(await list(), /elements = \{ 80 \}/);
        // flush chain deletes rules: through the session it costs no socket-close wait.
        assert.equal(
          (await s.apply('flush chain inet moat_s c\nadd rule inet moat_s c counter drop\n')).code,
          0,
        );
        assert.match(await list(), /chain c \{\n\t\tcounter packets 0 bytes 0 drop\n\t\}/);
        assert.equal(s.starts, 1);
      } finally {
        await s.close();
        await local.run(['ip', 'netns', 'delete', netns]);
      }
    },
  );
});
