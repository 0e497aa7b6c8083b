// SCTP for the lab without SCTP sockets: many kernels have no sctp module, but raw IP sockets with
// protocol 132 work and conntrack tracks SCTP. One Python helper per pod netns
// (`ip netns exec NS python3 -c SOURCE CONFIG`) answers INIT with INIT-ACK on the pod's ports and
// probes other pods: it sends an INIT and reports whether the matching INIT-ACK came back.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { tryRun } from './exec.js';

export interface SctpProcConfig {
  /** Ports answered with INIT-ACK. */
  readonly ports: readonly number[];
  /** Also open an IPv6 raw socket (answer and probe over IPv6). */
  readonly ipv6: boolean;
}

/**
 * `detail`: init-ack (ok), timeout, abort (an ABORT answered the INIT), or why the INIT was not sent:
 * an errno name (EPERM when nft drops it on the way out of the pod), `ipv6 disabled`, `bad job: ...`.
 */
export interface SctpProbeResult {
  ok: boolean;
  detail: string;
}

/**
 * The helper, Python 3 with the standard library only. Reads jobs as JSON lines on stdin,
 * `{"id":N,"ip":"10.0.0.2","port":5000,"timeoutMs":1000}`, and answers each with one JSON line,
 * `{"id":N,"ok":true,"detail":"init-ack"}`. Prints `{"ready":true}` once its sockets are open,
 * `{"fatal":"..."}` (exit 1) if they cannot be; exits on stdin EOF once in-flight probes are done.
 *
 * On the wire (RFC 9260, formerly 4960): an INIT carries vtag 0 in the common header and our
 * random Initiate Tag; the INIT-ACK carries that tag as its vtag, its own Initiate Tag and a State
 * Cookie; conntrack (nf_conntrack_proto_sctp) checks exactly these, and the CRC32c on receipt.
 * After an INIT-ACK the prober sends an ABORT (vtag = the peer's tag, T bit clear), so conntrack
 * moves the entry to CLOSED instead of leaving it in COOKIE_ECHOED.
 */
export const SCTP_HELPER_SOURCE = String.raw`
import json, os, random, select, socket, struct, sys, time

IPPROTO_SCTP = 132
IP_PKTINFO = 8  # linux/in.h; Python 3.11 does not export it
INIT, INIT_ACK, ABORT = 1, 2, 6
ERRNO = {1: 'EPERM', 13: 'EACCES', 22: 'EINVAL', 90: 'EMSGSIZE', 101: 'ENETUNREACH', 113: 'EHOSTUNREACH'}


def crc_table():
    # CRC32c (Castagnoli), reflected polynomial 0x82F63B78 (RFC 9260 appendix A, RFC 3309).
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    t = TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def packet(sport, dport, vtag, chunks):
    # Common header, checksum computed with the field zero; the CRC goes on the wire little-endian
    # (the kernel's sctp_compute_cksum stores cpu_to_le32 of it).
    pkt = struct.pack('!HHII', sport, dport, vtag, 0) + chunks
    return pkt[:8] + struct.pack('<I', crc32c(pkt)) + pkt[12:]


def checksum_ok(pkt):
    return struct.unpack_from('<I', pkt, 8)[0] == crc32c(pkt[:8] + b'\0\0\0\0' + pkt[12:])


def chunks_of(pkt):
    out = []
    off = 12
    while off + 4 <= len(pkt):
        ctype, flags, clen = struct.unpack_from('!BBH', pkt, off)
        if clen < 4 or off + clen > len(pkt):
            break
        out.append((ctype, flags, pkt[off:off + clen]))
        off += (clen + 3) & ~3
    return out


def nonzero32():
    return random.randint(1, 0xFFFFFFFF)


def init_chunk(ctype, tag, outs, ins, params=b''):
    # INIT and INIT-ACK: initiate tag, a_rwnd, outbound streams, inbound streams, initial TSN.
    return struct.pack('!BBHIIHHI', ctype, 0, 20 + len(params), tag, 65536, outs, ins, nonzero32()) + params


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(',', ':')) + '\n')
    sys.stdout.flush()


def err_detail(e):
    return ERRNO.get(e.errno, 'errno %s' % e.errno) if e.errno is not None else str(e)


def main():
    cfg = json.loads(sys.argv[1] if len(sys.argv) > 1 else '{}')
    ports = set(int(p) for p in cfg.get('ports', []))
    socks = {}
    try:
        socks[socket.AF_INET] = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP)
        if cfg.get('ipv6'):
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_SCTP)
            # The destination address of what we answer, so the INIT-ACK leaves from it.
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            socks[socket.AF_INET6] = s6
        for s in socks.values():
            s.setblocking(False)
    except OSError as e:
        out({'fatal': 'raw SCTP socket: %s' % e})
        sys.exit(1)
    by_fd = {s.fileno(): (fam, s) for fam, s in socks.items()}
    out({'ready': True})
    pending = {}  # (our source port, our initiate tag) -> probe

    def respond(fam, s, src, dst, addr, pkt, first):
        if len(first[2]) < 20:
            return
        sport, dport = struct.unpack_from('!HH', pkt, 0)
        peer_tag, _rwnd, peer_os, _peer_mis = struct.unpack_from('!IIHH', first[2], 4)
        if peer_tag == 0:
            return
        cookie = os.urandom(16)
        param = struct.pack('!HH', 7, 4 + len(cookie)) + cookie
        chunk = init_chunk(INIT_ACK, nonzero32(), min(10, peer_os) or 1, 10, param)
        reply = packet(dport, sport, peer_tag, chunk)
        try:
            if fam == socket.AF_INET:
                anc = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack('@i4s4s', 0, dst, b'\0' * 4))]
            else:
                anc = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, dst + struct.pack('@I', 0))] if dst else []
            s.sendmsg([reply], anc, 0, addr)
        except OSError:
            pass

    def send_init(p):
        try:
            p['sock'].sendto(p['init'], (p['ip'], 0))
            return None
        except OSError as e:
            return err_detail(e)

    def finish(key, ok, detail):
        p = pending.pop(key)
        out({'id': p['id'], 'ok': ok, 'detail': detail})

    def start_probe(job):
        jid = job.get('id', 0)
        try:
            ip = str(job['ip'])
            port = int(job['port'])
            timeout = max(1, int(job.get('timeoutMs', 1000))) / 1000.0
            fam = socket.AF_INET6 if ':' in ip else socket.AF_INET
            raw_ip = socket.inet_pton(fam, ip.split('%')[0])
        except (KeyError, TypeError, ValueError, OSError) as e:
            out({'id': jid, 'ok': False, 'detail': 'bad job: %s' % e})
            return
        s = socks.get(fam)
        if s is None:
            out({'id': jid, 'ok': False, 'detail': 'ipv6 disabled'})
            return
        while True:
            key = (random.randint(32768, 60999), nonzero32())
            if key not in pending and key[0] not in ports:
                break
        now = time.monotonic()
        p = {
            'id': jid, 'ip': ip, 'raw_ip': raw_ip, 'port': port, 'sock': s,
            'init': packet(key[0], port, 0, init_chunk(INIT, key[1], 10, 10)),
            'deadline': now + timeout,
            # One retransmission halfway, so a single lost packet does not read as "denied".
            'resend': now + timeout / 2,
        }
        why = send_init(p)
        if why is not None:
            out({'id': jid, 'ok': False, 'detail': why})
            return
        pending[key] = p

    def answer(fam, s, src, pkt, chunks):
        sport, dport, vtag = struct.unpack_from('!HHI', pkt, 0)
        key = (dport, vtag)
        p = pending.get(key)
        if p is None or p['sock'] is not s or p['raw_ip'] != src or p['port'] != sport:
            return
        if any(c[0] == ABORT for c in chunks):
            finish(key, False, 'abort')
        elif chunks[0][0] == INIT_ACK and len(chunks[0][2]) >= 20:
            peer_tag = struct.unpack_from('!I', chunks[0][2], 4)[0]
            try:
                s.sendto(packet(dport, sport, peer_tag, struct.pack('!BBH', ABORT, 0, 4)), (p['ip'], 0))
            except OSError:
                pass
            finish(key, True, 'init-ack')

    def receive(fam, s):
        while True:
            try:
                if fam == socket.AF_INET:
                    data, addr = s.recvfrom(65535)
                    # IPv4 raw sockets see the IP header: IHL words of it.
                    ihl = (data[0] & 0x0F) * 4 if data else 0
                    if ihl < 20 or len(data) < ihl:
                        continue
                    src, dst, pkt = data[12:16], data[16:20], data[ihl:]
                else:
                    # IPv6 raw sockets see only the payload; the source comes from recvmsg.
                    pkt, anc, _flags, addr = s.recvmsg(65535, socket.CMSG_SPACE(20))
                    src = socket.inet_pton(socket.AF_INET6, addr[0].split('%')[0])
                    dst = None
                    for level, typ, val in anc:
                        if level == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO and len(val) >= 16:
                            dst = val[:16]
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(pkt) < 16 or not checksum_ok(pkt):
                continue
            chunks = chunks_of(pkt)
            if not chunks:
                continue
            dport = struct.unpack_from('!H', pkt, 2)[0]
            if chunks[0][0] == INIT:
                if dport in ports:
                    respond(fam, s, src, dst, addr, pkt, chunks[0])
            else:
                answer(fam, s, src, pkt, chunks)

    buf = b''
    stdin_open = True
    while stdin_open or pending:
        now = time.monotonic()
        wake = None
        for key, p in list(pending.items()):
            if now >= p['deadline']:
                finish(key, False, 'timeout')
                continue
            if p['resend'] is not None and now >= p['resend']:
                p['resend'] = None
                send_init(p)
            t = p['deadline'] if p['resend'] is None else p['resend']
            wake = t if wake is None else min(wake, t)
        fds = list(by_fd) + ([0] if stdin_open else [])
        ready, _, _ = select.select(fds, [], [], None if wake is None else max(0.0, wake - now))
        for fd in ready:
            if fd != 0:
                receive(*by_fd[fd])
                continue
            data = os.read(0, 65536)
            if not data:
                stdin_open = False
                continue
            buf += data
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                if not line.strip():
                    continue
                try:
                    job = json.loads(line)
                    if not isinstance(job, dict):
                        raise ValueError('not an object')
                except ValueError as e:
                    out({'id': 0, 'ok': False, 'detail': 'bad job: %s' % e})
                    continue
                start_probe(job)


try:
    main()
except BrokenPipeError:
    sys.exit(0)
except KeyboardInterrupt:
    sys.exit(0)
except Exception as e:
    out({'fatal': '%s: %s' % (type(e).__name__, e)})
    sys.exit(1)
`;

/** The helper in one pod's netns: spawn it, send probe jobs, match answers by id. */
export class SctpPodProcess {
  private nextId = 1;
  private readonly pending = new Map<number, (r: SctpProbeResult) => void>();
  private exited = false;
  private stderr = '';

  private constructor(
    readonly netns: string,
    private readonly child: ChildProcess,
  ) {}

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Starts the helper and waits until its raw sockets are open. */
  static start(netns: string, cfg: SctpProcConfig, startTimeoutMs = 15000): Promise<SctpPodProcess> {
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, 'python3', '-c', SCTP_HELPER_SOURCE, JSON.stringify(cfg)],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const proc = new SctpPodProcess(netns, child);
    return new Promise((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        fail(`did not start within ${startTimeoutMs} ms`);
      }, startTimeoutMs);
      const fail = (why: string): void => {
        if (ready) return;
        ready = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(
          new Error(`lab SCTP helper in ${netns}: ${why}${proc.stderr ? `: ${proc.stderr.trim()}` : ''}`),
        );
      };
      // Writing a job to a process that just died is EPIPE on stdin: answered via 'exit', not thrown.
      child.stdin?.on('error', () => undefined);
      child.stderr?.on('data', (d: Buffer) => {
        proc.stderr = (proc.stderr + d.toString()).slice(-4000);
      });
      child.on('error', (e) => fail(e.message));
      child.on('exit', (code, sig) => {
        proc.exited = true;
        for (const cb of proc.pending.values()) cb({ ok: false, detail: 'sctp helper exited' });
        proc.pending.clear();
        fail(`exited (${code ?? sig})`);
      });
      const rl = createInterface({ input: child.stdout });
      rl.on('line', (line) => {
        let msg: Partial<SctpProbeResult> & { id?: number; ready?: boolean; fatal?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return;
        }
        if (msg.fatal !== undefined) return fail(msg.fatal);
        if (msg.ready === true) {
          ready = true;
          clearTimeout(timer);
          resolve(proc);
          return;
        }
        if (msg.id === undefined) return;
        const cb = proc.pending.get(msg.id);
        proc.pending.delete(msg.id);
        cb?.({ ok: msg.ok === true, detail: msg.detail ?? '' });
      });
    });
  }

  /** Sends an INIT to ip:port; ok when the matching INIT-ACK arrives within timeoutMs. */
  probe(ip: string, port: number, timeoutMs: number): Promise<SctpProbeResult> {
    if (this.exited) return Promise.resolve({ ok: false, detail: 'sctp helper exited' });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.stdin!.write(JSON.stringify({ id, ip, port, timeoutMs }) + '\n');
    });
  }

  /** Closes stdin (the helper exits on EOF once in-flight probes end); kills it if it lingers. */
  stop(graceMs = 2000): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.child.stdin!.end();
    });
  }
}

/** Whether python3 (with its socket module) can run here: the SCTP helper needs it. */
export function python3Available(): Promise<boolean> {
  return tryRun(['python3', '-c', 'import json, os, random, select, socket, struct, sys, time']);
}
