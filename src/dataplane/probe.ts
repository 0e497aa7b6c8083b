// What this host can enforce with (`moat doctor`, `--backend auto`). The probe changes nothing on
// the host: every rule, chain, table and set it tries is made in a scratch network namespace of its
// own, which it deletes by name; on the host it only reads (versions, /proc, `*-save` listings).
// The judging (report -> backend) is pure, so tests feed it the answers of a WSL2-like or old host.
import type { CommandResult, CommandRunner } from './runner.js';

export type Backend = 'nftables' | 'iptables';
export type BackendChoice = 'auto' | Backend;

export type CheckGroup = 'nftables' | 'iptables' | 'ipset' | 'conntrack' | 'host';

export interface Check {
  /** Stable id ("nft.ct", "iptables.xt_conntrack"), for -o json and tests. */
  readonly id: string;
  readonly group: CheckGroup;
  /** What was checked, in a few words. */
  readonly what: string;
  readonly ok: boolean;
  /** The version, the value read, or the error the tool printed. */
  readonly detail: string;
  /** The Debian package or kernel option that fixes it. */
  readonly fix?: string;
  /** Which backend needs it; absent: informational (a feature, or what a peer needs). */
  readonly requiredBy?: readonly Backend[];
}

export interface HostReport {
  readonly kernel: string;
  /** The scratch namespace used, or why none could be made (then only binaries were checked). */
  readonly scratch: { readonly ok: boolean; readonly detail: string };
  readonly checks: readonly Check[];
  /** Which iptables the host's rules live in (kube-proxy's wrapper counts rules the same way). */
  readonly iptablesMode?: { readonly mode: 'nft' | 'legacy'; readonly why: string };
}

export interface BackendVerdict {
  readonly usable: Record<Backend, boolean>;
  /** Per backend: the ids of the failed checks it needs. */
  readonly missing: Record<Backend, readonly string[]>;
  /** The backend picked; undefined when none can serve. */
  readonly chosen?: Backend;
  readonly why: string;
}

// The statements below are the forms the compiler emits (compile.ts, flowlog.ts); an nft too old
// to parse one (e.g. `th dport`, nft < 0.9.2) fails that check with its own error text.
const NFT_FEATURES: readonly {
  id: string;
  what: string;
  body: string;
  fix: string;
  required: boolean;
}[] = [
  {
    id: 'nft.table',
    what: 'inet table, base chain, IPv4 and IPv6 matches',
    body: 'chain c { type filter hook forward priority 0; policy accept; ip daddr 10.0.0.1 accept; ip6 daddr ::1 accept; }',
    fix: 'kernel: CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET',
    required: true,
  },
  {
    id: 'nft.ct',
    what: 'ct expression (stateful: established, new, invalid)',
    body: 'chain c { type filter hook forward priority 0; ct state established,related accept; ct state invalid drop; }',
    fix: 'kernel: CONFIG_NFT_CT (WSL2 builds without it need the iptables backend)',
    required: true,
  },
  {
    id: 'nft.vmap',
    what: 'verdict maps',
    body: 'map m { type ipv4_addr : verdict; elements = { 10.0.0.1 : goto d } }\nchain d { drop; }\nchain c { ip daddr vmap @m; }',
    fix: 'kernel: CONFIG_NF_TABLES (verdict maps are part of nf_tables)',
    required: true,
  },
  {
    id: 'nft.concat',
    what: 'concatenated set keys with th dport',
    body: 'set s { type ipv4_addr . inet_proto . inet_service; elements = { 10.0.0.1 . tcp . 80 } }\nchain c { ip daddr . meta l4proto . th dport @s accept; }',
    fix: 'nftables >= 0.9.2 (apt-get install nftables)',
    required: true,
  },
  {
    id: 'nft.interval',
    what: 'interval sets (CIDRs, except)',
    body: 'set s { type ipv4_addr; flags interval; elements = { 10.0.0.0/8 } }\nchain c { ip saddr @s accept; }',
    fix: 'kernel: CONFIG_NFT_SET_RBTREE or CONFIG_NFT_SET_PIPAPO',
    required: true,
  },
  {
    id: 'nft.counter',
    what: 'named counters (metrics per policy rule)',
    body: 'counter k { }\nchain c { counter name k accept; }',
    fix: 'kernel: CONFIG_NFT_COUNTER (or nf_tables >= 5.x, where it is built in)',
    required: true,
  },
  {
    id: 'nft.fib',
    what: 'fib expression (the node is what is local to it)',
    body: 'chain c { type filter hook input priority 0; fib saddr type local accept; }',
    fix: 'kernel: CONFIG_NFT_FIB_INET',
    required: true,
  },
  {
    id: 'nft.log',
    what: 'log to an NFLOG group, named limit (flow logs)',
    body: 'limit l { rate 10/second burst 5 packets }\nchain c { limit name "l" log prefix "moat" group 1 accept; }',
    fix: 'kernel: CONFIG_NFT_LOG, CONFIG_NFT_LIMIT, CONFIG_NETFILTER_NETLINK_LOG',
    required: false,
  },
  {
    id: 'nft.queue',
    what: 'queue expression (not used by moat; kube-network-policies needs it)',
    body: 'chain c { type filter hook forward priority 0; queue num 0 bypass; }',
    fix: 'kernel: CONFIG_NFT_QUEUE',
    required: false,
  },
];

function firstLine(r: CommandResult): string {
  const text = `${r.stderr}\n${r.stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^\^+$/.test(l));
  return text[0] ?? (r.code === null ? 'could not be run' : `exit ${r.code}`);
}

/** Probes the host. `runner` runs commands as given (on the host); `scratch` names the namespace. */
export async function probeHost(opts: {
  readonly runner: CommandRunner;
  readonly scratch: string;
  readonly kernel: string;
  /** Reads a /proc or /sys file; undefined when it does not exist. */
  readonly readFile: (path: string) => string | undefined;
}): Promise<HostReport> {
  const { runner, scratch } = opts;
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  const inNs = (argv: readonly string[], input?: string) =>
    runner.run(['ip', 'netns', 'exec', scratch, ...argv], input);

  const made = await runner.run(['ip', 'netns', 'add', scratch]);
  const scratchOk = made.code === 0;
  try {
    // nftables
    const nftV = await runner.run(['nft', '--version']);
    const haveNft = nftV.code === 0;
    add({
      id: 'nft.binary',
      group: 'nftables',
      what: 'nft',
      ok: haveNft,
      detail: haveNft ? nftV.stdout.trim() : firstLine(nftV),
      fix: 'apt-get install nftables',
      requiredBy: ['nftables'],
    });
    for (const f of NFT_FEATURES) {
      let ok = false;
      let detail = 'not checked: no nft binary';
      if (haveNft && scratchOk) {
        const r = await inNs(['nft', '-f', '-'], `table inet moat_probe {\n${f.body}\n}\n`);
        ok = r.code === 0;
        detail = ok ? 'loads' : firstLine(r);
        await inNs(['nft', 'delete', 'table', 'inet', 'moat_probe']);
      } else if (haveNft) detail = 'not checked: no scratch namespace';
      add({
        id: f.id,
        group: 'nftables',
        what: f.what,
        ok,
        detail,
        fix: f.fix,
        ...(f.required ? { requiredBy: ['nftables'] as const } : {}),
      });
    }
    if (haveNft && scratchOk) {
      const r = await inNs(
        ['nft', '-f', '-'],
        'table bridge moat_probe {\nchain c { type filter hook forward priority -300; iifname "moat*" ether saddr 02:00:00:00:00:01 accept; }\n}\n',
      );
      add({
        id: 'nft.bridge',
        group: 'nftables',
        what: 'bridge family (source check of bridged pod ports)',
        ok: r.code === 0,
        detail: r.code === 0 ? 'loads' : firstLine(r),
        fix: 'kernel: CONFIG_NF_TABLES_BRIDGE',
      });
      await inNs(['nft', 'delete', 'table', 'bridge', 'moat_probe']);
    }

    // iptables
    const binaries: [string, string][] = [
      ['iptables.binary', 'iptables'],
      ['ip6tables.binary', 'ip6tables'],
      ['iptables.restore', 'iptables-restore'],
      ['ip6tables.restore', 'ip6tables-restore'],
    ];
    const have = new Map<string, boolean>();
    for (const [id, bin] of binaries) {
      const r = await runner.run([bin, '--version']);
      have.set(bin, r.code === 0);
      add({
        id,
        group: 'iptables',
        what: bin,
        ok: r.code === 0,
        detail: r.code === 0 ? r.stdout.trim() : firstLine(r),
        fix: 'apt-get install iptables',
        requiredBy: ['iptables'],
      });
    }
    const found = have.get('iptables') === true ? await iptablesMode(runner, opts.readFile) : undefined;
    const mode = found && { mode: found.mode, why: found.why };
    const ipsetV = await runner.run(['ipset', 'version']);
    const haveIpset = ipsetV.code === 0;
    add({
      id: 'ipset.binary',
      group: 'ipset',
      what: 'ipset',
      ok: haveIpset,
      detail: haveIpset ? ipsetV.stdout.trim().split('\n')[0]! : firstLine(ipsetV),
      fix: 'apt-get install ipset',
      requiredBy: ['iptables'],
    });
    const setTypes: [string, string[]][] = [
      ['ipset.hash_ip', ['hash:ip', 'family', 'inet']],
      ['ipset.hash_ip_port', ['hash:ip,port', 'family', 'inet']],
      ['ipset.hash_net', ['hash:net', 'family', 'inet']],
      ['ipset.inet6', ['hash:ip', 'family', 'inet6']],
      ['ipset.hash_net_net', ['hash:net,net', 'family', 'inet']],
    ];
    let setsOk = false;
    for (const [id, args] of setTypes) {
      let ok = false;
      let detail = haveIpset ? 'not checked: no scratch namespace' : 'not checked: no ipset binary';
      if (haveIpset && scratchOk) {
        const name = `moat-probe-${id.split('.')[1]!.replace(/_/g, '-')}`;
        const r = await inNs(['ipset', 'create', name, ...args]);
        ok = r.code === 0;
        detail = ok ? 'created' : firstLine(r);
        if (id === 'ipset.hash_ip') setsOk = ok;
      }
      add({
        id,
        group: 'ipset',
        what: `${args[0]!} sets (${args[2]!})`,
        ok,
        detail,
        fix: `kernel: CONFIG_IP_SET_${args[0]!.replace(/[:,]/g, '_').toUpperCase()}`,
        // Without hash:net,net "a pod reaching itself" takes one rule per local pod instead.
        ...(id === 'ipset.hash_net_net' ? {} : { requiredBy: ['iptables'] as const }),
      });
    }
    if (haveIpset && scratchOk && setsOk) {
      await inNs(['ipset', 'create', 'moat-probe-swap', 'hash:ip', 'family', 'inet']);
      const r = await inNs(['ipset', 'swap', 'moat-probe-hash-ip', 'moat-probe-swap']);
      add({
        id: 'ipset.swap',
        group: 'ipset',
        what: 'ipset swap (atomic set replacement)',
        ok: r.code === 0,
        detail: r.code === 0 ? 'swapped' : firstLine(r),
        fix: 'ipset >= 6 (apt-get install ipset)',
        requiredBy: ['iptables'],
      });
    }
    const matches: {
      id: string;
      what: string;
      bins: string[];
      rule: string[];
      fix: string;
      required: boolean;
    }[] = [
      {
        id: 'iptables.chain',
        what: 'own chains in the filter table',
        bins: ['iptables', 'ip6tables'],
        rule: ['-j', 'ACCEPT'],
        fix: 'kernel: CONFIG_IP_NF_FILTER, CONFIG_IP6_NF_FILTER (or CONFIG_NFT_COMPAT for iptables-nft)',
        required: true,
      },
      {
        id: 'iptables.xt_conntrack',
        what: 'conntrack match (stateful)',
        bins: ['iptables', 'ip6tables'],
        rule: ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
        fix: 'kernel: CONFIG_NETFILTER_XT_MATCH_CONNTRACK',
        required: true,
      },
      {
        id: 'iptables.xt_set',
        what: 'set match (pod addresses in ipsets)',
        bins: ['iptables'],
        rule: ['-m', 'set', '--match-set', 'moat-probe-hash-ip', 'src', '-j', 'ACCEPT'],
        fix: 'kernel: CONFIG_NETFILTER_XT_SET',
        required: true,
      },
      {
        id: 'iptables.comment',
        what: 'comment and multiport matches',
        bins: ['iptables'],
        rule: [
          '-p',
          'tcp',
          '-m',
          'multiport',
          '--dports',
          '80,443',
          '-m',
          'comment',
          '--comment',
          'moat',
          '-j',
          'ACCEPT',
        ],
        fix: 'kernel: CONFIG_NETFILTER_XT_MATCH_COMMENT, CONFIG_NETFILTER_XT_MATCH_MULTIPORT',
        required: true,
      },
      {
        id: 'iptables.nflog',
        what: 'NFLOG target (flow logs)',
        bins: ['iptables'],
        rule: ['-j', 'NFLOG', '--nflog-group', '1', '--nflog-prefix', 'moat'],
        fix: 'kernel: CONFIG_NETFILTER_XT_TARGET_NFLOG',
        required: false,
      },
    ];
    for (const m of matches) {
      const errors: string[] = [];
      let checked = true;
      for (const bin of m.bins) {
        if (have.get(bin) !== true || !scratchOk) {
          checked = false;
          errors.push(have.get(bin) !== true ? `no ${bin}` : 'no scratch namespace');
          continue;
        }
        await inNs([bin, '-w', '-N', 'MOAT-PROBE']);
        const r = await inNs([bin, '-w', '-A', 'MOAT-PROBE', ...m.rule]);
        if (r.code !== 0) errors.push(`${bin}: ${firstLine(r)}`);
        await inNs([bin, '-w', '-F', 'MOAT-PROBE']);
        await inNs([bin, '-w', '-X', 'MOAT-PROBE']);
      }
      add({
        id: m.id,
        group: 'iptables',
        what: m.what,
        ok: checked && errors.length === 0,
        detail: errors.length === 0 ? 'accepted' : `${checked ? '' : 'not checked: '}${errors.join('; ')}`,
        fix: m.fix,
        ...(m.required ? { requiredBy: ['iptables'] as const } : {}),
      });
    }

    // conntrack and the host
    const ct = await runner.run(['conntrack', '--version']);
    add({
      id: 'conntrack.binary',
      group: 'conntrack',
      what: 'conntrack tool (fallback for cutting denied flows; moat speaks ctnetlink itself)',
      ok: ct.code === 0,
      detail: ct.code === 0 ? `${ct.stdout}${ct.stderr}`.trim() : firstLine(ct),
      fix: 'apt-get install conntrack',
    });
    const brnf = opts.readFile('/proc/sys/net/bridge/bridge-nf-call-iptables');
    add({
      id: 'host.br_netfilter',
      group: 'host',
      what: 'br_netfilter (bridged pod traffic reaches the IP hooks: cni0, docker0, kind)',
      ok: brnf?.trim() === '1',
      detail:
        brnf === undefined
          ? 'not loaded: pods on one bridge talk past every IP rule'
          : `bridge-nf-call-iptables = ${brnf.trim()}`,
      fix: 'modprobe br_netfilter; sysctl net.bridge.bridge-nf-call-iptables=1 (routed CNIs do not need it)',
    });
    const rp = opts.readFile('/proc/sys/net/ipv4/conf/all/rp_filter');
    add({
      id: 'host.rp_filter',
      group: 'host',
      what: 'rp_filter (moat checks pod source addresses itself, whatever it is)',
      ok: true,
      detail: rp === undefined ? 'unknown' : `net.ipv4.conf.all.rp_filter = ${rp.trim()}`,
    });
    return {
      kernel: opts.kernel,
      scratch: {
        ok: scratchOk,
        detail: scratchOk ? scratch : `could not create ${scratch}: ${firstLine(made)}`,
      },
      checks,
      ...(mode !== undefined ? { iptablesMode: mode } : {}),
    };
  } finally {
    if (scratchOk) await runner.run(['ip', 'netns', 'delete', scratch]);
  }
}

/**
 * The iptables the host uses, as kube-proxy's iptables wrapper decides: the flavour that holds more
 * rules; with none anywhere, the flavour of the `iptables` binary. Legacy tables are read only when
 * the kernel already has them (/proc/net/ip_tables_names), so the probe loads no module.
 */
export async function iptablesMode(
  runner: CommandRunner,
  readFile: (path: string) => string | undefined | Promise<string | undefined>,
): Promise<{ mode: 'nft' | 'legacy'; why: string; own: 'nft' | 'legacy' }> {
  const count = async (bin: string) => {
    const r = await runner.run([bin]);
    return r.code === 0 ? r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length : undefined;
  };
  const legacyLoaded = ((await readFile('/proc/net/ip_tables_names')) ?? '').trim() !== '';
  const legacy = legacyLoaded ? await count('iptables-legacy-save') : 0;
  const nft = await count('iptables-nft-save');
  const v = await runner.run(['iptables', '--version']);
  const own: 'nft' | 'legacy' = /nf_tables/.test(v.stdout) ? 'nft' : 'legacy';
  if ((legacy ?? 0) > (nft ?? 0))
    return { mode: 'legacy', own, why: `iptables-legacy holds ${legacy} rules, iptables-nft ${nft ?? 0}` };
  if ((nft ?? 0) > 0)
    return { mode: 'nft', own, why: `iptables-nft holds ${nft} rules, iptables-legacy ${legacy ?? 0}` };
  return { mode: own, own, why: `no rules in either; the iptables binary is ${own}` };
}

/** Which backend serves, from a report. Pure. */
export function chooseBackend(report: HostReport, wanted: BackendChoice = 'auto'): BackendVerdict {
  const missing = (b: Backend) =>
    report.checks.filter((c) => c.requiredBy?.includes(b) === true && !c.ok).map((c) => c.id);
  const m: Record<Backend, readonly string[]> = {
    nftables: missing('nftables'),
    iptables: missing('iptables'),
  };
  const usable: Record<Backend, boolean> = {
    nftables: m.nftables.length === 0,
    iptables: m.iptables.length === 0,
  };
  const list = (ids: readonly string[]) => ids.join(', ');
  if (wanted !== 'auto') {
    return usable[wanted]
      ? {
          usable,
          missing: m,
          chosen: wanted,
          why: `${wanted} was asked for, and every check it needs passed`,
        }
      : { usable, missing: m, why: `${wanted} was asked for, but this host lacks: ${list(m[wanted])}` };
  }
  if (usable.nftables)
    return {
      usable,
      missing: m,
      chosen: 'nftables',
      why: 'every check nftables needs passed (preferred: sets and maps in one atomic transaction)',
    };
  if (usable.iptables)
    return {
      usable,
      missing: m,
      chosen: 'iptables',
      why: `nftables lacks ${list(m.nftables)}; iptables and ipset have everything`,
    };
  return {
    usable,
    missing: m,
    why: `neither backend can enforce here: nftables lacks ${list(m.nftables)}; iptables lacks ${list(m.iptables)}`,
  };
}

/**
 * The agent's `--backend auto`, without a scratch namespace (a DaemonSet has NET_ADMIN, not
 * SYS_ADMIN): nftables when `nft --check` (which commits nothing) accepts every form moat needs,
 * else iptables. `why` carries nft's refusal.
 */
export async function quickBackend(runner: CommandRunner): Promise<{ backend: Backend; why: string }> {
  const body = NFT_FEATURES.filter((f) => f.required)
    .map((f, i) => `table inet moat_probe_${i} {\n${f.body}\n}\n`)
    .join('');
  const r = await runner.run(['nft', '--check', '-f', '-'], body);
  return r.code === 0
    ? { backend: 'nftables', why: 'nft accepts every form moat needs' }
    : { backend: 'iptables', why: `nft cannot serve: ${firstLine(r)}` };
}
