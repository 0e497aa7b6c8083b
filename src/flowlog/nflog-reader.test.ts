import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { NflogReader, type LoggedPacket, type NetlinkSocket, type NflogReaderDeps } from './nflog-reader.js';
import { decodeIpPacket, parseNetlinkBatch } from './nflog.js';
import { be, ipv4, nflogMsg, nlmsg, OUTPUT_BATCH, udp } from '../../test/support/nflog.js';

/** A request as the kernel reads it: the group and each attribute as [type, hex]. */
interface Request {
  readonly group: number;
  readonly attrs: [number, string][];
}

function readRequest(buf: Buffer): Request & { seq: number } {
  const [m] = parseNetlinkBatch(buf);
  assert.ok(m);
  const attrs: [number, string][] = [];
  for (let off = 4; off + 4 <= m.payload.length;) {
    const len = m.payload.readUInt16LE(off);
    attrs.push([m.payload.readUInt16LE(off + 2), m.payload.subarray(off + 4, off + len).toString('hex')]);
    off += (len + 3) & ~3;
  }
  return { group: m.payload.readUInt16BE(2), attrs, seq: m.seq };
}

function ack(seq: number, errno: number): Buffer {
  const p = Buffer.alloc(4 + 16);
  p.writeInt32LE(-errno, 0);
  return nlmsg(2, p, seq);
}

/** Answers each request with `answer(request)` (an errno; undefined: no answer). */
class FakeSocket implements NetlinkSocket {
  readonly requests: Request[] = [];
  closed = false;
  private readonly onMessage: ((b: Buffer) => void)[] = [];
  private readonly onError: ((e: Error & { code?: string }) => void)[] = [];

  constructor(private readonly answer: (r: Request) => number | undefined = () => 0) {}

  on(event: 'message' | 'error', listener: never): this {
    if (event === 'message') this.onMessage.push(listener);
    else this.onError.push(listener);
    return this;
  }

  send(msg: Uint8Array, _o?: undefined, cb?: (err?: Error) => void): void {
    const { seq, ...r } = readRequest(Buffer.from(msg));
    this.requests.push(r);
    const errno = this.answer(r);
    if (errno !== undefined) setImmediate(() => this.deliver(ack(seq, errno)));
    cb?.();
  }

  deliver(buf: Buffer): void {
    for (const l of this.onMessage) l(buf);
  }

  fail(code: string): void {
    for (const l of this.onError) l(Object.assign(new Error(`recvmsg: ${code}`), { code }));
  }

  close(): void {
    this.closed = true;
  }

  getRecvBufferSize(): number {
    return 425984;
  }
}

function deps(sock: FakeSocket, netAdmin?: boolean): NflogReaderDeps {
  return { socket: () => sock, hasNetAdmin: () => netAdmin };
}

const BIND = [1, '01'] as const;

test('open: bind, then copy range, numbered records and a 100 ms flush, each acknowledged', async () => {
  const sock = new FakeSocket();
  const r = await NflogReader.open({ group: 7 }, deps(sock));
  assert.deepEqual(sock.requests, [
    { group: 7, attrs: [BIND] },
    { group: 7, attrs: [[2, '000000800200']] },
    { group: 7, attrs: [[6, '0001']] },
    { group: 7, attrs: [[4, '0000000a']] },
  ]);
  assert.equal(r.recvBuffer, 425984);
  await r.close();
  assert.deepEqual(sock.requests.at(-1), { group: 7, attrs: [[1, '02']] }, 'unbind on close');
  assert.ok(sock.closed);
  await r.close(); // idempotent
});

test('open: the optional settings', async () => {
  const sock = new FakeSocket();
  const r = await NflogReader.open(
    { group: 9, copyRange: 256, flushTimeoutMs: 20, queueThreshold: 10, batchBytes: 65536 },
    deps(sock),
  );
  assert.deepEqual(
    sock.requests.map((q) => q.attrs[0]),
    [BIND, [2, '000001000200'], [6, '0001'], [4, '00000002'], [5, '0000000a'], [3, '00010000']],
  );
  await r.close();
});

const bindFailures: [string, number, boolean | undefined, RegExp][] = [
  ['EPERM, with CAP_NET_ADMIN', 1, true, /^NFLOG group 7 is already bound by another process$/],
  ['EPERM, without CAP_NET_ADMIN', 1, false, /^NFLOG group 7: binding needs CAP_NET_ADMIN$/],
  ['EPERM, capabilities unknown', 1, undefined, /already bound by another process \(or this process lacks/],
  ['EBUSY', 16, false, /^NFLOG group 7 is already bound by another process$/],
  ['EINVAL', 22, true, /^NFLOG group 7: bind: EINVAL$/],
];

for (const [name, errno, netAdmin, message] of bindFailures) {
  test(`open: bind refused: ${name}`, async () => {
    const sock = new FakeSocket((r) => (r.attrs[0]?.[1] === '01' ? errno : 0));
    await assert.rejects(NflogReader.open({ group: 7 }, deps(sock, netAdmin)), (e: Error) => {
      assert.equal(e.name, 'NflogError');
      assert.match(e.message, message);
      return true;
    });
    assert.ok(sock.closed, 'the socket is closed');
    assert.equal(sock.requests.length, 1, 'nothing after the failed bind');
  });
}

test('open: a refused setting is named, and the socket closed', async () => {
  const sock = new FakeSocket((r) => (r.attrs[0]?.[0] === 3 ? 34 : 0));
  await assert.rejects(
    NflogReader.open({ group: 7, batchBytes: 200000 }, deps(sock)),
    /^NflogError: NFLOG group 7: batch size 200000: ERANGE$/,
  );
  assert.ok(sock.closed);
});

test('open: no answer from the kernel', async () => {
  const sock = new FakeSocket(() => undefined);
  await assert.rejects(
    NflogReader.open({ group: 7, requestTimeoutMs: 30 }, deps(sock)),
    /NFLOG group 7: no answer from the kernel in 30 ms/,
  );
  assert.ok(sock.closed);
});

async function openFake(): Promise<{ r: NflogReader; sock: FakeSocket; packets: LoggedPacket[] }> {
  const sock = new FakeSocket();
  const r = await NflogReader.open({ group: 7 }, deps(sock));
  const packets: LoggedPacket[] = [];
  r.on('packet', (p) => packets.push(p));
  return { r, sock, packets };
}

test('packets: the captured batch of four, decoded, counted', async () => {
  const { r, sock, packets } = await openFake();
  const datagram = Buffer.from(OUTPUT_BATCH);
  sock.deliver(datagram);
  datagram.fill(0); // the addon's buffer is not ours to keep
  assert.deepEqual(
    packets.map((p) => [p.prefix, p.seq, p.ip?.family, p.ip?.protocolName, p.ip?.dstPort, p.ip?.tcpFlags]),
    [
      ['moat:A:a_x_i0', 0, 'ipv4', 'UDP', 9999, undefined],
      ['moat:A:a_x_i0', 1, 'ipv6', 'UDP', 9999, undefined],
      ['moat:B:syn', 2, 'ipv4', 'TCP', 9998, 'SYN'],
      ['moat:B:syn', 3, 'ipv6', 'TCP', 9998, 'SYN'],
    ],
  );
  assert.equal(decodeIpPacket(packets[0]!.payload)?.dstPort, 9999, 'payloads are copies');
  assert.deepEqual(r.stats(), {
    received: 4,
    decoded: 4,
    undecodable: 0,
    lost: 0,
    lostRecords: 0,
    malformed: 0,
  });
  await r.close();
});

test('packets: seq gaps are lost records; ENOBUFS an overrun; junk is malformed', async () => {
  const { r, sock, packets } = await openFake();
  const pkt = (
    seq: number,
    payload = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 17, l4: udp(1, 2) }),
  ) => nflogMsg({ group: 7, prefix: 'moat:x', payload, attrs: [[12, be(seq, 4)]] });
  sock.deliver(Buffer.concat([pkt(0), pkt(1)]));
  sock.fail('ENOBUFS');
  sock.deliver(Buffer.concat([pkt(5), pkt(6, Buffer.from([0x45, 0]))]));
  sock.deliver(Buffer.concat([nlmsg(0x401, Buffer.alloc(4)), Buffer.alloc(9)]));
  assert.equal(packets.length, 4);
  assert.equal(packets[3]?.ip, undefined, 'undecodable IP header: emitted without ip');
  assert.deepEqual(r.stats(), {
    received: 4,
    decoded: 3,
    undecodable: 1,
    lost: 1,
    lostRecords: 3,
    malformed: 2,
  });
  await r.close();
});

test('packets: a malformed NFLOG message is counted, not emitted', async () => {
  const { r, sock, packets } = await openFake();
  sock.deliver(nlmsg(0x400, Buffer.alloc(2)));
  assert.equal(packets.length, 0);
  assert.deepEqual(r.stats(), {
    received: 1,
    decoded: 0,
    undecodable: 1,
    lost: 0,
    lostRecords: 0,
    malformed: 0,
  });
  await r.close();
});

test('errors: a socket error other than ENOBUFS is an error event', async () => {
  const { r, sock } = await openFake();
  const got = once(r, 'error');
  sock.fail('EIO');
  const [e] = (await got) as [Error & { code?: string }];
  assert.equal(e.name, 'NflogError');
  assert.equal(e.code, 'EIO');
  assert.match(e.message, /^NFLOG group 7: recvmsg: EIO$/);
  await r.close();
});

test('close: the close event, and nothing after it', async () => {
  const { r, sock, packets } = await openFake();
  const closed = once(r, 'close');
  await r.close();
  await closed;
  sock.deliver(OUTPUT_BATCH);
  assert.equal(packets.length, 0);
});

test('open: no socket', async () => {
  const socket = (): NetlinkSocket => {
    throw new Error('socket failed: Protocol not supported');
  };
  await assert.rejects(
    NflogReader.open({ group: 3 }, { socket }),
    /^NflogError: NFLOG group 3: no netlink socket: socket failed: Protocol not supported$/,
  );
});
