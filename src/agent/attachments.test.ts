import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Attachment } from '../model/types.js';
import { CniAttachments, parseCniResult, withAttachments } from './attachments.js';
import type { Snapshot } from '../model/types.js';
import { emptySnapshot } from '../model/types.js';

/** What libcni caches for flannel (bridge plugin) and kindnet (ptp): trimmed real shapes. */
const bridgeResult = (veth: string, ip: string) =>
  JSON.stringify({
    kind: 'cniCacheV1',
    containerId: 'c0ffee',
    config: 'eyJ9',
    ifName: 'eth0',
    networkName: 'cbr0',
    cniArgs: [
      ['IgnoreUnknown', 'true'],
      ['K8S_POD_NAMESPACE', 'shop'],
      ['K8S_POD_NAME', 'web-1'],
    ],
    result: {
      cniVersion: '0.3.1',
      interfaces: [
        { name: 'cni0', mac: 'aa:bb:cc:00:00:01' },
        { name: veth, mac: 'aa:bb:cc:00:00:02' },
        { name: 'eth0', mac: 'aa:bb:cc:00:00:03', sandbox: '/var/run/netns/cni-1234' },
      ],
      ips: [
        { version: '4', interface: 2, address: `${ip}/24`, gateway: '10.244.1.1' },
        { version: '6', interface: 2, address: 'fd00:10:244:1::0005/64' },
      ],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: {},
    },
  });

test('a bridge plugin result: the veth and the bridge, both families, the pod', () => {
  assert.deepEqual(parseCniResult(bridgeResult('veth1a2b3c4d', '10.244.1.5'), 'f'), {
    interfaces: ['cni0', 'veth1a2b3c4d'],
    ips: ['10.244.1.5', 'fd00:10:244:1::5'],
    mac: 'aa:bb:cc:00:00:03',
    pod: 'shop/web-1',
    source: 'f',
  });
});

test('a ptp result (no bridge), no pod arguments', () => {
  const ptp = JSON.stringify({
    kind: 'cniCacheV1',
    result: {
      interfaces: [{ name: 'veth9' }, { name: 'eth0', sandbox: '/proc/42/ns/net' }],
      ips: [{ address: '10.244.0.9/32', interface: 1 }],
    },
  });
  assert.deepEqual(parseCniResult(ptp, 'g'), { interfaces: ['veth9'], ips: ['10.244.0.9'], source: 'g' });
});

test('what is not an attachment says why', () => {
  const cases: [string, RegExp][] = [
    ['{"kind": "cniCacheV1", "result": {', /not JSON/],
    ['{"kind": "other"}', /not a cniCacheV1 record/],
    ['{"kind": "cniCacheV1"}', /no result/],
    ['{"kind": "cniCacheV1", "result": {"interfaces": [{"name": "eth0", "sandbox": "/x"}]}}', /no host-side/],
    ['{"kind": "cniCacheV1", "result": {"interfaces": [{"name": "v"}], "ips": []}}', /no address/],
    [
      '{"kind": "cniCacheV1", "result": {"interfaces": [{"name": "v"}], "ips": [{"address": "10.0.0.300/24"}]}}',
      /invalid address "10.0.0.300\/24"/,
    ],
  ];
  for (const [text, want] of cases) {
    const got = parseCniResult(text, 'file');
    assert.equal(typeof got, 'string', text);
    assert.match(got as string, want);
    assert.match(got as string, /^file: /);
  }
});

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), what);
}

test('CniAttachments follows the directory: files written (by rename), removed, appearing later', async () => {
  const base = await mkdtemp(join(tmpdir(), 'moat-cni-'));
  const dir = join(base, 'results');
  const seen: (readonly Attachment[] | undefined)[] = [];
  const problems: string[] = [];
  const missing: string[] = [];
  const w = new CniAttachments(dir, {
    pollMs: 50,
    onProblem: (p) => problems.push(p),
    onMissing: (d) => missing.push(d),
  });
  const n = () => w.current?.length ?? -1;
  try {
    await w.start((a) => seen.push(a));
    assert.equal(n(), -1, 'a missing directory: nobody knows which port is whose');
    assert.deepEqual(missing, [dir]);
    await mkdir(dir);
    await until(() => n() === 0, 'an empty directory: no attachments');
    // libcni writes the file in place; a CNI that renames it in is also seen.
    await writeFile(join(dir, '.tmp'), bridgeResult('veth1', '10.244.1.5'));
    await rename(join(dir, '.tmp'), join(dir, 'cbr0-c0ffee-eth0'));
    await until(() => n() === 1, 'the first attachment');
    await writeFile(join(dir, 'cbr0-beef-eth0'), bridgeResult('veth2', '10.244.1.6'));
    await writeFile(join(dir, 'garbage'), 'not json');
    await until(() => n() === 2, 'the second attachment');
    assert.deepEqual(
      (w.current ?? []).map((a) => [a.interfaces, a.ips[0]]),
      [
        [['cni0', 'veth2'], '10.244.1.6'],
        [['cni0', 'veth1'], '10.244.1.5'],
      ],
    );
    await until(() => problems.length === 1, 'the bad file is reported');
    await rm(join(dir, 'cbr0-c0ffee-eth0'));
    await until(() => n() === 1, 'CNI DEL removes it');
    assert.ok(seen.length >= 3);
    assert.equal(problems.length, 1, 'reported once');
  } finally {
    await w.stop();
    await rm(base, { recursive: true, force: true });
  }
});

test('withAttachments passes the newest snapshot on with the attachments, again on each change', async () => {
  const base = await mkdtemp(join(tmpdir(), 'moat-cni-'));
  const w = new CniAttachments(base, { pollMs: 0 });
  const got: Snapshot[] = [];
  let feed: ((s: Snapshot) => void) | undefined;
  const src = withAttachments(
    {
      start: (sink) => {
        feed = (s) => sink.snapshot(s);
        return Promise.resolve();
      },
      stop: () => Promise.resolve(),
    },
    w,
  );
  try {
    await src.start({ snapshot: (s) => got.push(s), error: () => undefined });
    feed!(emptySnapshot);
    assert.deepEqual(got.at(-1)?.attachments, []);
    await writeFile(join(base, 'net-x-eth0'), bridgeResult('veth7', '10.244.1.7'));
    await w.rescan();
    assert.equal(got.length, 2);
    assert.equal(got.at(-1)?.pods, emptySnapshot.pods, 'the same snapshot, with attachments');
    assert.deepEqual(got.at(-1)?.attachments?.[0]?.interfaces, ['cni0', 'veth7']);
  } finally {
    await src.stop();
    await rm(base, { recursive: true, force: true });
  }
});
