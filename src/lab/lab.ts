// The lab: a cluster made of network namespaces. A node is a namespace (PREFIX-node, PREFIX-node2,
// ...) that holds the pod network of its pods and its own agent's nft table; each pod is a
// namespace (PREFIX-pN) with a veth `eth0` and a default route through its node. The pod network
// is either routed (`--network routed`, kindnet/ptp/Calico style: a veth per pod, /32 and /128
// addresses, a host route per pod, pod-to-pod traffic crosses the node's forward path) or bridged
// (`--network bridge`, flannel style: every pod's veth is a port of the node's bridge moatcni0,
// pods of one node share a subnet and reach each other over the bridge, which moat sees through
// br_netfilter). Like a CNI, the lab records each pod's attachment in a CNI result cache per node
// (the format libcni writes), from which the node's agent learns which bridge port is which pod.
// Nodes are
// joined by a veth pair (two nodes) or a bridge in PREFIX-fabric (more), with routes for each
// other's pod CIDR slices: cross-node traffic is routed node -> node without NAT, so it is checked
// at egress on the source node and at ingress on the destination node. A node's own traffic to
// other nodes leaves from its Node address (InternalIP), as on a real node's primary interface.
// hostNetwork pods live in their node's namespace: one process per node serves their ports on the
// node's addresses and probes from them. The host is never touched.
import { declaredProbes, matrixPods, sortProbes, type MatrixJson, type Probe } from '../analysis/matrix.js';
import { cidrContains, formatAddress, mustCidr, parseIP, type Cidr, type Family } from '../model/cidr.js';
import type { Pod, Protocol, Snapshot } from '../model/types.js';
import { podKey } from '../model/types.js';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ipBatch, mapLimit, run, tryRun } from './exec.js';
import {
  DEFAULT_PREFIX,
  FABRIC_BRIDGE,
  FABRIC_LINK,
  GATEWAY4,
  GATEWAY6,
  POD_BRIDGE,
  checkPrefix,
  fabricAddress,
  fabricNetns,
  fabricPort,
  nodeLink,
  labNodeNames,
  nodeNetns,
  planLab,
  podNetns,
  type Plan,
  type PlanOptions,
} from './plan.js';
import { PodProcess } from './podproc-client.js';
import { SctpPodProcess, python3Available } from './sctp.js';
import { UsageError } from '../errors.js';
import type { Attachment } from '../model/types.js';

/** Where labs keep their state (the CNI result caches): /run/moat-lab/PREFIX/NODE-NETNS/results. */
export const LAB_STATE_ROOT = '/run/moat-lab';

export interface LabOptions extends PlanOptions {
  /** Namespace name prefix; must start with "moat". Default "moat-lab". */
  readonly prefix?: string;
  /** How long a probe waits before calling the flow denied. Default 1000 ms. */
  readonly probeTimeoutMs?: number;
  /** Probes in flight at once. Default 512 (a denied probe only waits). */
  readonly concurrency?: number;
  /** Progress lines (for the CLI's stderr). */
  readonly log?: (line: string) => void;
  /** Where the lab keeps its state. Default LAB_STATE_ROOT. */
  readonly stateRoot?: string;
}

export interface ProbeOutcome {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** undefined: not probed (skipped). */
  readonly allowed?: boolean;
  /** What was observed: connected, echo, refused, timeout, skipped: why. */
  readonly detail: string;
}

/** Per-probe overrides of `Lab.probe`. */
export interface ProbeOptions {
  /** Address family to probe over (default: the family of the source's first IP). */
  readonly family?: Family;
  /** Overrides LabOptions.probeTimeoutMs for this probe. */
  readonly timeoutMs?: number;
}

export interface ObservedMatrix {
  /** The observations in the schema of `moat matrix -o json` (skipped probes left out). */
  readonly json: MatrixJson;
  readonly outcomes: readonly ProbeOutcome[];
  /** (port, protocol) pairs not probed, with the reason. */
  readonly skipped: readonly { readonly probe: Probe; readonly reason: string }[];
  readonly elapsedMs: number;
}

interface LabPod {
  readonly key: string;
  readonly slot: number;
  readonly netns: string;
  /** Index of its node (a pod that moves is rebuilt). */
  readonly node: number;
  pod: Pod;
  ports: readonly number[];
  proc?: PodProcess;
  /** The SCTP responder and prober, when SCTP ports are declared and python3 is there. */
  sctp?: SctpPodProcess;
  sctpPorts: readonly number[];
  /** What the lab's "CNI" recorded for the pod (its CNI result file). */
  attachment?: Attachment;
}

/** Every port number a pod declares, on any protocol: each pod serves all of them on TCP and UDP. */
function servedPorts(pods: readonly Pod[]): number[] {
  return [...new Set(pods.flatMap((p) => p.ports.map((c) => c.containerPort)))].sort((a, b) => a - b);
}

/** Every SCTP port number a pod declares: each pod answers INIT on all of them. */
function sctpPorts(pods: readonly Pod[]): number[] {
  const ports = pods.flatMap((p) => p.ports.filter((c) => c.protocol === 'SCTP').map((c) => c.containerPort));
  return [...new Set(ports)].sort((a, b) => a - b);
}

/**
 * A hostNetwork pod sends from its own address (its node's) of the destination's family, as the
 * evaluator sees it; left to routing it would leave a local pod's veth from the gateway address.
 */
function hostSource(src: ProbeEnd, ip: string): string | undefined {
  if (!src.host) return undefined;
  const fam = parseIP(ip)?.family;
  return src.pod.ips.find((x) => parseIP(x)?.family === fam);
}

function hasV6(pod: Pod): boolean {
  return pod.ips.some((ip) => parseIP(ip)?.family === 6);
}

/** What serves and probes for a node's hostNetwork pods, in the node's namespace. */
interface HostServer {
  proc: PodProcess;
  ports: readonly number[];
  addresses: readonly string[];
  sctp?: SctpPodProcess;
  sctpPorts: readonly number[];
}

/** One end of a probe: a pod with its own namespace, or a hostNetwork pod (its node's server). */
interface ProbeEnd {
  readonly pod: Pod;
  readonly proc?: PodProcess;
  readonly sctp?: SctpPodProcess;
  readonly sctpPorts: readonly number[];
  /** A hostNetwork pod: it sends from its own (the node's) address. */
  readonly host: boolean;
}

/** A lab node: its Node name, its namespace, and the CNI result cache of its pods. */
export interface LabNode {
  readonly name: string;
  readonly netns: string;
  readonly cniResultsDir: string;
}

export class Lab {
  /** The first node's namespace (the only one in a one-node lab). */
  readonly nodeNetns: string;
  /** Every node's namespace, in node order. */
  readonly nodeNetnses: readonly string[];
  private readonly pods = new Map<string, LabPod>();
  /** hostNetwork pods ("ns/name"): in their node's namespace, served by hostServers. */
  private hostPods = new Map<string, { readonly pod: Pod; readonly node: number }>();
  /** Per node index with hostNetwork pods, the process serving their ports. */
  private readonly hostServers = new Map<number, HostServer>();
  private currentPlan!: Plan;
  private destroyed = false;
  private readonly log: (line: string) => void;
  private python: boolean | undefined;
  /** Per node, its bridge's addresses (bridge network; fixed when the node is built). */
  private gateways: readonly (readonly string[])[] = [];

  private constructor(
    readonly prefix: string,
    private readonly opts: LabOptions,
  ) {
    this.nodeNetnses = labNodeNames(opts).map((_, i) => nodeNetns(prefix, i));
    this.nodeNetns = this.nodeNetnses[0]!;
    this.log = opts.log ?? (() => undefined);
  }

  /**
   * Builds the lab for a snapshot. On failure everything built so far is removed again.
   * Callers must `destroy()` the lab (in a finally block).
   */
  static async create(snapshot: Snapshot, opts: LabOptions = {}): Promise<Lab> {
    const prefix = opts.prefix ?? DEFAULT_PREFIX;
    const bad = checkPrefix(prefix);
    if (bad) throw new UsageError(bad);
    const plan = planLab(snapshot, opts);
    const lab = new Lab(prefix, opts);
    lab.currentPlan = plan;
    try {
      await lab.buildNodes();
      await lab.sync(plan);
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  /** The snapshot the lab's agents enforce: pods on the lab nodes, with their lab addresses. */
  get snapshot(): Snapshot {
    return this.currentPlan.snapshot;
  }

  get plan(): Plan {
    return this.currentPlan;
  }

  /** The (first) Node object of the lab (for DataplaneOptions.nodeName). */
  get nodeName(): string {
    return this.currentPlan.node.name;
  }

  /** Every lab node: the Node name each agent enforces for, and the namespace it enforces in. */
  get nodes(): readonly LabNode[] {
    return this.currentPlan.nodes.map((n, i) => ({
      name: n.name,
      netns: this.nodeNetnses[i]!,
      cniResultsDir: this.cniResultsDir(i),
    }));
  }

  /** The pod network of every node. */
  get network(): 'routed' | 'bridge' {
    return this.opts.network ?? 'routed';
  }

  /** The CNI result cache of node `index` (what a node agent reads as --cni-results-dir). */
  cniResultsDir(index = 0): string {
    return join(this.opts.stateRoot ?? LAB_STATE_ROOT, this.prefix, this.nodeNetnses[index]!, 'results');
  }

  /** The attachments the lab recorded for node `index`'s pods (the content of its CNI cache). */
  attachments(index = 0): Attachment[] {
    return [...this.pods.values()].flatMap((lp) =>
      lp.node === index && lp.attachment !== undefined ? [lp.attachment] : [],
    );
  }

  /**
   * The node's own addresses a node process may send from: its Node address, the gateway on each
   * pod veth (routed) or the bridge's addresses (bridge), and the IPv6 link-local gateway.
   */
  nodeSources(index = 0): string[] {
    const node = this.currentPlan.nodes[index]!;
    const own = this.network === 'bridge' ? [...(this.gateways[index] ?? [])] : [GATEWAY4, GATEWAY6];
    return [...node.addresses, ...own];
  }

  /** The node a pod ("ns/name") runs on. */
  podNode(key: string): LabNode | undefined {
    const i = this.pods.get(key)?.node ?? this.hostPods.get(key)?.node;
    return i !== undefined ? this.nodes[i] : undefined;
  }

  /** The node-side interface of a pod's veth ("ns/name"): its bridge port, or its routed link. */
  podLink(key: string): string | undefined {
    const lp = this.pods.get(key);
    return lp ? nodeLink(lp.slot) : undefined;
  }

  /** Netns of a pod ("ns/name"), for tests that want to look inside: its node's for hostNetwork. */
  podNetns(key: string): string | undefined {
    const h = this.hostPods.get(key);
    return h !== undefined ? this.nodeNetnses[h.node] : this.pods.get(key)?.netns;
  }

  /** Process ids of the pod processes and the hostNetwork pods' servers (for tests and `lab down`). */
  pids(): number[] {
    const procs = [...this.pods.values(), ...this.hostServers.values()].map((p) => p.proc);
    return procs.flatMap((p) => (p?.pid !== undefined ? [p.pid] : []));
  }

  /**
   * Re-plans for a new snapshot: pods that appeared get a namespace, pods that went away lose it, a
   * pod whose addresses changed is rebuilt, and pod processes restart when the served ports change.
   * Returns the new plan (whose snapshot is what the agent should enforce).
   */
  async update(snapshot: Snapshot): Promise<Plan> {
    const previous = new Map([...this.pods].map(([k, p]) => [k, p.pod.ips]));
    const previousNodes = new Map(
      [...this.pods, ...this.hostPods].flatMap(([k, p]) =>
        p.pod.nodeName !== undefined ? [[k, p.pod.nodeName] as const] : [],
      ),
    );
    const plan = planLab(snapshot, this.opts, previous, previousNodes);
    await this.sync(plan);
    this.currentPlan = plan;
    return plan;
  }

  private async buildNodes(): Promise<void> {
    const nodes = this.currentPlan.nodes;
    const bridge = this.network === 'bridge';
    this.gateways = this.currentPlan.gateways;
    await mapLimit(nodes, 4, async (node, i) => {
      const ns = this.nodeNetnses[i]!;
      await run(['ip', 'netns', 'add', ns]);
      const slices = node.podCIDRs.map(mustCidr);
      // Bridged: an address of the node inside the pods' on-link subnet must be on the bridge, or
      // IPv6 pods could not resolve it (a node answers neighbour solicitations only for addresses of
      // the interface they arrive on).
      const onBridge = (a: string): boolean => {
        const ip = parseIP(a);
        return (
          bridge && ip !== undefined && slices.some((c) => c.family === ip.family && cidrContains(c, ip))
        );
      };
      await ipBatch(ns, [
        'link set lo up',
        // Bridged: one bridge for all pods, with the gateway address of each slice (flannel's cni0).
        ...(bridge
          ? [
              `link add ${POD_BRIDGE} type bridge`,
              `link set ${POD_BRIDGE} up`,
              ...(this.gateways[i] ?? []).map((g, k) => {
                const c = slices[k]!;
                return `addr add ${g}/${c.prefix} dev ${POD_BRIDGE}${c.family === 6 ? ' nodad' : ''}`;
              }),
            ]
          : []),
        // The node's own address otherwise lives on its loopback (this kernel may have no dummy links).
        ...node.addresses.map((a) => {
          const f = parseIP(a)?.family;
          return `addr add ${a}/${f === 6 ? 128 : 32} dev ${onBridge(a) ? POD_BRIDGE : 'lo'}${f === 6 ? ' nodad' : ''}`;
        }),
      ]);
      // Forwarding in the node namespace only: pods reach each other through the node. On a bridge,
      // br_netfilter hands bridged IP traffic to the inet hooks (per network namespace), as every
      // kube-proxy mode needs.
      await run([
        'ip',
        'netns',
        'exec',
        ns,
        'sysctl',
        '-qw',
        'net.ipv4.ip_forward=1',
        'net.ipv6.conf.all.forwarding=1',
        ...(bridge ? ['net.bridge.bridge-nf-call-iptables=1', 'net.bridge.bridge-nf-call-ip6tables=1'] : []),
      ]);
      await mkdir(this.cniResultsDir(i), { recursive: true });
    });
    if (nodes.length > 1) await this.buildFabric();
  }

  /** Address families of the pod CIDRs (the families the inter-node link must carry). */
  private families(): Family[] {
    const fams = this.currentPlan.node.podCIDRs.map((c) => mustCidr(c).family);
    return [...new Set(fams)];
  }

  /**
   * Joins the nodes: two by a veth pair, more through a bridge in the fabric namespace. Each node's
   * end is FABRIC_LINK with a link-local next-hop address, and routes send every other node's pod
   * CIDR slices to that node: plain routing, no NAT, so both ends see the pods' own addresses.
   */
  private async buildFabric(): Promise<void> {
    const nodes = this.currentPlan.nodes;
    const nss = this.nodeNetnses;
    if (nodes.length === 2) {
      await ipBatch(nss[0]!, [`link add ${FABRIC_LINK} type veth peer name ${FABRIC_LINK} netns ${nss[1]!}`]);
    } else {
      const fab = fabricNetns(this.prefix);
      await run(['ip', 'netns', 'add', fab]);
      await ipBatch(fab, [
        'link set lo up',
        `link add ${FABRIC_BRIDGE} type bridge`,
        `link set ${FABRIC_BRIDGE} up`,
        ...nss.map((ns, i) => `link add ${fabricPort(i)} type veth peer name ${FABRIC_LINK} netns ${ns}`),
        ...nss.map((_, i) => `link set ${fabricPort(i)} master ${FABRIC_BRIDGE} up`),
      ]);
    }
    const fams = this.families();
    await mapLimit(nodes, 4, (_, i) => {
      const lines = [`link set ${FABRIC_LINK} up`];
      for (const f of fams) {
        lines.push(
          f === 4
            ? `addr add ${fabricAddress(i, 4)}/24 dev ${FABRIC_LINK}`
            : `addr add ${fabricAddress(i, 6)}/64 dev ${FABRIC_LINK} nodad`,
        );
      }
      nodes.forEach((peer, j) => {
        if (j === i) return;
        for (const c of peer.podCIDRs) {
          const f = mustCidr(c).family;
          lines.push(`route add ${c} via ${fabricAddress(j, f)} dev ${FABRIC_LINK}${this.routeSource(i, f)}`);
        }
      });
      return ipBatch(nss[i]!, lines);
    });
  }

  /**
   * ` src ADDR`: node `index`'s own traffic over the fabric leaves from its Node address of the
   * family (not the link-local next hop), as a node's from its InternalIP: that is what other
   * nodes' policies see of it (`nodes` peers, ipBlocks) and what its hostNetwork pods send from.
   */
  private routeSource(index: number, f: Family): string {
    const a = this.currentPlan.nodes[index]?.addresses.find((x) => parseIP(x)?.family === f);
    return a !== undefined ? ` src ${a}` : '';
  }

  /**
   * Routes on the other nodes for a pod's addresses outside its node's slices (manifest addresses,
   * or a pod pinned by spec.nodeName to a node whose slice does not hold its address): host routes
   * to its node, more specific than the slice routes.
   */
  private async hostRoutes(pods: readonly LabPod[], verb: 'add' | 'del'): Promise<void> {
    const nodes = this.currentPlan.nodes;
    if (nodes.length < 2) return;
    const slices = nodes.map((n) => n.podCIDRs.map(mustCidr));
    // Per node namespace, the routes for other nodes' pods.
    const lines = this.nodeNetnses.map((): string[] => []);
    for (const lp of pods) {
      const own = slices[lp.node] ?? [];
      for (const ip of lp.pod.ips) {
        const a = parseIP(ip);
        if (a === undefined || own.some((c) => c.family === a.family && cidrContains(c, a))) continue;
        const len = a.family === 6 ? 128 : 32;
        const route = `route ${verb} ${ip}/${len} via ${fabricAddress(lp.node, a.family)} dev ${FABRIC_LINK}`;
        lines.forEach((l, i) => i !== lp.node && l.push(route + this.routeSource(i, a.family)));
      }
    }
    await mapLimit(this.nodeNetnses, 4, async (ns, i) => {
      const l = lines[i]!;
      if (l.length === 0) return;
      if (verb === 'add') await ipBatch(ns, l);
      // Removal is best effort (-force: carry on past a route that is already gone).
      else await run(['ip', '-n', ns, '-force', '-batch', '-'], l.join('\n') + '\n').catch(() => undefined);
    });
  }

  private freeSlot(): number {
    const used = new Set([...this.pods.values()].map((p) => p.slot));
    let s = 0;
    while (used.has(s)) s++;
    return s;
  }

  private async sync(plan: Plan): Promise<void> {
    const want = new Map(plan.pods.filter((p) => !p.pod.hostNetwork).map((p) => [p.key, p]));
    const ports = servedPorts(plan.pods.map((p) => p.pod));
    // Gone, readdressed or moved to another node: remove (such a pod is rebuilt below).
    const remove = [...this.pods.values()].filter((lp) => {
      const w = want.get(lp.key);
      return w === undefined || w.node !== lp.node || w.pod.ips.join(',') !== lp.pod.ips.join(',');
    });
    await mapLimit(remove, 8, (lp) => this.removePod(lp));
    for (const lp of remove) this.pods.delete(lp.key);

    const added: LabPod[] = [];
    for (const [key, { pod, node }] of want) {
      const lp = this.pods.get(key);
      if (lp) {
        lp.pod = pod;
        continue;
      }
      const slot = this.freeSlot();
      const np: LabPod = {
        key,
        slot,
        netns: podNetns(this.prefix, slot),
        node,
        pod,
        ports: [],
        sctpPorts: [],
      };
      this.pods.set(key, np);
      added.push(np);
    }
    const t0 = Date.now();
    if (added.length > 0) await this.addPods(added);
    // Start (or restart, when the served ports changed) the pod processes.
    const stale = [...this.pods.values()].filter((lp) => !lp.proc || lp.ports.join(',') !== ports.join(','));
    await mapLimit(stale, 4, async (lp) => {
      await lp.proc?.stop();
      delete lp.proc;
      lp.proc = await PodProcess.start(lp.netns, { ports, ipv6: hasV6(lp.pod) });
      lp.ports = ports;
    });
    // SCTP: a raw-socket responder and prober per pod, where SCTP ports are declared.
    const sctp = sctpPorts(plan.pods.map((p) => p.pod));
    if (sctp.length > 0) this.python ??= await python3Available();
    const answer = this.python === true ? sctp : [];
    const staleSctp = [...this.pods.values()].filter((lp) => lp.sctpPorts.join(',') !== answer.join(','));
    await mapLimit(staleSctp, 4, async (lp) => {
      await lp.sctp?.stop();
      delete lp.sctp;
      if (answer.length > 0) {
        lp.sctp = await SctpPodProcess.start(lp.netns, { ports: answer, ipv6: hasV6(lp.pod) });
      }
      lp.sctpPorts = answer;
    });
    await this.syncHostPods(plan, ports, answer);
    if (added.length > 0 || stale.length > 0) {
      this.log(
        `lab: ${added.length} pod namespace(s) built, ${stale.length} pod process(es) started in ${Date.now() - t0} ms`,
      );
    }
  }

  /**
   * hostNetwork pods: a process in each node namespace that has some serves every port the pods
   * declare (TCP and UDP echo, and SCTP INIT-ACK when probed) on the node's addresses, as a pod
   * process does on its own, and is their prober. Restarted when the ports change.
   */
  private async syncHostPods(plan: Plan, ports: readonly number[], sctp: readonly number[]): Promise<void> {
    this.hostPods = new Map(
      plan.pods.filter((p) => p.pod.hostNetwork).map((p) => [p.key, { pod: p.pod, node: p.node }]),
    );
    const used = new Set([...this.hostPods.values()].map((h) => h.node));
    await mapLimit(this.nodeNetnses, 4, async (ns, i) => {
      const cur = this.hostServers.get(i);
      const addresses = plan.nodes[i]?.addresses ?? [];
      if (!used.has(i)) {
        if (cur === undefined) return;
        this.hostServers.delete(i);
        await Promise.all([cur.proc.stop(), cur.sctp?.stop()]);
        return;
      }
      const v6 = addresses.some((a) => parseIP(a)?.family === 6);
      let hs = cur;
      if (
        hs === undefined ||
        hs.ports.join(',') !== ports.join(',') ||
        hs.addresses.join(',') !== addresses.join(',')
      ) {
        await hs?.proc.stop();
        const proc = await PodProcess.start(ns, { ports, ipv6: v6, addresses });
        if (hs === undefined) {
          hs = { proc, ports, addresses, sctpPorts: [] };
          this.hostServers.set(i, hs);
        } else {
          Object.assign(hs, { proc, ports, addresses });
        }
      }
      if (hs.sctpPorts.join(',') !== sctp.join(',')) {
        await hs.sctp?.stop();
        delete hs.sctp;
        if (sctp.length > 0) hs.sctp = await SctpPodProcess.start(ns, { ports: sctp, ipv6: v6 });
        hs.sctpPorts = sctp;
      }
    });
  }

  private async addPods(pods: readonly LabPod[]): Promise<void> {
    await mapLimit(pods, 8, (lp) => run(['ip', 'netns', 'add', lp.netns]));
    await mapLimit(this.nodeNetnses, 4, (node, i) => {
      const here = pods.filter((lp) => lp.node === i);
      return here.length > 0 ? this.addNodeLinks(node, here) : Promise.resolve();
    });
    await this.hostRoutes(pods, 'add');
    await mapLimit(pods, 8, (lp) => {
      const lines = ['link set lo up', 'link set eth0 up'];
      const gw: Partial<Record<Family, string>> = {};
      for (const ip of lp.pod.ips) {
        const f = parseIP(ip)?.family ?? 4;
        const slice = this.bridgeSlice(lp, ip);
        // On the bridge, a pod in its node's slice is on-link with its neighbours (flannel); any
        // other address is a host address reached through the gateway.
        const len = slice !== undefined ? slice.prefix : f === 6 ? 128 : 32;
        lines.push(`addr add ${ip}/${len} dev eth0${f === 6 ? ' nodad' : ''}`);
        const g = gw[f] ?? this.gatewayFor(lp, f);
        if (g !== undefined) gw[f] = g;
      }
      if (gw[4] !== undefined)
        lines.push(`route add ${gw[4]} dev eth0 scope link`, `route add default via ${gw[4]} dev eth0`);
      if (gw[6] !== undefined) lines.push(`route add default via ${gw[6]} dev eth0`);
      return ipBatch(lp.netns, lines);
    });
    await Promise.all(pods.map((lp) => this.writeAttachment(lp)));
  }

  /** Bridge network: the node's slice that holds this pod address, if any. */
  private bridgeSlice(lp: LabPod, ip: string): Cidr | undefined {
    if (this.network !== 'bridge') return undefined;
    const a = parseIP(ip);
    if (a === undefined) return undefined;
    return this.currentPlan.nodes[lp.node]?.podCIDRs
      .map(mustCidr)
      .find((c) => c.family === a.family && cidrContains(c, a));
  }

  /** The pod's default gateway for a family: the veth gateway (routed) or the bridge's address. */
  private gatewayFor(lp: LabPod, f: Family): string | undefined {
    if (this.network !== 'bridge') return f === 4 ? GATEWAY4 : GATEWAY6;
    const node = this.currentPlan.nodes[lp.node];
    const k = node?.podCIDRs.findIndex((c) => mustCidr(c).family === f) ?? -1;
    return k >= 0 ? this.gateways[lp.node]?.[k] : undefined;
  }

  /**
   * What a CNI plugin leaves behind: the attachment in the libcni result cache, written
   * atomically (rename) before the pod counts as built; removed again with the pod.
   */
  private async writeAttachment(lp: LabPod): Promise<void> {
    const link = nodeLink(lp.slot);
    const interfaces = this.network === 'bridge' ? [POD_BRIDGE, link] : [link];
    const ips = lp.pod.ips.map((ip) => {
      const slice = this.bridgeSlice(lp, ip);
      return `${ip}/${slice !== undefined ? slice.prefix : parseIP(ip)?.family === 6 ? 128 : 32}`;
    });
    const doc = {
      kind: 'cniCacheV1',
      containerId: lp.netns,
      config: '',
      ifName: 'eth0',
      networkName: 'moat-lab',
      netns: `/var/run/netns/${lp.netns}`,
      cniArgs: [
        ['K8S_POD_NAMESPACE', lp.pod.namespace],
        ['K8S_POD_NAME', lp.pod.name],
      ],
      result: {
        cniVersion: '1.0.0',
        interfaces: [
          ...interfaces.map((name) => ({ name })),
          { name: 'eth0', mac: podMac(lp.slot), sandbox: `/var/run/netns/${lp.netns}` },
        ],
        ips: ips.map((address) => ({ address, interface: interfaces.length })),
      },
    };
    const dir = this.cniResultsDir(lp.node);
    const name = `moat-lab-${lp.netns}-eth0`;
    await writeFile(join(dir, `.${name}.tmp`), JSON.stringify(doc));
    await rename(join(dir, `.${name}.tmp`), join(dir, name));
    lp.attachment = {
      interfaces,
      ips: lp.pod.ips.map((ip) => formatAddress(parseIP(ip)!)),
      mac: podMac(lp.slot),
      pod: lp.key,
      source: join(dir, name),
    };
  }

  /**
   * The node's ends of its new pods' veths. Routed: the gateway address and a host route per pod
   * address. Bridged: a port of the bridge (a host route only for an address outside the slice).
   */
  private async addNodeLinks(node: string, pods: readonly LabPod[]): Promise<void> {
    // Both veth ends are created from inside the node namespace: no link ever exists in the host's.
    await ipBatch(
      node,
      pods.map(
        (lp) =>
          `link add ${nodeLink(lp.slot)} type veth peer name eth0 address ${podMac(lp.slot)} netns ${lp.netns}`,
      ),
    );
    const nodeLines: string[] = [];
    for (const lp of pods) {
      const link = nodeLink(lp.slot);
      if (this.network === 'bridge') {
        nodeLines.push(`link set ${link} master ${POD_BRIDGE} up`);
        for (const ip of lp.pod.ips) {
          if (this.bridgeSlice(lp, ip) !== undefined) continue;
          nodeLines.push(`route add ${ip}/${parseIP(ip)?.family === 6 ? 128 : 32} dev ${POD_BRIDGE}`);
        }
        continue;
      }
      nodeLines.push(`link set ${link} up`, `addr add ${GATEWAY4}/32 dev ${link}`);
      if (hasV6(lp.pod)) nodeLines.push(`addr add ${GATEWAY6}/64 dev ${link} nodad`);
      for (const ip of lp.pod.ips) {
        nodeLines.push(`route add ${ip}/${parseIP(ip)?.family === 6 ? 128 : 32} dev ${link}`);
      }
    }
    await ipBatch(node, nodeLines);
  }

  private async removePod(lp: LabPod): Promise<void> {
    // CNI DEL: the attachment goes first, as libcni removes its cache entry.
    if (lp.attachment !== undefined) {
      await rm(lp.attachment.source ?? '', { force: true });
      delete lp.attachment;
    }
    await Promise.all([lp.proc?.stop(), lp.sctp?.stop()]);
    delete lp.proc;
    delete lp.sctp;
    await killNetnsPids(lp.netns);
    // Delete the veth from the node's side first: that is immediate, whereas the pod namespace (and
    // the veth in it) lives on until its last process has exited, and a pod added right after may
    // reuse the slot, i.e. the link name and routes ("RTNETLINK answers: File exists").
    await tryRun(['ip', '-n', this.nodeNetnses[lp.node]!, 'link', 'del', nodeLink(lp.slot)]);
    await this.hostRoutes([lp], 'del');
    await tryRun(['ip', 'netns', 'del', lp.netns]);
  }

  private pod(key: string): LabPod {
    const lp = this.pods.get(key);
    if (!lp) {
      const why = this.hostPods.has(key) ? ' with its own network namespace (it is a hostNetwork pod)' : '';
      throw new UsageError(`lab: no pod ${key}${why}`);
    }
    return lp;
  }

  /** A probe's end: a pod, or a hostNetwork pod (played by its node's server). */
  private end(key: string): ProbeEnd {
    const h = this.hostPods.get(key);
    if (h === undefined) return { ...this.pod(key), host: false };
    const hs = this.hostServers.get(h.node);
    return {
      pod: h.pod,
      ...(hs !== undefined ? { proc: hs.proc, sctpPorts: hs.sctpPorts } : { sctpPorts: [] }),
      ...(hs?.sctp !== undefined ? { sctp: hs.sctp } : {}),
      host: true,
    };
  }

  /**
   * The destination address of a flow: the family of the source's first IP, as the evaluator does,
   * unless a family is asked for (then both ends must have an address of it).
   */
  private target(src: ProbeEnd, dst: ProbeEnd, family?: Family): string | undefined {
    if (family !== undefined) {
      if (!src.pod.ips.some((ip) => parseIP(ip)?.family === family)) return undefined;
      return dst.pod.ips.find((ip) => parseIP(ip)?.family === family);
    }
    const fam = src.pod.ips[0] !== undefined ? parseIP(src.pod.ips[0])?.family : undefined;
    return dst.pod.ips.find((ip) => parseIP(ip)?.family === fam) ?? dst.pod.ips[0];
  }

  /** One probe: can pod `from` reach pod `to` on (port, protocol)? */
  async probe(
    from: string,
    to: string,
    port: number,
    protocol: Protocol,
    opts: ProbeOptions = {},
  ): Promise<ProbeOutcome> {
    const src = this.end(from);
    const dst = this.end(to);
    const base = { from, to, port, protocol };
    const ip = this.target(src, dst, opts.family);
    if (!src.proc || ip === undefined) return { ...base, detail: 'skipped: pod has no address' };
    const timeoutMs = opts.timeoutMs ?? this.opts.probeTimeoutMs ?? 1000;
    if (protocol === 'SCTP') {
      if (!src.sctp) return { ...base, detail: `skipped: ${await this.sctpReason()}` };
      if (!dst.sctpPorts.includes(port))
        return { ...base, detail: `skipped: ${to} declares no SCTP port ${port}` };
      const r = await src.sctp.probe(ip, port, timeoutMs);
      return { ...base, allowed: r.ok, detail: r.detail };
    }
    const source = hostSource(src, ip);
    const r = await src.proc.request({
      op: 'probe',
      protocol,
      ip,
      port,
      timeoutMs,
      ...(source !== undefined ? { source } : {}),
    });
    return { ...base, allowed: r.ok, detail: r.detail };
  }

  /** One probe from a pod to an address that is not a pod's (the node's, the world's). */
  async probeAddress(from: string, ip: string, port: number, protocol: 'TCP' | 'UDP'): Promise<ProbeOutcome> {
    const src = this.end(from);
    const base = { from, to: ip, port, protocol };
    if (!src.proc) return { ...base, detail: 'skipped: pod has no process' };
    const timeoutMs = this.opts.probeTimeoutMs ?? 1000;
    const source = hostSource(src, ip);
    const r = await src.proc.request({
      op: 'probe',
      protocol,
      ip,
      port,
      timeoutMs,
      ...(source !== undefined ? { source } : {}),
    });
    return { ...base, allowed: r.ok, detail: r.detail };
  }

  /** Why SCTP cannot be probed here (the lab probes SCTP with a Python raw-socket helper). */
  private async sctpReason(): Promise<string> {
    this.python ??= await python3Available();
    if (!this.python) return 'SCTP is not probed: python3 is missing (the raw-socket SCTP prober needs it)';
    return 'SCTP is not probed: no pod declares an SCTP port';
  }

  /**
   * A connection from the node itself (as the kubelet's probes are), from one of its own addresses
   * (`source`, default: the one the kernel picks), to a pod. Needs `startNodeProber()` first.
   */
  async probeFromNode(
    index: number,
    to: string,
    port: number,
    protocol: 'TCP' | 'UDP',
    source?: string,
  ): Promise<ProbeOutcome> {
    const dst = this.pod(to);
    const proc = this.nodeProbers.get(index);
    if (proc === undefined) throw new UsageError(`lab: node ${index} has no prober (startNodeProber)`);
    const fam = source !== undefined ? parseIP(source)?.family : undefined;
    const ip = dst.pod.ips.find((x) => fam === undefined || parseIP(x)?.family === fam);
    const base = { from: `node ${index}`, to, port, protocol };
    if (ip === undefined) return { ...base, detail: 'skipped: no address of that family' };
    const timeoutMs = this.opts.probeTimeoutMs ?? 1000;
    const r = await proc.request({
      op: 'probe',
      protocol,
      ip,
      port,
      timeoutMs,
      ...(source !== undefined ? { source } : {}),
    });
    return { ...base, allowed: r.ok, detail: r.detail };
  }

  private readonly nodeProbers = new Map<number, PodProcess>();

  /**
   * Starts a server in node `index`'s namespace (a node process or hostNetwork pod), serving TCP
   * and UDP echo on the ports, on every node address. Stop it when done.
   */
  async startNodeServer(
    index: number,
    ports: readonly number[],
    addresses?: readonly string[],
  ): Promise<{ stop(): Promise<void> }> {
    const p = await PodProcess.start(this.nodeNetnses[index]!, {
      ports,
      ipv6: true,
      ...(addresses !== undefined ? { addresses } : {}),
    });
    return { stop: () => p.stop() };
  }

  /** Starts a prober process in node `index`'s namespace (a node process, like the kubelet). */
  async startNodeProber(index = 0): Promise<void> {
    if (this.nodeProbers.has(index)) return;
    this.nodeProbers.set(index, await PodProcess.start(this.nodeNetnses[index]!, { ports: [], ipv6: true }));
  }

  /**
   * Probes every pod -> pod for each (port, protocol): by default every one the pods declare (as
   * `moat matrix` does). SCTP goes over raw sockets (INIT / INIT-ACK), when python3 is there.
   */
  async probeMatrix(ports?: readonly Probe[]): Promise<ObservedMatrix> {
    const t0 = Date.now();
    const pods = matrixPods(this.snapshot);
    const keys = pods.map(podKey);
    const probes = ports !== undefined ? sortProbes(ports) : declaredProbes(pods);
    const anySctp = [...this.pods.values(), ...this.hostServers.values()].some((lp) => lp.sctp !== undefined);
    const reason = anySctp ? '' : await this.sctpReason();
    const skipped = probes
      .filter((p) => p.protocol === 'SCTP' && !anySctp)
      .map((probe) => ({ probe, reason }));
    const live = probes.filter((p) => p.protocol !== 'SCTP' || anySctp);
    const jobs = live.flatMap((probe) => keys.flatMap((from) => keys.map((to) => ({ probe, from, to }))));
    const outcomes = await mapLimit(jobs, this.opts.concurrency ?? 512, (j) =>
      this.probe(j.from, j.to, j.probe.port, j.probe.protocol),
    );
    const json: MatrixJson = { pods: keys, probes: [] };
    let i = 0;
    for (const probe of live) {
      const allowed: Record<string, Record<string, boolean>> = {};
      for (const from of keys) {
        const row: Record<string, boolean> = {};
        for (const to of keys) row[to] = outcomes[i++]!.allowed === true;
        allowed[from] = row;
      }
      json.probes.push({ port: probe.port, protocol: probe.protocol, allowed });
    }
    return { json, outcomes, skipped, elapsedMs: Date.now() - t0 };
  }

  /** Opens a TCP connection from one pod to another and keeps it, for established-flow tests. */
  async connect(from: string, to: string, port: number, family?: Family): Promise<LabConnection | undefined> {
    const src = this.pod(from);
    const ip = this.target(this.end(from), this.end(to), family);
    if (!src.proc || ip === undefined) return undefined;
    const proc = src.proc;
    const timeoutMs = this.opts.probeTimeoutMs ?? 1000;
    const r = await proc.request({ op: 'open', ip, port, timeoutMs });
    if (!r.ok || r.conn === undefined) return undefined;
    const conn = r.conn;
    return {
      ip,
      ...(r.localPort !== undefined ? { localPort: r.localPort } : {}),
      send: async (t = timeoutMs) => (await proc.request({ op: 'send', conn, timeoutMs: t })).ok,
      close: async () => {
        await proc.request({ op: 'close', conn });
      },
    };
  }

  /** The server speaks first: the pod writes a line on every connection it accepted on `port`. */
  async push(pod: string, port: number): Promise<number> {
    const lp = this.pod(pod);
    if (!lp.proc) return 0;
    const r = await lp.proc.request({ op: 'push', port });
    return Number(/^pushed to (\d+)/.exec(r.detail)?.[1] ?? 0);
  }

  /** Stops every pod process and deletes every namespace of this lab. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const all = [...this.pods.values()];
    await Promise.all([...this.nodeProbers.values()].map((p) => p.stop()));
    this.nodeProbers.clear();
    await Promise.all(
      [...this.hostServers.values()].map((h) => Promise.all([h.proc.stop(), h.sctp?.stop()])),
    );
    this.hostServers.clear();
    this.hostPods.clear();
    await mapLimit(all, 8, (lp) => this.removePod(lp));
    this.pods.clear();
    await rm(join(this.opts.stateRoot ?? LAB_STATE_ROOT, this.prefix), { recursive: true, force: true });
    const nodes = [...this.nodeNetnses];
    if (nodes.length > 2) nodes.push(fabricNetns(this.prefix));
    for (const ns of nodes) {
      await killNetnsPids(ns);
      await tryRun(['ip', 'netns', 'del', ns]);
    }
  }
}

export interface LabConnection {
  /** The destination address. */
  readonly ip: string;
  /** The client's port. */
  readonly localPort?: number;
  /** Sends a line and waits for its echo; false when it does not come back in time. */
  send(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Kills every process still running in a namespace (by pid, as `ip netns pids` lists them). */
async function killNetnsPids(netns: string): Promise<number[]> {
  let pids: number[] = [];
  try {
    const { stdout } = await run(['ip', 'netns', 'pids', netns]);
    pids = stdout
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number)
      .filter((p) => p !== process.pid);
  } catch {
    return [];
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return pids;
}

/** The MAC of a pod's eth0: fixed per slot (locally administered), so the CNI result can say it. */
export function podMac(slot: number): string {
  const h = (n: number) => n.toString(16).padStart(2, '0');
  return `02:6d:6f:61:${h((slot >> 8) & 0xff)}:${h(slot & 0xff)}`;
}

/** Network namespaces named PREFIX-* (the default prefix covers every lab, tests' included). */
export async function listLabNetns(prefix = DEFAULT_PREFIX): Promise<string[]> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
}

/** Node and fabric namespaces (PREFIX-node, PREFIX-nodeN, PREFIX-fabric) go after the pods'. */
const INFRA_NETNS = /-(node\d*|fabric)$/;

/**
 * `moat lab down`: removes what a crashed lab left behind: processes running in the namespaces,
 * then the namespaces (and with them their links and nft tables): pods first, then every node's
 * and the fabric's.
 */
export async function cleanupLabs(
  prefix = DEFAULT_PREFIX,
  stateRoot = LAB_STATE_ROOT,
): Promise<{ netns: string[]; killed: number[] }> {
  const bad = checkPrefix(prefix);
  if (bad) throw new UsageError(bad);
  const names = await listLabNetns(prefix);
  const ordered = [...names.filter((n) => !INFRA_NETNS.test(n)), ...names.filter((n) => INFRA_NETNS.test(n))];
  const killed: number[] = [];
  for (const n of ordered) {
    killed.push(...(await killNetnsPids(n)));
    await tryRun(['ip', 'netns', 'del', n]);
  }
  // The state of the labs (PREFIX and PREFIX-*), as the namespaces.
  const { readdir } = await import('node:fs/promises');
  const dirs = await readdir(stateRoot).catch(() => [] as string[]);
  for (const d of dirs) {
    if (d === prefix || d.startsWith(`${prefix}-`))
      await rm(join(stateRoot, d), { recursive: true, force: true });
  }
  return { netns: ordered, killed };
}
